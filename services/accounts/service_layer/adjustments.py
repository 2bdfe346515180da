"""Adjustments and reversals: the only way an operator moves money in the ledger by hand.

- A **reversal** negates one journal entry, line by line; the new entry carries
  ``reverses_entry_id``. An entry is reversed at most once (a unique index says so too).
- A **manual adjustment** moves money between named accounts ({owner_type, owner_id, kind} and a
  signed amount, + debit / − credit; at least two lines, balanced), with a reason.

Both are immutable entries like any other, posted through ``posting.post``: the balance rules still
apply (an adjustment that would leave an artisan below zero or above their cap is refused with the
rule's code, e.g. ``artisan_balance_negative``).

**What it resolves** (``case_id``): a ledger case (``lc_…``, proposed through the API) is resolved
when the adjustment posts (``ledger_cases.adjustment_posted``: a parked event it waited for is
released, and the adjustment's entry is posted under that event's posting key, so the movement
never posts on top of it); a reconciliation case (``rc_…``, proposed by its write-off) is written off
(``recon_cases.adjustment_posted``).

**Four-eyes.** An adjustment moving more than the configured amount (``AccountsConfig.
adjustment_approval_above``; the amount of an adjustment is the sum of its debits) waits in
``pending_approval`` until a *different* API client approves it; the proposer's own approval is
refused (403 ``four_eyes_required``). Up to the amount it posts at once. Either may be rejected
while it waits. States: ``pending_approval`` → ``posted`` | ``rejected``; or ``posted`` at once.

A reversal moves money only: it does not rewrite the bookkeeping around the original entry (a
payment's pending hold, a dispute's hold). The release job never releases more than the pending
account holds, so a reversed payment's hold releases nothing.

``propose_adjustment`` runs inside the caller's open transaction and never commits (reconciliation
proposes write-offs inside its own); the API's functions below open and commit their own.
``_adjustment_posted`` runs whenever an adjustment is posted, at once or on approval.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from services.accounts.adapters import adjustments as store
from services.accounts.adapters import ledger
from services.accounts.adapters.orm import LedgerAdjustment
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import AccountRef, UnbalancedEntry, is_known_account
from services.accounts.domain.postings import EntryLine, Posting, net_amounts, reversal_lines
from services.accounts.service_layer import ledger_cases, recon_cases
from services.accounts.service_layer.posting import post_once
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, IdempotencyKeyReuse, NotFound, ValidationFailed
from shared.events import Event, make_event
from shared.ids import new_id
from shared.pagination import Page, paginate

DEFAULT_APPROVAL_ABOVE = 100_000
DEFAULT_CURRENCY = "MAD"
_APPROVAL_ABOVE = "hirfa.accounts.adjustment_approval_above"
_CURRENCY = "hirfa.accounts.ledger_currency"
MAX_LINES = 20


class AdjustmentStatus:
    PENDING_APPROVAL = "pending_approval"
    POSTED = "posted"
    REJECTED = "rejected"


def configure_adjustments(session_factory: sessionmaker[Any], *, approval_above: int, currency: str) -> None:
    """Give every session of ``session_factory`` the four-eyes threshold and the ledger's currency
    (the composition root calls this once), so a caller inside any transaction applies the
    configured rule without carrying the configuration around."""
    info = dict(session_factory.kw.get("info") or {})
    session_factory.configure(info={**info, _APPROVAL_ABOVE: approval_above, _CURRENCY: currency})


def _ensure_operator(principal: Principal) -> None:
    if not principal.has_scopes("ledger:operate"):
        raise Forbidden("Adjustments are made by operators.", code="role_not_allowed")


# --- proposing --------------------------------------------------------------------------------------


def propose_adjustment(
    uow: UnitOfWork,
    principal: Principal,
    *,
    reason: str,
    lines: Sequence[tuple[AccountRef, int]] | None = None,
    currency: str | None = None,
    reverses_entry_id: str | None = None,
    case_id: str | None = None,
    request_key: str | None = None,
    approval_above: int | None = None,
) -> LedgerAdjustment:
    """Propose a reversal (``reverses_entry_id``) or a manual adjustment (``lines``), in the open
    unit of work: posted at once up to the four-eyes amount, else left ``pending_approval``.

    Never commits. Refusals (nothing is written): 422 ``validation_error`` (bad lines, no reason),
    422 ``unsupported_currency`` (a manual adjustment in another currency than the ledger's), 404
    (no such entry), 409 ``already_reversed`` / ``reversal_pending``, 409 with the balance rule's
    code (``artisan_balance_negative``, ``tier_cap_exceeded``), 422 ``unbalanced_entry``.
    """
    _ensure_operator(principal)
    session = uow.session
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("An adjustment needs a reason.", param="reason")
    if len(reason) > 500:
        raise ValidationFailed("The reason is at most 500 characters.", param="reason")
    if reverses_entry_id is not None:
        if lines is not None:
            raise ValidationFailed(
                "A reversal's lines are the entry's, negated: give no lines.", param="lines"
            )
        kind = "reversal"
        entry_lines, currency = _reversal_of(uow, reverses_entry_id)
    else:
        kind = "manual"
        ledger_currency = session.info.get(_CURRENCY, DEFAULT_CURRENCY)
        currency = currency or ledger_currency
        if currency != ledger_currency:
            # Its lines would open accounts in that currency beside the ledger's own.
            raise ValidationFailed(
                f"The adjustment is in {currency}, but the ledger's accounts are kept in {ledger_currency}: "
                f"give its lines in {ledger_currency}.",
                code="unsupported_currency",
                param="currency",
            )
        entry_lines = _checked_lines(lines)
    takes_key = None
    if ledger_cases.is_ledger_case(case_id):
        assert case_id is not None
        takes_key = ledger_cases.check_open_for_adjustment(session, case_id)
    amount = sum(value for _, value in entry_lines if value > 0)
    threshold = approval_above if approval_above is not None else session.info.get(_APPROVAL_ABOVE)
    threshold = DEFAULT_APPROVAL_ABOVE if threshold is None else threshold
    now = utcnow()
    adjustment = LedgerAdjustment(
        id=new_id("adj"),
        kind=kind,
        status=AdjustmentStatus.PENDING_APPROVAL,
        reason=reason,
        currency=currency,
        amount=amount,
        lines=_stored_lines(entry_lines),
        reverses_entry_id=reverses_entry_id,
        case_id=case_id,
        request_key=request_key,
        proposed_by=principal.client_id,
        proposed_at=now,
    )
    if amount > threshold:
        session.add(adjustment)
        session.flush()
        uow.add_event(_event("accounts.ledger.adjustment_proposed", adjustment))
        return adjustment
    # Posted first, added after: a refusal leaves the caller's transaction as it found it.
    entry_id = _post(uow, adjustment, takes_key)
    adjustment.status = AdjustmentStatus.POSTED
    adjustment.entry_id = entry_id
    adjustment.decided_at = now
    session.add(adjustment)
    session.flush()
    _adjustment_posted(uow, adjustment)
    return adjustment


def _stored_lines(lines: Sequence[tuple[AccountRef, int]]) -> list[dict[str, Any]]:
    """An adjustment's lines as its row keeps them."""
    return [
        {"owner_type": ref.owner_type, "owner_id": ref.owner_id, "kind": ref.kind, "amount": value}
        for ref, value in lines
    ]


def _reversal_of(uow: UnitOfWork, entry_id: str) -> tuple[tuple[EntryLine, ...], str]:
    session = uow.session
    if ledger.entry(session, entry_id) is None:
        raise NotFound(f"No journal entry {entry_id!r}.", param="reverses_entry_id")
    if store.reversal_of(session, entry_id) is not None:
        raise Conflict("This entry was reversed already.", code="already_reversed", param="reverses_entry_id")
    if store.pending_reversal_of(session, entry_id) is not None:
        raise Conflict(
            "A reversal of this entry waits for approval.", code="reversal_pending", param="reverses_entry_id"
        )
    original = store.entry_lines(session, entry_id)
    return reversal_lines((ref, value) for ref, value, _ in original), original[0][2]


def _checked_lines(lines: Sequence[tuple[AccountRef, int]] | None) -> tuple[EntryLine, ...]:
    if not lines or len(lines) < 2:
        raise ValidationFailed("An adjustment has at least two lines.", param="lines")
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"An adjustment has at most {MAX_LINES} lines.", param="lines")
    for index, (ref, value) in enumerate(lines):
        if not is_known_account(ref):
            raise ValidationFailed(
                f"Line {index}: no such account in the chart ({ref.owner_type}/{ref.owner_id}/{ref.kind}).",
                code="unknown_account",
                param=f"lines[{index}]",
            )
        if isinstance(value, bool) or not isinstance(value, int) or value == 0:
            raise ValidationFailed(
                f"Line {index}: the amount is a non-zero integer of minor units.",
                param=f"lines[{index}].amount",
            )
    if sum(value for _, value in lines) != 0:
        raise ValidationFailed(
            "Debits and credits differ: the lines must sum to zero.", code="unbalanced_entry", param="lines"
        )
    if len(net_amounts(lines)) < 2:
        raise ValidationFailed(
            "The lines cancel out: nothing would move.", code="unbalanced_entry", param="lines"
        )
    return tuple(lines)


