"""A marketplace's money settings: the platform's fee on its payments, the bank account its
commission is paid out to, and the commission payout schedule.

Who may do what: operators read and change everything; a marketplace reads its own settings and
sets its own payout account and schedule; the platform's fee is the operators' alone (scope
``ledger:operate``, checked by the view). Anyone else, or a marketplace asking about another one,
is told the marketplace does not exist (404), so nothing leaks.

The payout RIB is checked exactly as artisans' RIBs are (``shared/banking.py``): one rule for
onboarding, accounts and the bank sandbox.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from services.accounts.adapters import marketplaces
from services.accounts.adapters.orm import MarketplaceSettings
from services.accounts.domain.payouts import COMMISSION_INTERVALS, rib_last4
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.banking import BankIdentifierError, parse_rib
from shared.db import UnitOfWork, utcnow
from shared.errors import NotFound, ValidationFailed

# Far beyond any fee, inside a 64-bit column; basis points up to 100 %.
MAX_FIXED_FEE = 10**9
MAX_BASIS_POINTS = 10_000


@dataclasses.dataclass(frozen=True)
class PlatformFee:
    basis_points: int
    fixed: int  # minor units
    currency: str


def check_marketplace_visible(principal: Principal, marketplace_id: str) -> None:
    """Operators see every marketplace, a marketplace itself only; others get 404."""
    if principal.acts_as(Role.OPERATOR):
        return
    if principal.is_marketplace and principal.client_id == marketplace_id:
        return
    raise NotFound(f"No marketplace {marketplace_id!r}.", param="marketplace_id")


def _for_update(
    uow: UnitOfWork, marketplace_id: str, currency: str, principal: Principal
) -> MarketplaceSettings:
    """The marketplace's settings row, locked, created with the defaults on first change (a first
    change racing another one waits for it and applies on top, see ``settings_locked_or_new``)."""
    now = utcnow()
    row = marketplaces.settings_locked_or_new(
        uow.session, marketplace_id, currency, updated_by=principal.client_id, updated_at=now
    )
    row.updated_by = principal.client_id
    row.updated_at = now
    return row


def view(row: MarketplaceSettings | None, marketplace_id: str, currency: str) -> dict[str, Any]:
    """The settings as the API shows them: the payout account by its last four digits only."""
    if row is None:
        row = MarketplaceSettings(
            marketplace_id=marketplace_id,
            platform_fee_bp=0,
            platform_fee_fixed=0,
            currency=currency,
            commission_payout_interval="manual",
        )
    account = None
    if row.payout_rib:
        account = {
            "bank_code": row.payout_bank_code,
            "rib_last4": rib_last4(row.payout_rib),
            "holder_name": row.payout_holder_name,
        }
    return {
        "marketplace_id": marketplace_id,
        "platform_fee": {
            "basis_points": row.platform_fee_bp,
            "fixed": {"amount": row.platform_fee_fixed, "currency": row.currency},
        },
        "payout_account": account,
        "commission_payout_schedule": row.commission_payout_interval,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at,
    }


def get_settings(uow: UnitOfWork, marketplace_id: str, principal: Principal, currency: str) -> dict[str, Any]:
    check_marketplace_visible(principal, marketplace_id)
    with uow:
        return view(marketplaces.settings(uow.session, marketplace_id), marketplace_id, currency)


def set_platform_fee(
    uow: UnitOfWork, marketplace_id: str, fee: PlatformFee, principal: Principal, currency: str
) -> dict[str, Any]:
    """The platform's fee on the marketplace's future payments (operators; the view checks the scope)."""
    if not principal.acts_as(Role.OPERATOR):
        raise NotFound(f"No marketplace {marketplace_id!r}.", param="marketplace_id")
    if fee.currency != currency:
        raise ValidationFailed(
            f"Fees are in {currency}.", code="unsupported_currency", param="fixed.currency"
        )
    with uow:
        row = _for_update(uow, marketplace_id, currency, principal)
        row.platform_fee_bp = fee.basis_points
        row.platform_fee_fixed = fee.fixed
        uow.commit()
        return view(row, marketplace_id, currency)


def set_payout_account(
    uow: UnitOfWork, marketplace_id: str, *, rib: str, holder_name: str, principal: Principal, currency: str
) -> dict[str, Any]:
    """Register the bank account the marketplace's commission is paid to, checked like any RIB."""
    check_marketplace_visible(principal, marketplace_id)
    try:
        account = parse_rib(rib)
    except BankIdentifierError as error:
        raise ValidationFailed(str(error), code=error.code, param=error.param) from None
    holder = holder_name.strip()
    if not holder:
        raise ValidationFailed("The account holder's name is required.", param="holder_name")
    with uow:
        row = _for_update(uow, marketplace_id, currency, principal)
        row.payout_rib = account.rib
        row.payout_iban = account.iban
        row.payout_bank_code = account.bank_code
        row.payout_holder_name = holder
        uow.commit()
        return view(row, marketplace_id, currency)


def set_commission_schedule(
    uow: UnitOfWork, marketplace_id: str, interval: str, principal: Principal, currency: str
) -> dict[str, Any]:
    """``manual`` (an operator pays out on demand), ``daily`` or ``weekly`` (the worker pays the
    whole commission balance once per UTC day or ISO week)."""
    check_marketplace_visible(principal, marketplace_id)
    if interval not in COMMISSION_INTERVALS:
        raise ValidationFailed("A commission payout schedule is manual, daily or weekly.", param="interval")
    with uow:
        row = _for_update(uow, marketplace_id, currency, principal)
        row.commission_payout_interval = interval
        uow.commit()
        return view(row, marketplace_id, currency)
