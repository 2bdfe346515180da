"""Payouts: an artisan's available funds paid to their bank account through a bank partner.

    created   Dr artisan available    / Cr payouts_in_transit       posting key payout:{id}:created
    paid      Dr payouts_in_transit   / Cr bank:{source bank code}  posting key payout:{id}:paid
    failed    Dr payouts_in_transit   / Cr artisan available        posting key payout:{id}:failed

A payout is saved ``pending`` with its entry and committed before the bank is called, so a crash or
a bank outage never loses one: ``sync_payouts`` (run by the worker) submits what the bank never
accepted (the bank deduplicates on our payout id, so nothing is sent twice) and polls what it has
not answered in time. The bank's answers (the reply to a submission, signed callbacks, polls) only
ever move a payout forward, so duplicates and late deliveries change nothing.

Two payouts can never overdraw an artisan: ``post`` locks the artisan's available account and
refuses an entry that would take it below zero, and that refusal is ``insufficient_funds``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.banks import (
    BankPartnerError,
    BankPartnerRegistry,
    InvalidCallback,
    Transfer,
    TransferRequest,
)
from services.accounts.adapters.orm import (
    ArtisanLimits,
    ArtisanOwner,
    LedgerAccount,
    LedgerCase,
    Payout,
    PayoutDestination,
)
from services.accounts.domain.ledger import AccountRef, artisan, bank, platform, shown_balance
from services.accounts.domain.payouts import (
    FAILURE_CODES,
    FALLBACK_FAILURE_CODE,
    STATUS_FROM_BANK,
    PayoutStatus,
    advances,
)
from services.accounts.service_layer.ledger import check_artisan_visible
from services.accounts.service_layer.posting import (
    BalanceRuleViolation,
    Posting,
    post,
    post_once,
    record_case,
)
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import UnitOfWork, utcnow
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IdempotencyKeyReuse,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from shared.events import Event, make_event
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

# Bank partners hold ``payouts:write`` but only read payouts: the bank executes what operators and
# artisans ask for, and tells us the outcome through signed callbacks, never through this API.
PAYOUT_REQUESTERS = (Role.ARTISAN, Role.OPERATOR)


@dataclasses.dataclass(frozen=True)
class PayoutSettings:
    partners: BankPartnerRegistry
    partner_bank: str  # the slug of the partner executing transfers
    source_bank_code: str  # the client-funds bank payouts leave from
    currency: str
    callback_base_url: str
    poll_after: dt.timedelta
    # How long an Idempotency-Key stands for its payout: the API's keys live as long (then a
    # client may use the key again, for a new payout).
    idempotency_key_ttl: dt.timedelta = dt.timedelta(hours=24)

    @property
    def callback_url(self) -> str:
        return f"{self.callback_base_url.rstrip('/')}/v1/banks/{self.partner_bank}/callbacks"


@dataclasses.dataclass(frozen=True)
class RequestPayout:
    artisan_id: str
    amount: int  # minor units, > 0
    currency: str
    bank_account_id: str | None = None
    description: str | None = None
    idempotency_key: str | None = None  # the request's Idempotency-Key


def ensure_may_request_payouts(principal: Principal) -> None:
    if principal.role not in PAYOUT_REQUESTERS:
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
    request_key = f"{principal.client_id}:{key}" if key else None
    with uow:
        check_artisan_visible(uow.session, command.artisan_id, principal)
        payout = _payout_asked_with(uow.session, request_key, command, settings.idempotency_key_ttl)
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
    """The payout an earlier request with this Idempotency-Key created, if any.

    The idempotency layer normally replays the first answer before we get here; this is for when
    it could not (the first request died after its payout was committed). The same key for a
    different payout is refused, as the idempotency layer would. A key older than the layer's
    lifetime is free again: the old payout lets go of it.
    """
    if request_key is None:
        return None
    payout = session.scalar(sa.select(Payout).where(Payout.request_key == request_key).with_for_update())
    if payout is None:
        return None
    if payout.created_at < utcnow() - ttl:
        payout.request_key = None
        session.flush()
        return None
    asked = (command.artisan_id, command.amount, command.currency, command.description)
    if asked != (payout.artisan_id, payout.amount, payout.currency, payout.description) or (
        command.bank_account_id not in (None, payout.bank_account_id)
    ):
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
    posting = _posting(
        payout,
        "created",
        debit=artisan(payout.artisan_id, "available"),
        credit=platform("payouts_in_transit"),
    )
    try:
        entry = post(uow, posting)
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
        _payout_event(
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
    if limits is None or limits.kyc_tier < 1 or limits.kyc_status != "active":
        raise Conflict(
            "The artisan cannot receive payouts: their KYC tier is 0, was rejected, or is not known yet.",
            code="payouts_not_allowed",
            param="artisan_id",
        )


def _destination(session: Session, artisan_id: str, bank_account_id: str | None) -> PayoutDestination:
    if bank_account_id is not None:
        destination = session.get(PayoutDestination, bank_account_id)
        # Another artisan's account gets the same answer as a missing one: nothing leaks.
        if destination is None or destination.artisan_id != artisan_id:
            raise Conflict(
                f"The artisan has no bank account {bank_account_id!r} on file.",
                code="no_payout_account",
                param="bank_account_id",
            )
        return destination
    destination = session.scalar(
        sa.select(PayoutDestination).where(
            PayoutDestination.artisan_id == artisan_id, PayoutDestination.is_default.is_(True)
        )
    )
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
    row = session.execute(
        sa.select(LedgerAccount.balance, LedgerAccount.normal_side).where(
            LedgerAccount.owner_type == "artisan",
            LedgerAccount.owner_id == artisan_id,
            LedgerAccount.kind == "available",
            LedgerAccount.currency == currency,
        )
    ).first()
    return 0 if row is None else shown_balance(row.balance, row.normal_side)


# -- the bank ----------------------------------------------------------------------------------------


def submit_payout(uow: UnitOfWork, payout_id: str, settings: PayoutSettings) -> bool:
    """Hand one pending payout to its bank; on a failure it stays pending for the worker.

    No transaction is open while the bank is called (SQLite would hold its write lock meanwhile).
    Returns whether the bank accepted it.
    """
    with uow:
        payout = uow.session.get(Payout, payout_id)
        if payout is None or payout.status != PayoutStatus.PENDING:
            return False
        request = TransferRequest(
            reference=payout.id,
            rib=payout.rib,
            holder_name=payout.holder_name,
            amount=payout.amount,
            currency=payout.currency,
            callback_url=settings.callback_url,
        )
        partner_bank = payout.partner_bank
    try:
        transfer = settings.partners.get(partner_bank).request_transfer(request)
    except BankPartnerError as exc:
        level = logging.WARNING if exc.transient else logging.ERROR
        log.log(
            level,
            "payout not submitted; the worker will retry",
            extra={"payout_id": payout_id, "error": str(exc)},
        )
        return False
    with uow:
        payout = _locked(uow.session, payout_id)
        if not _answer_matches(payout, transfer):
            return False
        _record_acceptance(payout, transfer)
        _apply_bank_status(uow, payout, transfer)
        uow.commit()
    return True


def _locked(session: Session, payout_id: str) -> Payout | None:
    return session.scalar(sa.select(Payout).where(Payout.id == payout_id).with_for_update())


def _answer_matches(payout: Payout | None, transfer: Transfer) -> bool:
    """The bank's transfer is this payout: same reference, same bank transfer, same money."""
    if payout is None or transfer.reference != payout.id:
        return False
    if payout.partner_reference not in (None, transfer.partner_reference):
        return False
    if (transfer.amount, transfer.currency) != (payout.amount, payout.currency):
        log.error("bank reported another amount for a payout", extra={"payout_id": payout.id})
        return False
    return True