def _posting(adjustment: LedgerAdjustment, takes_key: str | None = None) -> Posting:
    """The adjustment's entry: under its own posting key, or under ``takes_key``, the key of the
    movement whose parked event it takes the place of (``ledger_cases.check_open_for_adjustment``)."""
    lines = tuple(
        (AccountRef(line["owner_type"], line["owner_id"], line["kind"]), int(line["amount"]))
        for line in adjustment.lines
    )
    artisans = [ref.owner_id for ref, _ in lines if ref.owner_type == "artisan"]
    what = f"Reversal of {adjustment.reverses_entry_id}" if adjustment.kind == "reversal" else "Adjustment"
    return Posting(
        cause="adjustment",
        cause_id=adjustment.id,
        posting_key=takes_key or f"adjustment:{adjustment.id}",
        description=f"{what}: {adjustment.reason}",
        currency=adjustment.currency,
        lines=lines,
        artisan_id=artisans[0] if artisans else None,
        reverses_entry_id=adjustment.reverses_entry_id,
    )


def _post(uow: UnitOfWork, adjustment: LedgerAdjustment, takes_key: str | None = None) -> str:
    """Post the adjustment's entry; a balance rule's refusal becomes a 409 with the rule's code.
    With ``takes_key``, a movement posted under that key meanwhile (its event arrived again and
    posted before the case's pass resolved it) refuses the adjustment: the money is in already."""
    try:
        with uow.session.begin_nested():
            entry = post_once(uow, _posting(adjustment, takes_key))
    except BalanceRuleViolation as violation:
        raise Conflict(
            f"The ledger refuses this adjustment: {violation.rule.replace('_', ' ')}.",
            code=violation.rule,
            param="lines",
            rule_detail=violation.detail,
        ) from None
    except UnbalancedEntry as error:
        raise ValidationFailed(str(error), code="unbalanced_entry", param="lines") from None
    except sa.exc.IntegrityError:
        if takes_key is not None:
            raise _posted_meanwhile() from None
        # Another reversal of the same entry was posted meanwhile (the unique reverses_entry_id).
        raise Conflict(
            "This entry was reversed already.", code="already_reversed", param="reverses_entry_id"
        ) from None
    if entry is None:
        raise _posted_meanwhile()
    return entry.id


