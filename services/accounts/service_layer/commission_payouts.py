"""Commission payouts: a marketplace's commission paid to its payout account.

The same machinery as artisans' payouts: a ``payouts`` row (``payee_type`` marketplace), the same
states, the same bank partner, callbacks and worker sync (``bank_transfers.py``), the same steps
in the ledger with the marketplace's commission in place of the artisan's available balance:

    created   Dr marketplace commission / Cr payouts_in_transit
    paid      Dr payouts_in_transit     / Cr bank:{source bank code}
    failed    Dr payouts_in_transit     / Cr marketplace commission (the funds come back)

Two ways in: on demand by an operator (``request_commission_payout``, idempotent on the
Idempotency-Key like artisans' payouts; no amount pays the whole commission balance), and on the
marketplace's schedule (``run_commission_payout_schedules``, daily or weekly, one payout per window).

No balance rule guards a marketplace's accounts in ``post`` (a reserve may go below zero), so the
commission balance is checked here, under the lock of the commission account: two payouts at once
cannot together pay out more than there is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters import ledger, marketplaces, payouts
from services.accounts.adapters.orm import Payout
from services.accounts.domain.ledger import marketplace
from services.accounts.domain.payouts import (
    PayeeType,
    PayoutStatus,
    PayoutStep,
    commission_schedule_key,
    schedule_is_due,
)
from services.accounts.service_layer.bank_transfers import submit_payout
from services.accounts.service_layer.marketplace_settings import check_marketplace_visible
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.payout_steps import payout_event, step_posting
from services.accounts.service_layer.payouts import payout_asked_with
from services.accounts.service_layer.posting import post
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, HirfaError, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

SCHEDULE_REQUESTER = "schedule"


@dataclasses.dataclass(frozen=True)
class RequestCommissionPayout:
    marketplace_id: str
    amount: int | None = None  # minor units; None: the whole commission balance
    currency: str | None = None
    description: str | None = None
    idempotency_key: str | None = None


def commission_balance(session: Session, marketplace_id: str, currency: str) -> int:
    """What the platform owes the marketplace in commission (read, not locked)."""
    return ledger.shown_if_open(session, marketplace(marketplace_id, "commission"), currency)


def request_commission_payout(
    uow: UnitOfWork, command: RequestCommissionPayout, principal: Principal, settings: PayoutSettings
) -> Payout:
    """An operator pays out a marketplace's commission: created (committed, with its entry), then
    handed to the bank. Returns the payout as it stands."""
    if not principal.acts_as(Role.OPERATOR):
        raise Forbidden("Commission payouts are made by operators.", code="role_not_allowed")
    key = (command.idempotency_key or "").strip()
    request_key = f"{principal.client_id}:{key}" if key else None
    with uow:
        payout = _asked_with(uow, request_key, command, settings)
        if payout is None:
            payout = create_commission_payout(
                uow,
                command,
                settings,
                source="api",
                requested_by=principal.client_id,
                request_key=request_key,
            )
            uow.commit()
    submit_payout(uow, payout.id, settings)
    with uow:
        return uow.session.get(Payout, payout.id)


def _asked_with(
    uow: UnitOfWork, request_key: str | None, command: RequestCommissionPayout, settings: PayoutSettings
) -> Payout | None:
    """The payout an earlier request with this key created (``payouts.payout_asked_with``): the same
    marketplace, amount (none given: whatever the balance was), currency and description."""

    def same_request(payout: Payout) -> bool:
        asked = (
            PayeeType.MARKETPLACE,
            command.marketplace_id,
            payout.amount if command.amount is None else command.amount,
            command.currency or settings.currency,
            command.description,
        )
        return asked == (
            payout.payee_type,
            payout.marketplace_id,
            payout.amount,
            payout.currency,
            payout.description,
        )

    return payout_asked_with(uow.session, request_key, settings.idempotency_key_ttl, same_request)


def create_commission_payout(
    uow: UnitOfWork,
    command: RequestCommissionPayout,
    settings: PayoutSettings,
    *,
    source: str,
    requested_by: str,
    schedule_key: str | None = None,
    request_key: str | None = None,
) -> Payout:
    """Add a pending commission payout and its entry to the open unit of work, or refuse:
    ``no_payout_account`` (no RIB registered), ``insufficient_funds`` (409), ``unsupported_currency``."""
    session = uow.session
    currency = command.currency or settings.currency
    if currency != settings.currency:
        raise ValidationFailed(
            f"Payouts are made in {settings.currency}.", code="unsupported_currency", param="currency"
        )
    row = marketplaces.settings(session, command.marketplace_id)
    if row is None or not row.payout_rib:
        raise Conflict(
            "The marketplace has no payout account registered.",
            code="no_payout_account",
            param="marketplace_id",
        )
    commission = marketplace(command.marketplace_id, "commission")
    # Locked until commit: a concurrent commission payout waits here and sees this one's debit.
    locked = ledger.lock_accounts(session, [commission], currency)
    balance = locked[commission].shown
    amount = balance if command.amount is None else command.amount
    if amount <= 0 or amount > balance:
        raise Conflict(
            "The amount is more than the marketplace's commission balance."
            if amount > 0
            else "The marketplace has no commission to pay out.",
            code="insufficient_funds",
            param="amount",
            available={"amount": balance, "currency": currency},
        )
    now = utcnow()
    payout = Payout(
        id=new_id("po"),
        payee_type=PayeeType.MARKETPLACE,
        artisan_id=None,
        marketplace_id=command.marketplace_id,
        amount=amount,
        currency=currency,
        status=PayoutStatus.PENDING,
        bank_account_id=None,
        rib=row.payout_rib,
        holder_name=row.payout_holder_name,
        bank_code=row.payout_bank_code,
        partner_bank=settings.partner_bank,
        source_bank_code=settings.source_bank_code,
        description=command.description,
        source=source,
        schedule_key=schedule_key,
        request_key=request_key,
        requested_by=requested_by,
        created_at=now,
        updated_at=now,
    )
    session.add(payout)
    entry = post(uow, step_posting(payout, PayoutStep.CREATED))
    uow.add_event(
        payout_event(
            "accounts.payout.created",
            payout,
            entry_id=entry.id,
            description=payout.description,
            requested_by=requested_by,
        )
    )
    return payout


def list_commission_payouts(
    uow: UnitOfWork,
    marketplace_id: str,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    status: str | None = None,
) -> Page:
    """A marketplace's commission payouts, oldest first (operators, or the marketplace itself)."""
    check_marketplace_visible(principal, marketplace_id)
    query = sa.select(Payout).where(
        Payout.payee_type == PayeeType.MARKETPLACE, Payout.marketplace_id == marketplace_id
    )
    if status is not None:
        query = query.where(Payout.status == status)
    with uow:
        return paginate(uow.session, query, Payout.id, limit=limit, starting_after=starting_after)


