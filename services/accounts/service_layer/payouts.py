"""Payouts: an artisan's available funds paid to their bank account through a bank partner.

Here a payout is asked for, created with its ledger entry, and read; ``bank_transfers.py`` takes it
to the bank and applies the bank's answers. The entries of each step: ``payout_steps.py``.

Two payouts can never overdraw an artisan: ``post`` locks the artisan's available account and
refuses an entry that would take it below zero, and that refusal is ``insufficient_funds``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy.orm import Session

from services.accounts.adapters import ledger, payouts
from services.accounts.adapters.orm import ArtisanLimits, Payout, PayoutDestination
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import artisan
from services.accounts.domain.payouts import PayeeType, PayoutStatus, PayoutStep
from services.accounts.service_layer.bank_transfers import submit_payout
from services.accounts.service_layer.ledger import check_artisan_visible
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.payout_steps import payout_event, step_posting
from services.accounts.service_layer.posting import post
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, IdempotencyKeyReuse, NotFound, ValidationFailed
from shared.idempotency_store import key_lifetime
from shared.ids import new_id
from shared.kyc import can_be_paid
from shared.money import Money
from shared.pagination import Page, paginate

# Bank partners hold ``payouts:write`` but only read payouts: the bank executes what operators and
# artisans ask for, and tells us the outcome through signed callbacks, never through this API.
# (An operator is an operator API client or a staff member holding the operator role.)
PAYOUT_REQUESTERS = (Role.ARTISAN, Role.OPERATOR)


@dataclasses.dataclass(frozen=True)
class RequestPayout:
    artisan_id: str
    amount: int  # minor units, > 0
    currency: str
    bank_account_id: str | None = None
    description: str | None = None
    idempotency_key: str | None = None  # the request's Idempotency-Key


def ensure_may_request_payouts(principal: Principal) -> None:
    if not any(principal.acts_as(role) for role in PAYOUT_REQUESTERS):
        raise Forbidden(
            "Payouts are requested by the artisan or an operator; bank partners read them.",
            code="role_not_allowed",
        )


# -- creating ----------------------------------------------------------------------------------------


def request_payout(
    uow: UnitOfWork, command: RequestPayout, principal: Principal, settings: PayoutSettings
) -> Payout:
    """Create a payout (committed, with its entry), then hand it to the bank. Returns it as it stands."""
    ensure_may_request_payouts(principal)
    key = (command.idempotency_key or "").strip()  # as the idempotency layer reads it
    # Scoped as the idempotency layer scopes keys: per client, or per artisan and device.
    request_key = f"{principal.idempotency_scope}:{key}" if key else None
    ttl = key_lifetime(
        is_artisan=principal.is_artisan,
        ttl=settings.idempotency_key_ttl,
        artisan_ttl=settings.artisan_idempotency_key_ttl,
    )
    with uow:
        check_artisan_visible(uow.session, command.artisan_id, principal)
        payout = _payout_asked_with(uow.session, request_key, command, ttl)
        if payout is None:
            payout = create_payout(
                uow,
                command,
                settings,
                source="api",
                requested_by=principal.client_id,
                request_key=request_key,
            )
            uow.commit()
    submit_payout(uow, payout.id, settings)  # nothing to do unless it is still pending
    with uow:
        return uow.session.get(Payout, payout.id)


def _payout_asked_with(
    session: Session, request_key: str | None, command: RequestPayout, ttl: dt.timedelta
) -> Payout | None:
    """The payout an earlier request with this Idempotency-Key created, if any (``payout_asked_with``)."""

    def same_request(payout: Payout) -> bool:
        asked = (command.artisan_id, command.amount, command.currency, command.description)
        return asked == (payout.artisan_id, payout.amount, payout.currency, payout.description) and (
            command.bank_account_id in (None, payout.bank_account_id)
        )

    return payout_asked_with(session, request_key, ttl, same_request)


def payout_asked_with(
    session: Session, request_key: str | None, ttl: dt.timedelta, same_request: Callable[[Payout], bool]
) -> Payout | None:
    """The payout an earlier request with this Idempotency-Key created, if any.

    The idempotency layer normally replays the first answer before we get here; this is for when
    it could not (the first request died after its payout was committed). The same key for a
    different payout (``same_request`` says whether the payout is what this request asks for) is
    refused, as the idempotency layer would. A key older than the layer's lifetime is free again:
    the old payout lets go of it.
    """
    if request_key is None:
        return None
    payout = payouts.locked_by_request_key(session, request_key)
    if payout is None:
        return None
    if payout.created_at < utcnow() - ttl:
        payout.request_key = None
        session.flush()
        return None
    if not same_request(payout):
        raise IdempotencyKeyReuse(
            "This Idempotency-Key was used for another payout.", param="Idempotency-Key"
        )
    return payout


def create_payout(
    uow: UnitOfWork,
    command: RequestPayout,
    settings: PayoutSettings,
    *,
    source: str,
    requested_by: str,
    schedule_key: str | None = None,
    request_key: str | None = None,
) -> Payout:
    """Add a pending payout and its ledger entry to the open unit of work, or refuse.

    The caller commits, or on a refusal leaves the unit of work without committing. Refusals:
    ``payouts_not_allowed``, ``no_payout_account``, ``insufficient_funds`` (409), a currency other
    than the ledger's (422 ``unsupported_currency``).
    """
    session = uow.session
    if command.currency != settings.currency:
        raise ValidationFailed(
            f"Payouts are made in {settings.currency}.", code="unsupported_currency", param="currency"
        )
    _ensure_payouts_allowed(session, command.artisan_id)
    destination = _destination(session, command.artisan_id, command.bank_account_id)
    now = utcnow()
    payout = Payout(
        id=new_id("po"),
        payee_type=PayeeType.ARTISAN,
        artisan_id=command.artisan_id,
        amount=command.amount,
        currency=command.currency,
        status=PayoutStatus.PENDING,
        bank_account_id=destination.bank_account_id,
        rib=destination.rib,
        holder_name=destination.holder_name,
        bank_code=destination.bank_code,
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
    # post() locks the artisan's account and re-reads it before checking the balance: of two
    # concurrent payouts, the second waits for the first to commit and sees its debit.
    try:
        entry = post(uow, step_posting(payout, PayoutStep.CREATED))
    except BalanceRuleViolation as violation:
        if violation.rule != "artisan_balance_negative":
            raise
        available = violation.detail["balance_after"] + payout.amount
        raise Conflict(
            "The amount is more than the artisan's available balance.",
            code="insufficient_funds",
            param="amount",
            available={"amount": available, "currency": payout.currency},
        ) from None
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


def _ensure_payouts_allowed(session: Session, artisan_id: str) -> None:
    limits = session.get(ArtisanLimits, artisan_id)
    if limits is None or not can_be_paid(limits.kyc_tier, limits.kyc_status):
        raise Conflict(
            "The artisan cannot receive payouts: their KYC tier is 0, was rejected, or is not known yet.",
            code="payouts_not_allowed",
            param="artisan_id",
        )


def _destination(session: Session, artisan_id: str, bank_account_id: str | None) -> PayoutDestination:
    if bank_account_id is not None:
        destination = payouts.destination(session, bank_account_id)
        # Another artisan's account gets the same answer as a missing one: nothing leaks.
        if destination is None or destination.artisan_id != artisan_id:
            raise Conflict(
                f"The artisan has no bank account {bank_account_id!r} on file.",
                code="no_payout_account",
                param="bank_account_id",
            )
        return destination
    destination = payouts.default_destination(session, artisan_id)
    if destination is None:
        raise Conflict(
            "The artisan has no bank account on file to pay out to.",
            code="no_payout_account",
            param="artisan_id",
        )
    return destination


def available_balance(session: Session, artisan_id: str, currency: str) -> int:
    """The artisan's available balance, read as columns so no account object (which ``post`` would
    then have to refresh) lands in the session."""
    return ledger.shown_if_open(session, artisan(artisan_id, "available"), currency)


# -- reading -----------------------------------------------------------------------------------------


def get_payout(uow: UnitOfWork, payout_id: str, principal: Principal) -> Payout:
    with uow:
        payout = uow.session.scalar(payouts.visible_to(principal).where(Payout.id == payout_id))
        if payout is None:
            raise NotFound(f"No payout {payout_id!r}.", param="payout_id")
        return payout


def list_payouts(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    artisan_id: str | None = None,
    status: str | None = None,
) -> Page:
    with uow:
        query = payouts.visible_to(principal)
        if artisan_id is not None:
            check_artisan_visible(uow.session, artisan_id, principal)
            query = query.where(Payout.artisan_id == artisan_id)
        if status is not None:
            query = query.where(Payout.status == status)
        return paginate(uow.session, query, Payout.id, limit=limit, starting_after=starting_after)


# -- the back office's figures -----------------------------------------------------------------------

# The longest period one request of figures may cover.
MAX_FIGURES_PERIOD = dt.timedelta(days=92)


@dataclasses.dataclass(frozen=True)
class StepFigures:
    count: int
    amount: list[Money]  # per currency


@dataclasses.dataclass(frozen=True)
class PayoutStats:
    since: dt.datetime
    until: dt.datetime
    sent: StepFigures  # handed to the bank
    paid: StepFigures
    failed: StepFigures


def payout_stats(
    uow: UnitOfWork,
    principal: Principal,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> PayoutStats:
    """How many payouts were sent to the bank, paid and failed in ``[since, until)`` (default: until
    now), and for how much: every payee's, for operators."""
    if not principal.acts_as(Role.OPERATOR):
        raise Forbidden("The back office's payout figures are for operators.", code="role_not_allowed")
    until = until or now or utcnow()
    if until <= since:
        raise ValidationFailed("until must be later than since.", param="until")
    if until - since > MAX_FIGURES_PERIOD:
        raise ValidationFailed("A period of figures covers at most 92 days.", param="since")
    with uow:
        figures = payouts.step_figures(uow.session, since=since, until=until)

    def step(name: str) -> StepFigures:
        rows = figures[name]
        return StepFigures(
            count=sum(count for _, count, _ in rows),
            amount=[Money(amount, currency) for currency, _, amount in rows],
        )

    return PayoutStats(since=since, until=until, sent=step("sent"), paid=step("paid"), failed=step("failed"))
