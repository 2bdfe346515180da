"""The bank's signed callbacks: ``sandbox.common.callbacks`` with the bank's signature header.

The header is ``Bank-Signature: t=<unix>,v1=<hex HMAC-SHA256(callback_secret, "<t>." + raw body)>``.
"""

from __future__ import annotations

import logging

from sandbox.bank.config import SandboxBankConfig
from sandbox.common.callbacks import CallbackSender

SIGNATURE_HEADER = "Bank-Signature"
USER_AGENT = "hirfa-bank-sandbox/1"


def bank_callback_sender(config: SandboxBankConfig) -> CallbackSender:
    return CallbackSender(
        config,
        signature_header=SIGNATURE_HEADER,
        user_agent=USER_AGENT,
        log=logging.getLogger("sandbox.bank.callbacks"),
    )