def _posted_meanwhile() -> Conflict:
    return Conflict(
        "What the ledger case waits for was posted meanwhile: the case resolves by itself.",
        code="ledger_case_resolved",
        param="case_id",
    )


def _adjustment_posted(uow: UnitOfWork, adjustment: LedgerAdjustment) -> None:
    """Runs whenever an adjustment is posted (at once or on approval), in its transaction: records
    the ``accounts.ledger.adjustment_posted`` event, and tells the case it was made for
    (``adjustment.case_id``: a ledger case or a reconciliation case) that it is done."""
    uow.add_event(_event("accounts.ledger.adjustment_posted", adjustment))
    if ledger_cases.is_ledger_case(adjustment.case_id):
        ledger_cases.adjustment_posted(uow, adjustment)
    elif adjustment.case_id and adjustment.decided_by is not None:
        # Approved by a second operator: the write-off's case is closed in this same transaction.
        # (One posted at once is closed by the write-off itself, after it has noted the proposal.)
        recon_cases.adjustment_posted(
            uow, adjustment.id, adjustment.case_id, adjustment.entry_id or "", adjustment.decided_by
        )


def _event(event_type: str, adjustment: LedgerAdjustment) -> Event:
    data: dict[str, Any] = {
        "adjustment_id": adjustment.id,
        "kind": adjustment.kind,
        "status": adjustment.status,
        "reason": adjustment.reason,
        "amount": {"amount": adjustment.amount, "currency": adjustment.currency},
        "lines": adjustment.lines,
        "reverses_entry_id": adjustment.reverses_entry_id,
        "case_id": adjustment.case_id,
        "proposed_by": adjustment.proposed_by,
        "proposed_at": adjustment.proposed_at.isoformat(),
    }
    if event_type != "accounts.ledger.adjustment_proposed":
        data["decided_by"] = adjustment.decided_by
        data["decided_at"] = adjustment.decided_at.isoformat() if adjustment.decided_at else None
    if event_type == "accounts.ledger.adjustment_posted":
        data["entry_id"] = adjustment.entry_id
    return make_event(event_type, subject=adjustment.id, data=data)