def _record_acceptance(payout: Payout, transfer: Transfer) -> None:
    if payout.partner_reference is None:
        payout.partner_reference = transfer.partner_reference
    payout.submitted_at = payout.submitted_at or utcnow()


def _apply_bank_status(uow: UnitOfWork, payout: Payout, transfer: Transfer) -> bool:
    """Move the payout to what the bank reports, if that is a step forward. Returns whether it moved."""
    target = STATUS_FROM_BANK.get(transfer.status)
    if target is None:
        log.warning(
            "unknown transfer status from the bank", extra={"payout_id": payout.id, "status": transfer.status}
        )
        return False
    if not advances(payout.status, target):
        return False
    now = utcnow()
    if payout.status == PayoutStatus.PENDING:
        # Any answer about the transfer means the bank has it: a payout goes through in_transit.
        payout.status = PayoutStatus.IN_TRANSIT
        payout.updated_at = now
        uow.add_event(_payout_event("accounts.payout.in_transit", payout))
    if target == PayoutStatus.PAID:
        _settle_paid(uow, payout, now)
    elif target == PayoutStatus.FAILED:
        _settle_failed(uow, payout, transfer.failure_code, now)
    return True


def _settle_paid(uow: UnitOfWork, payout: Payout, now: dt.datetime) -> None:
    entry = post(
        uow,
        _posting(payout, "paid", debit=platform("payouts_in_transit"), credit=bank(payout.source_bank_code)),
    )
    payout.status = PayoutStatus.PAID
    payout.paid_at = payout.updated_at = now
    uow.add_event(_payout_event("accounts.payout.paid", payout, entry_id=entry.id, paid_at=now.isoformat()))