def run_commission_payout_schedules(
    uow_factory: Callable[[], UnitOfWork],
    settings: PayoutSettings,
    *,
    now: dt.datetime | None = None,
    batch_size: int = 200,
) -> int:
    """Pay out the commission of every marketplace whose daily or weekly payout is due at ``now``
    (the worker, each pass), then submit the payouts. Returns how many were created."""
    now = now or utcnow()
    created: list[str] = []
    after = ""
    while True:
        with uow_factory() as uow:
            due = list(marketplaces.scheduled_ids(uow.session, after=after, limit=batch_size))
        if not due:
            break
        for marketplace_id in due:
            payout_id = _pay_out_if_due(uow_factory(), marketplace_id, settings, now)
            if payout_id is not None:
                created.append(payout_id)
        after = due[-1]
    for payout_id in created:
        submit_payout(uow_factory(), payout_id, settings)
    return len(created)


def _pay_out_if_due(
    uow: UnitOfWork, marketplace_id: str, settings: PayoutSettings, now: dt.datetime
) -> str | None:
    with uow:
        session = uow.session
        row = marketplaces.settings(session, marketplace_id)
        if row is None:
            return None
        interval = row.commission_payout_interval
        key = commission_schedule_key(marketplace_id, interval, now)
        if payouts.created_in_window(session, key) is not None:
            return None
        balance = commission_balance(session, marketplace_id, settings.currency)
        if not schedule_is_due(interval, balance, None):
            return None
        command = RequestCommissionPayout(
            marketplace_id=marketplace_id, description=f"Automatic {interval} commission payout"
        )
        try:
            payout = create_commission_payout(
                uow, command, settings, source="schedule", requested_by=SCHEDULE_REQUESTER, schedule_key=key
            )
            uow.commit()
        except HirfaError as refusal:
            # No payout account yet, or an operator's payout just took the balance: next pass.
            log.info(
                "commission payout skipped", extra={"marketplace_id": marketplace_id, "code": refusal.code}
            )
            return None
        except sa.exc.IntegrityError:
            log.info("commission payout created by another worker", extra={"marketplace_id": marketplace_id})
            return None
        return payout.id