# --- the API's transactions ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProposeAdjustment:
    reason: str
    lines: tuple[tuple[AccountRef, int], ...] | None = None
    currency: str | None = None
    reverses_entry_id: str | None = None
    case_id: str | None = None
    idempotency_key: str | None = None


def request_adjustment(
    uow: UnitOfWork, command: ProposeAdjustment, principal: Principal, *, key_ttl: dt.timedelta
) -> LedgerAdjustment:
    """``POST /v1/ledger/adjustments``: propose and commit. A retry with the same Idempotency-Key
    finds the adjustment its first attempt created, even if the idempotency layer lost the answer."""
    _ensure_operator(principal)
    if command.case_id is not None and not ledger_cases.is_ledger_case(command.case_id):
        raise ValidationFailed(
            "`case_id` names a ledger case (lc_…); a reconciliation case is written off through "
            "its own write-off endpoint.",
            param="case_id",
        )
    key = (command.idempotency_key or "").strip()
    request_key = f"{principal.client_id}:{key}" if key else None
    with uow:
        if request_key is not None:
            earlier = store.by_request_key(uow.session, request_key)
            if earlier is not None:
                if earlier.proposed_at >= utcnow() - key_ttl:
                    if not _same_request(uow, earlier, command):
                        raise IdempotencyKeyReuse(
                            "This Idempotency-Key was used for another adjustment.", param="Idempotency-Key"
                        )
                    return earlier
                earlier.request_key = None
                uow.session.flush()
        adjustment = propose_adjustment(
            uow,
            principal,
            reason=command.reason,
            lines=command.lines,
            currency=command.currency,
            reverses_entry_id=command.reverses_entry_id,
            case_id=command.case_id,
            request_key=request_key,
        )
        uow.commit()
        return adjustment


