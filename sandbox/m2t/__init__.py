"""An M2T-style payment gateway sandbox: a Flask process that behaves like Hirfa's acquirer.

Run it with ``python -m sandbox.m2t [--host 127.0.0.1] [--port 8010]`` (``M2T_SANDBOX_PORT`` and
``M2T_SANDBOX_HOST`` move it; settings are ``M2T_SANDBOX_*``, see ``config``). One process, threaded,
state in memory (lost on restart). Every ``/v1`` call needs ``Authorization: Bearer <api key>``
(default ``sandbox-m2t-api-key``); ``/healthz`` and the 3-D Secure pages are public. Amounts are
integer centimes of ``MAD``, timestamps unix seconds, errors ``{"code", "message"[, "param"]}`` with
every 5xx ``processing_error``. Every POST needs an ``Idempotency-Key`` (``sandbox.common.idempotency``).

Modules: ``api`` (the endpoints), ``cards`` (tokens), ``wallets`` (wallet requests),
``gateway`` (the state machines and when callbacks go), ``three_ds`` (the challenge pages),
``callbacks`` (signed callbacks), ``settlement`` (the daily CSV), ``bodies`` (validation).

Test cards (tokenise with ``POST /v1/tokens``, any future expiry, any 3-digit CVC) and test phones
(``method: mobile_wallet``) are the tables in ``shared/test_instruments.py``, which the payments
service's in-memory fake reads too. Here the timing is the sandbox's: 3-D Secure is decided at
``/3ds/complete``; the timeout card's answer comes ``slow_response_seconds`` (10) late (a retry with
the same ``Idempotency-Key``, or ``GET ?reference=``, answers at once); the dispute card's dispute
opens ``callback_delay_seconds`` after the capture; every wallet request starts ``pending_approval``
with ``wallet.expires_at`` = ``created`` + ``wallet_expiry_seconds`` (120), and the buyer's answer
comes ``wallet_approval_delay_seconds`` (3) later (see ``cards`` and ``wallets``).

Refunds: pending, then after callback_delay_seconds succeeded (``refund.succeeded``), or failed
``refund_declined`` (``refund.failed``) when the amount ends in 13 centimes (e.g. 1013).
Disputes: opened by the 0259 card or ``POST /v1/sandbox/transactions/<id>/disputes``, closed by
``POST /v1/sandbox/disputes/<id>/close``; ``dispute.opened`` / ``dispute.closed`` callbacks.

Like a real acquirer, callbacks (``M2T-Signature``, ``shared.signatures``) come twice
(``duplicate_callbacks``) and a stale snapshot follows some final ones (``out_of_order_callbacks``):
both on by default. ``GET /v1/settlements/<YYYY-MM-DD>.csv`` gives the day's captures (gross, M2T's
fee of 1.5% + 150 centimes, net) and succeeded refunds.
"""