def _settle_failed(uow: UnitOfWork, payout: Payout, failure_code: str | None, now: dt.datetime) -> None:
    if failure_code not in FAILURE_CODES:
        log.warning(
            "unknown failure code from the bank", extra={"payout_id": payout.id, "failure_code": failure_code}
        )
        failure_code = FALLBACK_FAILURE_CODE
    posting = _posting(
        payout, "failed", debit=platform("payouts_in_transit"), credit=artisan(payout.artisan_id, "available")
    )
    entry_id: str | None = None
    try:
        with uow.session.begin_nested():
            entry_id = post(uow, posting).id
    except BalanceRuleViolation as violation:
        # The artisan's cap fell below their balance while the money was away (a KYC downgrade):
        # the funds wait in payouts_in_transit, with a case that says whose they are, until
        # return_waiting_payout_funds finds room for them (a tier upgrade, money paid out).
        log.warning(
            "failed payout's funds not returned yet", extra={"payout_id": payout.id, "rule": violation.rule}
        )
        record_case(uow, posting, violation).status = "waiting"
    payout.status = PayoutStatus.FAILED
    payout.failure_code = failure_code
    payout.failed_at = payout.updated_at = now
    uow.add_event(
        _payout_event(
            "accounts.payout.failed",
            payout,
            failure_code=failure_code,
            funds_returned=entry_id is not None,
            entry_id=entry_id,
            failed_at=now.isoformat(),
        )
    )


def _posting(payout: Payout, step: str, *, debit: AccountRef, credit: AccountRef) -> Posting:
    """The payout's whole amount moved from ``credit`` to ``debit`` for one step of its life."""
    what = {"created": "to", "paid": "paid to", "failed": "failed, returned from"}[step]
    return Posting(
        cause="payout",
        cause_id=payout.id,
        posting_key=f"payout:{payout.id}:{step}",
        description=f"Payout {payout.id} {what} bank {payout.bank_code} account …{payout.rib_last4}",
        currency=payout.currency,
        artisan_id=payout.artisan_id,
        lines=((debit, payout.amount), (credit, -payout.amount)),
    )


def _payout_event(event_type: str, payout: Payout, **extra: Any) -> Event:
    return make_event(
        event_type,
        subject=payout.artisan_id,
        data={
            "payout_id": payout.id,
            "artisan_id": payout.artisan_id,
            "amount": {"amount": payout.amount, "currency": payout.currency},
            "status": payout.status,
            "bank_account_id": payout.bank_account_id,
            "bank_code": payout.bank_code,
            # Only the last digits leave the service: the event stream is read widely.
            "rib_last4": payout.rib_last4,
            "source": payout.source,
            "bank_reference": payout.partner_reference,
            "occurred_at": utcnow().isoformat(),
            **extra,
        },
    )


def handle_callback(
    uow: UnitOfWork, bank_slug: str, headers: Mapping[str, str], raw_body: bytes, settings: PayoutSettings
) -> dict[str, Any]:
    """Verify and apply a bank callback. Idempotent: a duplicate or late callback changes nothing."""
    if bank_slug not in settings.partners:
        raise NotFound(f"No partner bank {bank_slug!r}.", param="bank")
    try:
        callback = settings.partners.get(bank_slug).parse_callback(headers, raw_body)
    except InvalidCallback as exc:
        log.warning("bank callback refused", extra={"bank": bank_slug, "reason": exc.reason})
        if exc.reason == "malformed":
            raise BadRequest(
                "The callback is signed but is not a transfer we can read.", code="malformed_callback"
            ) from None
        raise Unauthenticated(
            "The callback signature is missing, invalid or outside the replay window.",
            code="invalid_signature",
        ) from None
    transfer = callback.transfer
    with uow:
        payout = _locked(uow.session, transfer.reference)
        if payout is None or payout.partner_bank != bank_slug or not _answer_matches(payout, transfer):
            raise NotFound("No payout with this reference.", param="reference")
        _record_acceptance(payout, transfer)
        applied = _apply_bank_status(uow, payout, transfer)
        uow.commit()
        return {"received": True, "applied": applied, "status": payout.status}