def _same_request(uow: UnitOfWork, earlier: LedgerAdjustment, command: ProposeAdjustment) -> bool:
    """Whether ``command`` asks for the adjustment ``earlier`` is: the same reason, and the same
    reversal (no lines given) or the same lines (in the stored shape, in order) in the same currency."""
    if (earlier.reason, earlier.reverses_entry_id, earlier.case_id) != (
        (command.reason or "").strip(),
        command.reverses_entry_id,
        command.case_id,
    ):
        return False
    if command.reverses_entry_id is not None:
        return command.lines is None  # a reversal's currency is its entry's, whatever is asked
    currency = command.currency or uow.session.info.get(_CURRENCY, DEFAULT_CURRENCY)
    return (earlier.currency, earlier.lines) == (currency, _stored_lines(command.lines or ()))


def _pending_locked(uow: UnitOfWork, adjustment_id: str) -> LedgerAdjustment:
    adjustment = store.locked(uow.session, adjustment_id)
    if adjustment is None:
        raise NotFound(f"No adjustment {adjustment_id!r}.", param="adjustment_id")
    if adjustment.status != AdjustmentStatus.PENDING_APPROVAL:
        raise Conflict(
            f"The adjustment is {adjustment.status}, not waiting for approval.",
            code="adjustment_not_pending",
            adjustment_status=adjustment.status,
        )
    return adjustment


def approve_adjustment(
    uow: UnitOfWork, adjustment_id: str, principal: Principal, *, note: str | None = None
) -> LedgerAdjustment:
    """A second operator approves: the adjustment is posted. The proposer cannot approve their own
    (403 ``four_eyes_required``)."""
    _ensure_operator(principal)
    with uow:
        adjustment = _pending_locked(uow, adjustment_id)
        if adjustment.proposed_by == principal.client_id:
            raise Forbidden(
                "Four-eyes: an adjustment is approved by someone other than who proposed it.",
                code="four_eyes_required",
            )
        if adjustment.reverses_entry_id and store.reversal_of(uow.session, adjustment.reverses_entry_id):
            raise Conflict("This entry was reversed already.", code="already_reversed")
        takes_key = None
        if ledger_cases.is_ledger_case(adjustment.case_id):
            # Locked before the posting locks the accounts, in the order parked events lock them;
            # a case resolved while this waited refuses it (the money must not post twice).
            takes_key = ledger_cases.check_open_for_adjustment(uow.session, adjustment.case_id or "")
        adjustment.entry_id = _post(uow, adjustment, takes_key)
        adjustment.status = AdjustmentStatus.POSTED
        adjustment.decided_by = principal.client_id
        adjustment.decided_at = utcnow()
        adjustment.decision_note = note
        _adjustment_posted(uow, adjustment)
        uow.commit()
        return adjustment


def reject_adjustment(
    uow: UnitOfWork, adjustment_id: str, principal: Principal, *, note: str | None = None
) -> LedgerAdjustment:
    """Refuse a waiting adjustment (or withdraw one's own): nothing is posted."""
    _ensure_operator(principal)
    with uow:
        adjustment = _pending_locked(uow, adjustment_id)
        adjustment.status = AdjustmentStatus.REJECTED
        adjustment.decided_by = principal.client_id
        adjustment.decided_at = utcnow()
        adjustment.decision_note = note
        uow.add_event(_event("accounts.ledger.adjustment_rejected", adjustment))
        uow.commit()
        return adjustment


def get_adjustment(uow: UnitOfWork, adjustment_id: str) -> LedgerAdjustment:
    with uow:
        adjustment = uow.session.get(LedgerAdjustment, adjustment_id)
        if adjustment is None:
            raise NotFound(f"No adjustment {adjustment_id!r}.", param="adjustment_id")
        return adjustment


def list_adjustments(
    uow: UnitOfWork,
    *,
    status: str | None,
    case_id: str | None,
    limit: int,
    starting_after: str | None,
) -> Page:
    query = sa.select(LedgerAdjustment)
    if status:
        query = query.where(LedgerAdjustment.status == status)
    if case_id:
        query = query.where(LedgerAdjustment.case_id == case_id)
    with uow:
        return paginate(uow.session, query, LedgerAdjustment.id, limit=limit, starting_after=starting_after)
