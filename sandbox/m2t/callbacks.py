"""M2T's signed callbacks: ``sandbox.common.callbacks`` with M2T's signature header.

``POST <callback_url>`` with body ``{"id": "evt_…", "type": "…", "created": <unix>, "data": {…}}``
and header ``M2T-Signature: t=<unix>,v1=<hex HMAC-SHA256(callback_secret, "<t>." + raw body)>``
(``shared.signatures``: verify it over the raw body). ``data`` is the transaction, refund or dispute
as it was when the event happened. Types: ``transaction.pending_approval``, ``transaction.authorised``,
``transaction.captured``, ``transaction.declined``, ``transaction.voided``, ``refund.succeeded``,
``refund.failed``, ``dispute.opened``, ``dispute.closed``. An expired wallet request sends nothing.

With ``duplicate_callbacks`` (default on) every callback is delivered twice, same event id, same
body; with ``out_of_order_callbacks`` (default on) stale transaction snapshots follow some final ones
(see ``sandbox.m2t.gateway``). Failed deliveries are retried like the bank sandbox's.
"""

from __future__ import annotations

import logging

from sandbox.common.callbacks import CallbackSender
from sandbox.m2t.config import SandboxM2TConfig

SIGNATURE_HEADER = "M2T-Signature"
USER_AGENT = "hirfa-m2t-sandbox/1"


def m2t_callback_sender(config: SandboxM2TConfig) -> CallbackSender:
    return CallbackSender(
        config,
        signature_header=SIGNATURE_HEADER,
        user_agent=USER_AGENT,
        log=logging.getLogger("sandbox.m2t.callbacks"),
    )
