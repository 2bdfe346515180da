"""An M2T-style payment gateway sandbox: a Flask process that behaves like Hirfa's acquirer.

Run it with ``python -m sandbox.m2t [--host 127.0.0.1] [--port 8010]`` (``M2T_SANDBOX_PORT`` and
``M2T_SANDBOX_HOST`` move it; settings are ``M2T_SANDBOX_*``, see ``config``). One process, threaded,
state in memory (lost on restart). Every ``/v1`` call needs ``Authorization: Bearer <api key>``
(default ``sandbox-m2t-api-key``); ``/healthz`` and the 3-D Secure pages are public. Amounts are
integer centimes of ``MAD``, timestamps unix seconds, errors ``{"code", "message"[, "param"]}`` with
every 5xx ``processing_error``. Every POST needs an ``Idempotency-Key`` (``idempotency``).

Modules: ``api`` (the endpoints), ``cards`` (tokens, test cards), ``wallets`` (test phones),
``gateway`` (the state machines and when callbacks go), ``three_ds`` (the challenge pages),
``callbacks`` (signed callbacks), ``settlement`` (the daily CSV), ``bodies`` (validation).

Test cards (tokenise with ``POST /v1/tokens``, any future expiry, any 3-digit CVC):

    card number        brand / country   behaviour
    4242424242424242   visa / US         approved
    5555555555554444   mastercard / FR   approved
    6500000000000002   cmi / MA          approved (Moroccan domestic card)
    4000000000009995   visa / US         declined, insufficient_funds
    4000000000009979   visa / US         declined, stolen_card
    4000000000003220   visa / US         three_ds_required; the buyer's choice on the 3-D Secure page
                                         decides (authenticate -> captured/authorised, fail ->
                                         declined authentication_failed) at /3ds/complete
    4000000000000119   visa / US         POST /v1/transactions answers 500 processing_error, nothing
                                         is recorded
    4000000000000127   visa / US         timeout: recorded as approved at once (callbacks too), the
                                         answer comes slow_response_seconds (10) later; a retry with
                                         the same Idempotency-Key, or GET ?reference=, answers at once
    4000000000000259   visa / US         approved; a dispute (fraudulent, the captured amount) opens
                                         by itself callback_delay_seconds after the capture
    any other valid    by first digit    approved

Test phones (``method: mobile_wallet``; every wallet request starts ``pending_approval`` with
``wallet.expires_at`` = ``created`` + ``wallet_expiry_seconds`` (120)):

    phone           behaviour
    +212600000001   the buyer approves after wallet_approval_delay_seconds (3): captured (authorised
                    when capture is false) + callback
    +212600000002   the buyer refuses after the same delay: declined wallet_declined + callback
    +212600000003   never answered: reads expired (decline_code expired) once expires_at has passed;
                    no callback, poll for it
    any other       like +212600000001

Refunds: pending, then after callback_delay_seconds succeeded (``refund.succeeded``), or failed
``refund_declined`` (``refund.failed``) when the amount ends in 13 centimes (e.g. 1013).
Disputes: opened by the 0259 card or ``POST /v1/sandbox/transactions/<id>/disputes``, closed by
``POST /v1/sandbox/disputes/<id>/close``; ``dispute.opened`` / ``dispute.closed`` callbacks.

Like a real acquirer, callbacks (``M2T-Signature``, ``shared.signatures``) come twice
(``duplicate_callbacks``) and a stale snapshot follows some final ones (``out_of_order_callbacks``):
both on by default. ``GET /v1/settlements/<YYYY-MM-DD>.csv`` gives the day's captures (gross, M2T's
fee of 1.5% + 150 centimes, net) and succeeded refunds.
"""
