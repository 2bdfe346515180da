"""Ledger cases: postings the ledger refused, and money events parked until they can post, for
operators to see and resolve.

    open ──────┬──> resolved
    waiting ───┘

``open``: a posting refused for good (a balance rule) or a marketplace's reserve below zero; a
person decides. ``waiting``: money the ledger will post by itself once what it waits for has
happened (a parked event: ``parked_events``; a failed payout's funds: ``bank_transfers``).

A case is resolved in one of three ways, and its record says how, when and by whom
(``LedgerCase.mark_resolved``):

- **by the ledger itself** (``system``): the parked event posted, the payout's funds came back,
  the reserve was topped up;
- **by an adjustment** proposed with the case's id (``POST /v1/ledger/adjustments`` with
  ``case_id``), when it posts: at once up to the four-eyes amount, else on a second operator's
  approval. On a waiting case the adjustment takes the place of what waits: its parked event is
  released (it will never post; its envelope stays in the case's record) and the adjustment's entry
  takes its posting key, so the same movement arriving again under another event id is posted
  already; a failed payout's funds are no longer returned by the worker. An adjustment approved after its case was resolved
  another way is refused (409 ``ledger_case_resolved``), so the same money never posts twice;
- **by an operator's note** (``POST /v1/ledger/cases/{id}/resolve``), for an open case that needs
  no money movement (explained elsewhere, replayed by hand). A waiting case cannot be resolved with
  a note (409 ``ledger_case_waiting``): that would leave its money parked with nobody watching.

A ``reserve_below_zero`` case stands for money the marketplace owes, so it stays open for as long as
the reserve is below zero: a note is refused then (409 ``reserve_still_below_zero``), and an
adjustment proposed for it that posts but leaves the reserve below zero (a part payment) keeps the
case open, the adjustment listed in its ``details.adjustments_posted`` and ``details.balance`` the
reserve as it now stands. The case resolves when an entry (a top-up, that adjustment or a later
one) brings the reserve back to zero or above. Reopening a new case at once instead would split one
debt over several cases; keeping the one case keeps its history in one place.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import LedgerAdjustment, LedgerCase, ParkedEvent
from services.accounts.domain.postings import money_event_key
from services.accounts.service_layer.completeness import PAYMENT_NOT_IN_LEDGER
from services.accounts.service_layer.posting import RESERVE_BELOW_ZERO
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.ids import has_prefix
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

CASE_PREFIX = "lc"
MAX_NOTE = 500


def is_ledger_case(case_id: str | None) -> bool:
    return has_prefix(case_id, CASE_PREFIX)


def _ensure_operator(principal: Principal) -> None:
    if not principal.has_scopes("ledger:operate"):
        raise Forbidden("Ledger cases are resolved by operators.", code="role_not_allowed")


# --- reading ----------------------------------------------------------------------------------------


def _parked_view(parked: ParkedEvent) -> dict[str, Any]:
    return {
        "event_id": parked.event_id,
        "event_type": parked.event_type,
        "waiting_for": parked.waiting_for,
        "attempts": parked.attempts,
        "parked_at": parked.parked_at,
        "last_attempt_at": parked.last_attempt_at,
    }


def case_view(case: LedgerCase, parked: ParkedEvent | None) -> dict[str, Any]:
    details = case.details or {}
    return {
        "id": case.id,
        "kind": case.kind,
        "status": case.status,
        "cause": case.cause,
        "cause_id": case.cause_id,
        "event_id": case.event_id,
        "artisan_id": case.artisan_id,
        "details": details,
        "created_at": case.created_at,
        "parked_event": None if parked is None else _parked_view(parked),
        "resolution": details.get("resolution") if case.status == "resolved" else None,
        "resolved_at": details.get("resolved_at") if case.status == "resolved" else None,
        "resolved_by": details.get("resolved_by") if case.status == "resolved" else None,
    }


def _parked_events_of(session: Session, case_ids: list[str]) -> dict[str, ParkedEvent]:
    if not case_ids:
        return {}
    rows = session.scalars(sa.select(ParkedEvent).where(ParkedEvent.case_id.in_(case_ids)))
    return {row.case_id: row for row in rows}


def list_cases(
    uow: UnitOfWork, *, status: str | None, artisan_id: str | None, limit: int, starting_after: str | None
) -> Page:
    """Oldest first, each with the event parked for it (if one waits)."""
    query = sa.select(LedgerCase)
    if status:
        query = query.where(LedgerCase.status == status)
    if artisan_id:
        query = query.where(LedgerCase.artisan_id == artisan_id)
    with uow:
        session = uow.session
        page = paginate(session, query, LedgerCase.id, limit=limit, starting_after=starting_after)
        parked = _parked_events_of(session, [case.id for case in page.data])
        page.data = [case_view(case, parked.get(case.id)) for case in page.data]
        return page


def get_case(uow: UnitOfWork, case_id: str) -> dict[str, Any]:
    with uow:
        session = uow.session
        case = session.get(LedgerCase, case_id)
        if case is None:
            raise NotFound(f"No ledger case {case_id!r}.", param="case_id")
        return case_view(case, _parked_events_of(session, [case.id]).get(case.id))


# --- resolving --------------------------------------------------------------------------------------


def _locked(session: Session, case_id: str) -> tuple[LedgerCase, ParkedEvent | None]:
    """The case and its parked event, locked in the order the parked-event passes lock them (the
    event's row, then the case), so resolving never deadlocks with a pass posting the event; a
    pass that posted it first has resolved the case, which this then reads."""
    parked = session.scalar(sa.select(ParkedEvent).where(ParkedEvent.case_id == case_id).with_for_update())
    case = session.get(LedgerCase, case_id, with_for_update=True, populate_existing=True)
    if case is None:
        raise NotFound(f"No ledger case {case_id!r}.", param="case_id")
    return case, parked


def _resolved_already(case: LedgerCase) -> Conflict:
    return Conflict(
        f"The ledger case {case.id} is resolved already.",
        code="ledger_case_resolved",
        param="case_id",
    )


def _open_locked(session: Session, case_id: str) -> tuple[LedgerCase, ParkedEvent | None]:
    case, parked = _locked(session, case_id)
    if case.status == "resolved":
        raise _resolved_already(case)
    return case, parked


def resolve_with_note(uow: UnitOfWork, case_id: str, principal: Principal, *, note: str) -> dict[str, Any]:
    """``POST /v1/ledger/cases/{id}/resolve``: an open case needing no money movement, resolved by
    the operator with a note saying why. Refused on a waiting case (409 ``ledger_case_waiting``:
    its money would stay parked), on a reserve still below zero (409 ``reserve_still_below_zero``:
    the marketplace still owes it, and nothing else would watch it) and on a resolved one (409
    ``ledger_case_resolved``)."""
    _ensure_operator(principal)
    note = (note or "").strip()
    if not note:
        raise ValidationFailed("Say why the case needs nothing more: a note is required.", param="note")
    if len(note) > MAX_NOTE:
        raise ValidationFailed(f"The note is at most {MAX_NOTE} characters.", param="note")
    with uow:
        session = uow.session
        case, parked = _open_locked(session, case_id)
        if case.status == "waiting" or parked is not None:
            raise Conflict(
                "The case waits for money the ledger will post by itself: it resolves when that posts, "
                "or with an adjustment proposed for it (case_id) that takes its place.",
                code="ledger_case_waiting",
                param="case_id",
            )
        shortfall = _reserve_still_below_zero(session, case)
        if shortfall is not None:
            raise Conflict(
                "The marketplace's reserve is still below zero: the case stays open until it is back at "
                "zero. It resolves by itself when a top-up brings it there, or with an adjustment "
                "proposed for it (case_id) that does.",
                code="reserve_still_below_zero",
                param="case_id",
                balance=shortfall,
            )
        case.mark_resolved("noted", at=utcnow(), by=principal.client_id, note=note)
        uow.commit()
        log.info("ledger case resolved", extra={"case_id": case.id, "resolution": "noted"})
        return case_view(case, None)


def _reserve_still_below_zero(session: Session, case: LedgerCase) -> dict[str, Any] | None:
    """For a ``reserve_below_zero`` case, the marketplace's reserve (as money) while it is still
    below zero; else None."""
    if case.kind != RESERVE_BELOW_ZERO:
        return None
    currency = str((case.details or {}).get("balance", {}).get("currency") or "")
    balance = ledger.reserve_balance(session, case.cause_id, currency)
    return {"amount": balance, "currency": currency} if balance < 0 else None


def check_open_for_adjustment(session: Session, case_id: str) -> str | None:
    """Before an adjustment for ``case_id`` is proposed or approved: the case exists and is not
    resolved (locked until the transaction ends). A payment missing from the ledger is refused: an
    adjustment would not post the payment's own movement, so the payment, once its event is
    replayed, would be posted on top of it.

    Returns the posting key the adjustment's entry takes: that of the parked event it takes the
    place of (None when the case waits for none). Held by the adjustment, the key makes the same
    movement arriving again, under another event id (the relay publishing it again, a replay), a
    movement posted already: it never posts on top of the adjustment."""
    case, parked = _open_locked(session, case_id)
    if case.kind == PAYMENT_NOT_IN_LEDGER:
        raise Conflict(
            "The payment is missing from the ledger: replay its event, and the case resolves when it "
            "posts. An adjustment would count the payment twice.",
            code="ledger_case_needs_replay",
            param="case_id",
        )
    return None if parked is None else money_event_key(parked.event_type, parked.envelope["data"])


def adjustment_posted(uow: UnitOfWork, adjustment: LedgerAdjustment) -> None:
    """An adjustment proposed for a ledger case was posted (in its transaction): the case is
    resolved by it. A parked event it waited for is released: the adjustment took its place. A
    reserve it left below zero keeps its case open, the adjustment noted as a part payment.
    (``check_open_for_adjustment`` ran before it posted, so the case was open then.)"""
    assert adjustment.case_id is not None
    session = uow.session
    case, parked = _locked(session, adjustment.case_id)
    approver = adjustment.decided_by or adjustment.proposed_by
    if case.status == "resolved":
        # Its own entry resolved it as it posted (a top-up bringing a reserve back to zero):
        # the record names the adjustment and the person too.
        if case.details.get("resolved_by_entry_id") != adjustment.entry_id:
            raise _resolved_already(case)
        case.details = {**case.details, "resolved_by": approver, "adjustment_id": adjustment.id}
        return
    shortfall = _reserve_still_below_zero(session, case)
    if shortfall is not None:
        # A part of what the marketplace owes: the case stays open, and says what was paid.
        posted = {
            "adjustment_id": adjustment.id,
            "entry_id": adjustment.entry_id,
            "by": approver,
            "at": (adjustment.decided_at or utcnow()).isoformat(),
            "balance_after": shortfall,
        }
        case.details = {
            **case.details,
            "balance": shortfall,
            "adjustments_posted": [*case.details.get("adjustments_posted", []), posted],
        }
        log.info(
            "ledger case stays open: the reserve is still below zero",
            extra={"case_id": case.id, "adjustment_id": adjustment.id, "balance": shortfall["amount"]},
        )
        return
    released: dict[str, Any] = {}
    if parked is not None:
        released = {
            "released_event_id": parked.event_id,
            "released_event_type": parked.event_type,
            # What the parked event said, kept: it will never post now, and an auditor asks what it was.
            "released_envelope": parked.envelope,
            # Its movement's key, which the adjustment's entry holds (check_open_for_adjustment).
            "released_posting_key": money_event_key(parked.event_type, parked.envelope["data"]),
        }
        session.delete(parked)
    case.mark_resolved(
        "adjustment",
        at=adjustment.decided_at or utcnow(),
        by=approver,
        adjustment_id=adjustment.id,
        resolved_by_entry_id=adjustment.entry_id,
        **released,
    )
    log.info(
        "ledger case resolved",
        extra={
            "case_id": case.id,
            "resolution": "adjustment",
            "adjustment_id": adjustment.id,
            "released_event_id": released.get("released_event_id"),
        },
    )
