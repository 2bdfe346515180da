"""Payouts' adapters, wired from the configuration once per service context.

The settings live in ``context.extras`` and are built on first use, by a request or by the worker;
a test installs a fake bank partner with ``use_bank_partners`` before that.
"""

from __future__ import annotations

import datetime as dt

from services.accounts.adapters.banks import BankPartnerRegistry, HttpBankPartner
from services.accounts.config import AccountsConfig
from services.accounts.service_layer.payouts import PayoutSettings
from shared.context import ServiceContext

PAYOUTS_EXTRA = "accounts.payouts"


def make_payout_settings(
    config: AccountsConfig, partners: BankPartnerRegistry | None = None
) -> PayoutSettings:
    if partners is None:
        adapter = HttpBankPartner(
            config.bank_partner_url,
            api_key=config.bank_partner_api_key,
            callback_secret=config.bank_callback_secret,
            timeout=config.http_timeout_seconds,
            tolerance_seconds=config.bank_callback_tolerance_seconds,
        )
        partners = BankPartnerRegistry({config.payout_partner_bank: adapter})
    return PayoutSettings(
        partners=partners,
        partner_bank=config.payout_partner_bank,
        source_bank_code=config.payout_bank_code,
        currency=config.ledger_currency,
        callback_base_url=config.public_url,
        poll_after=config.payout_poll_after,
        idempotency_key_ttl=dt.timedelta(hours=config.idempotency_key_ttl_hours),
    )


def payout_settings(context: ServiceContext) -> PayoutSettings:
    settings = context.extras.get(PAYOUTS_EXTRA)
    if settings is None:
        # setdefault: two first requests racing end up sharing one set of adapters.
        settings = context.extras.setdefault(PAYOUTS_EXTRA, make_payout_settings(context.config))
    return settings


def use_bank_partners(context: ServiceContext, partners: BankPartnerRegistry) -> PayoutSettings:
    """Replace the bank-partner adapters (tests: an in-memory bank)."""
    settings = make_payout_settings(context.config, partners)
    context.extras[PAYOUTS_EXTRA] = settings
    return settings