def return_waiting_payout_funds(uow_factory: Callable[[], UnitOfWork], *, limit: int = 200) -> int:
    """Give failed payouts' funds back to available where the artisan's cap now has room for them
    (the worker, each pass). Returns how many came back; their cases are resolved.

    One transaction per payout: holding one artisan's accounts while locking the next artisan's
    would deadlock with postings that lock those in the other order.
    """
    with uow_factory() as uow:
        case_ids = list(
            uow.session.scalars(
                sa.select(LedgerCase.id)
                .where(LedgerCase.cause == "payout", LedgerCase.status == "waiting")
                .order_by(LedgerCase.created_at, LedgerCase.id)
                .limit(limit)
            )
        )
    return sum(_return_payout_funds(uow_factory(), case_id) for case_id in case_ids)


def _return_payout_funds(uow: UnitOfWork, case_id: str) -> bool:
    with uow:
        session = uow.session
        case = session.scalar(
            sa.select(LedgerCase)
            .where(LedgerCase.id == case_id, LedgerCase.status == "waiting")
            .with_for_update(skip_locked=True)
        )
        if case is None:
            return False  # returned meanwhile, or another worker is at it
        payout = session.get(Payout, case.cause_id)
        posting = _posting(
            payout,
            "failed",
            debit=platform("payouts_in_transit"),
            credit=artisan(payout.artisan_id, "available"),
        )
        try:
            entry = post_once(uow, posting)
        except BalanceRuleViolation:
            return False  # still no room
        case.status = "resolved"
        case.details = {
            **case.details,
            "resolved_at": utcnow().isoformat(),
            "resolution": "funds_returned",
            **({"entry_id": entry.id} if entry is not None else {}),
        }
        uow.commit()
    log.info("failed payout's funds returned", extra={"payout_id": payout.id})
    return True


def sync_payouts(
    uow_factory: Callable[[], UnitOfWork],
    settings: PayoutSettings,
    *,
    now: dt.datetime | None = None,
    limit: int = 50,
) -> dict[str, int]:
    """Submit payouts the bank never accepted, and poll those it has not settled in time."""
    now = now or utcnow()
    with uow_factory() as uow:
        unsubmitted = uow.session.scalars(
            sa.select(Payout.id).where(Payout.status == PayoutStatus.PENDING).order_by(Payout.id).limit(limit)
        ).all()
        overdue = uow.session.execute(
            sa.select(Payout.id, Payout.partner_bank, Payout.partner_reference)
            .where(
                Payout.status == PayoutStatus.IN_TRANSIT,
                Payout.partner_reference.is_not(None),
                Payout.submitted_at <= now - settings.poll_after,
            )
            .order_by(Payout.id)
            .limit(limit)
        ).all()
    submitted = sum(submit_payout(uow_factory(), payout_id, settings) for payout_id in unsubmitted)
    settled = 0
    for payout_id, partner_bank, partner_reference in overdue:
        try:
            transfer = settings.partners.get(partner_bank).transfer(partner_reference)
        except BankPartnerError as exc:
            log.warning("could not poll a payout", extra={"payout_id": payout_id, "error": str(exc)})
            continue
        with uow_factory() as uow:
            payout = _locked(uow.session, payout_id)
            if _answer_matches(payout, transfer) and _apply_bank_status(uow, payout, transfer):
                settled += 1
            uow.commit()
    return {"submitted": submitted, "polled": len(overdue), "settled": settled}


# -- reading -----------------------------------------------------------------------------------------


def _visible_payouts(principal: Principal) -> sa.Select:
    """Artisans see their own payouts, marketplaces their artisans', operators and banks all."""
    query = sa.select(Payout)
    if principal.role == Role.ARTISAN:
        return query.where(Payout.artisan_id == principal.client_id)
    if principal.is_marketplace:
        own_artisans = sa.select(ArtisanOwner.artisan_id).where(
            ArtisanOwner.marketplace_id == principal.client_id
        )
        return query.where(Payout.artisan_id.in_(own_artisans))
    return query


def get_payout(uow: UnitOfWork, payout_id: str, principal: Principal) -> Payout:
    with uow:
        payout = uow.session.scalar(_visible_payouts(principal).where(Payout.id == payout_id))
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
        query = _visible_payouts(principal)
        if artisan_id is not None:
            check_artisan_visible(uow.session, artisan_id, principal)
            query = query.where(Payout.artisan_id == artisan_id)
        if status is not None:
            query = query.where(Payout.status == status)
        return paginate(uow.session, query, Payout.id, limit=limit, starting_after=starting_after)
