"""Reconciliation cases: every break a run finds is a case for a person, with an append-only history.

    open ──> investigating ──> resolved
      └──────────┴───────────> written_off

A case opens ``open`` (one per break item, or one ``balance_mismatch`` per statement whose closing
balance is not the ledger's). Assigning it makes it ``investigating``. It ends ``resolved``: linked
to what explains it (a later run, an item, a journal entry: a manual match), or healed by a later
run that matched what it is about; or ``written_off``: an adjustment (``adjustments.propose_adjustment``,
four-eyes above the threshold) was posted for it, and ``adjustment_posted`` records that (at once
below the threshold; after a second operator's approval, the worker's ``close_approved_write_offs``).

Every change writes a history row and, for opening and resolving, an event on ``accounts.events``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import JournalEntry, LedgerAdjustment
from services.accounts.adapters.reconciliation_orm import ReconCase, ReconCaseEvent, ReconItem, ReconRun
from services.accounts.domain.ledger import AccountRef
from services.accounts.domain.reconciliation import (
    BALANCE_MISMATCH,
    BREAK_STATES,
    OPEN_CASE_STATES,
    CaseState,
    CaseTransitionRefused,
    ItemState,
    check_case_transition,
)
from shared.auth.principal import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.pagination import Page

SYSTEM = "system"
CHUNK = 1_000
ITEM_ID = re.compile(r"[0-9]{1,18}")  # an item's id (BIGINT) as a client sends it: fullmatch


def _history(session: Session, case_id: str, action: str, actor: str, **detail: Any) -> None:
    session.add(ReconCaseEvent(case_id=case_id, action=action, actor=actor, detail=detail, at=utcnow()))


def _case_data(case: ReconCase) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "kind": case.kind,
        "state": case.state,
        "amount": {"amount": case.amount, "currency": case.currency},
        "object_id": case.object_id,
        "bank_code": case.bank_code,
        "gateway": case.gateway,
        "run_id": case.run_id,
    }


def _opened(uow: UnitOfWork, case: ReconCase, item_ids: list[int]) -> None:
    session = uow.session
    assert session is not None
    session.add(case)
    _history(session, case.id, "opened", SYSTEM, run_id=case.run_id, item_ids=[str(i) for i in item_ids])
    uow.add_event(
        make_event(
            "accounts.reconciliation.case_opened",
            subject=case.id,
            data={
                **_case_data(case),
                "item_ids": [str(i) for i in item_ids],
                "opened_at": case.created_at.isoformat(),
            },
        )
    )


def _break_amount(item: Any) -> int:
    if item.state == ItemState.FEE_MISMATCH:
        return abs((item.fee or 0) - (item.expected_fee or 0))
    if item.state == ItemState.AMOUNT_MISMATCH:
        return abs(item.amount - (item.expected_amount or 0))
    return abs(item.amount)


def open_cases_for_breaks(uow: UnitOfWork, run: ReconRun) -> int:
    """One case per break item of ``run`` that has none yet; how many were opened."""
    session = uow.session
    assert session is not None
    session.flush()
    items = ReconItem.__table__.c
    query = sa.select(
        items.id,
        items.state,
        items.amount,
        items.fee,
        items.expected_fee,
        items.expected_amount,
        items.currency,
        items.object_id,
        items.bank_code,
        items.gateway,
    ).where(items.run_id == run.id, items.state.in_([str(s) for s in BREAK_STATES]), items.case_id.is_(None))
    opened = 0
    last = None
    while True:
        page = query if last is None else query.where(items.id > last)
        rows = list(session.execute(page.order_by(items.id).limit(CHUNK)))
        if not rows:
            return opened
        links = []
        now = utcnow()
        for row in rows:
            case = ReconCase(
                id=new_id("rc"),
                kind=row.state,
                state=CaseState.OPEN,
                amount=_break_amount(row),
                currency=row.currency,
                object_id=row.object_id,
                bank_code=row.bank_code,
                gateway=row.gateway,
                run_id=run.id,
                created_at=now,
                updated_at=now,
            )
            _opened(uow, case, [row.id])
            links.append({"item_id": row.id, "case": case.id})
        uow.write_events()
        session.flush()
        session.execute(
            sa.update(ReconItem.__table__)
            .where(items.id == sa.bindparam("item_id"))
            .values(case_id=sa.bindparam("case")),
            links,
            execution_options={"synchronize_session": False},
        )
        opened += len(rows)
        last = rows[-1].id


def open_balance_case(uow: UnitOfWork, run: ReconRun, difference: int) -> ReconCase:
    """The statement's closing balance is not what the ledger says the bank holds."""
    now = utcnow()
    case = ReconCase(
        id=new_id("rc"),
        kind=BALANCE_MISMATCH,
        state=CaseState.OPEN,
        amount=abs(difference),
        currency=run.currency or "MAD",
        object_id=run.id,
        bank_code=run.bank_code,
        gateway=None,
        run_id=run.id,
        created_at=now,
        updated_at=now,
        resolution=None,
    )
    _opened(uow, case, [])
    assert uow.session is not None
    _history(
        uow.session,
        case.id,
        "balance_compared",
        SYSTEM,
        closing_balance=run.closing_balance,
        expected_balance=run.expected_balance,
        difference=difference,
    )
    return case


def _resolve(uow: UnitOfWork, case: ReconCase, actor: str, state: str, resolution: dict[str, Any]) -> None:
    session = uow.session
    assert session is not None
    check_case_transition(case.state, state)
    case.state = state
    case.resolution = resolution
    case.updated_at = utcnow()
    _history(session, case.id, state, actor, **resolution)
    uow.add_event(
        make_event(
            "accounts.reconciliation.case_resolved",
            subject=case.id,
            data={
                **_case_data(case),
                "resolution": resolution,
                "resolved_by": actor,
                "resolved_at": case.updated_at.isoformat(),
            },
        )
    )


def heal_case(uow: UnitOfWork, case_id: str, run_id: str) -> None:
    """A later run explained the case (a late settlement line, a late debit): resolved with its id."""
    session = uow.session
    assert session is not None
    case = session.get(ReconCase, case_id, with_for_update=True)
    if case is None or case.state not in OPEN_CASE_STATES:
        return
    _resolve(uow, case, SYSTEM, CaseState.RESOLVED, {"run_id": run_id, "note": "matched by a later run"})


# --- reading ----------------------------------------------------------------------------------------


def visible_bank(principal: Principal) -> str | None:
    """A bank partner sees its own bank's reconciliation only; everyone else (operators) all."""
    return principal.bank_code or "" if principal.is_bank_partner else None


def _case_or_404(session: Session, case_id: str, principal: Principal, *, lock: bool = False) -> ReconCase:
    case = session.get(ReconCase, case_id, with_for_update=lock)
    bank = visible_bank(principal)
    if case is None or (bank is not None and case.bank_code != bank):
        raise NotFound(f"No reconciliation case {case_id}.")
    return case


def case_view(session: Session, case: ReconCase, *, with_details: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": case.id,
        "kind": case.kind,
        "state": case.state,
        "amount": {"amount": case.amount, "currency": case.currency},
        "object_id": case.object_id,
        "bank_code": case.bank_code,
        "gateway": case.gateway,
        "run_id": case.run_id,
        "assignee": case.assignee,
        "resolution": case.resolution,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
    }
    if with_details:
        from services.accounts.service_layer.reconciliation import item_view

        items = session.scalars(
            sa.select(ReconItem).where(ReconItem.case_id == case.id).order_by(ReconItem.id)
        )
        history = session.scalars(
            sa.select(ReconCaseEvent).where(ReconCaseEvent.case_id == case.id).order_by(ReconCaseEvent.id)
        )
        view["items"] = [item_view(item) for item in items]
        view["history"] = [
            {"action": h.action, "actor": h.actor, "detail": h.detail, "at": h.at} for h in history
        ]
        view["notes"] = [h["detail"].get("note") for h in view["history"] if h["action"] == "noted"]
    return view


def list_cases(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    kind: str | None = None,
    state: str | None = None,
    min_age_days: int | None = None,
    amount_min: int | None = None,
    amount_max: int | None = None,
    bank_code: str | None = None,
    gateway: str | None = None,
    run_id: str | None = None,
    now: dt.datetime | None = None,
) -> Page:
    from shared.pagination import paginate

    with uow:
        session = uow.session
        assert session is not None
        query = sa.select(ReconCase)
        visible = visible_bank(principal)
        if visible is not None:
            query = query.where(ReconCase.bank_code == visible)
        for column, value in (
            (ReconCase.kind, kind),
            (ReconCase.state, state),
            (ReconCase.bank_code, bank_code),
            (ReconCase.gateway, gateway),
            (ReconCase.run_id, run_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if min_age_days is not None:
            query = query.where(ReconCase.created_at <= (now or utcnow()) - dt.timedelta(days=min_age_days))
        if amount_min is not None:
            query = query.where(ReconCase.amount >= amount_min)
        if amount_max is not None:
            query = query.where(ReconCase.amount <= amount_max)
        page = paginate(session, query, ReconCase.id, limit=limit, starting_after=starting_after)
        page.data = [case_view(session, case) for case in page.data]
        return page


def get_case(uow: UnitOfWork, case_id: str, principal: Principal) -> dict[str, Any]:
    with uow:
        session = uow.session
        assert session is not None
        return case_view(session, _case_or_404(session, case_id, principal), with_details=True)


# --- acting on a case -------------------------------------------------------------------------------


def _act(
    uow: UnitOfWork, case_id: str, principal: Principal, change: Callable[[Session, ReconCase], None]
) -> dict[str, Any]:
    with uow:
        session = uow.session
        assert session is not None
        case = _case_or_404(session, case_id, principal, lock=True)
        try:
            change(session, case)
        except CaseTransitionRefused as exc:
            raise Conflict(str(exc).capitalize() + ".", code="case_state_conflict") from None
        uow.commit()
        return case_view(session, case, with_details=True)


def assign(uow: UnitOfWork, case_id: str, principal: Principal, assignee: str) -> dict[str, Any]:
    """Give the case to someone; an open case becomes ``investigating``."""

    def change(session: Session, case: ReconCase) -> None:
        if case.state not in OPEN_CASE_STATES:
            raise CaseTransitionRefused(f"the case is {case.state} already")
        previous = case.assignee
        case.assignee = assignee
        if case.state == CaseState.OPEN:
            case.state = CaseState.INVESTIGATING
        case.updated_at = utcnow()
        _history(session, case.id, "assigned", principal.client_id, assignee=assignee, previous=previous)

    return _act(uow, case_id, principal, change)


def add_note(uow: UnitOfWork, case_id: str, principal: Principal, note: str) -> dict[str, Any]:
    def change(session: Session, case: ReconCase) -> None:
        case.updated_at = utcnow()
        _history(session, case.id, "noted", principal.client_id, note=note)

    return _act(uow, case_id, principal, change)


def resolve(
    uow: UnitOfWork,
    case_id: str,
    principal: Principal,
    *,
    note: str,
    run_id: str | None = None,
    item_id: str | None = None,
    entry_id: str | None = None,
) -> dict[str, Any]:
    """Link the case to what explains it: a run, an item, or a journal entry (a manual match)."""
    if not (run_id or item_id or entry_id):
        raise ValidationFailed(
            "Name what explains the case: `run_id`, `item_id` or `entry_id`.", param="run_id"
        )

    def change(session: Session, case: ReconCase) -> None:
        if run_id and session.get(ReconRun, run_id) is None:
            raise NotFound(f"No reconciliation run {run_id}.")
        if item_id and (not ITEM_ID.fullmatch(item_id) or session.get(ReconItem, int(item_id)) is None):
            raise NotFound(f"No reconciliation item {item_id}.")
        if entry_id and session.get(JournalEntry, entry_id) is None:
            raise NotFound(f"No journal entry {entry_id}.")
        link = {k: v for k, v in (("run_id", run_id), ("item_id", item_id), ("entry_id", entry_id)) if v}
        _resolve(uow, case, principal.client_id, CaseState.RESOLVED, {**link, "note": note})

    return _act(uow, case_id, principal, change)


# The adjustment path (helper A's ``adjustments.propose_adjustment``), wired by the composition
# root; None where it is not there yet.
ProposeAdjustment = Callable[..., Any]


def write_off(
    uow: UnitOfWork,
    case_id: str,
    principal: Principal,
    propose_adjustment: ProposeAdjustment | None,
    *,
    reason: str,
    lines: list[dict[str, Any]] | None = None,
    currency: str | None = None,
    reverses_entry_id: str | None = None,
) -> dict[str, Any]:
    """Propose the adjustment that writes the case off, in this transaction. Posted at once (below
    the four-eyes threshold), its ``adjustment_posted`` makes the case ``written_off``; else the
    case waits, ``investigating``, for the approval."""
    if propose_adjustment is None:
        raise ServiceUnavailable(
            "Adjustments are not available on this deployment yet.", code="adjustments_unavailable"
        )

    def change(session: Session, case: ReconCase) -> None:
        if case.state not in OPEN_CASE_STATES:
            raise CaseTransitionRefused(f"the case is {case.state} already")
        adjustment = propose_adjustment(
            uow,
            principal,
            reason=reason,
            lines=None if lines is None else [_line(line) for line in lines],
            currency=currency or case.currency,
            reverses_entry_id=reverses_entry_id,
            case_id=case.id,
        )
        adjustment_id, status = _field(adjustment, "id"), _field(adjustment, "status")
        _history(
            session,
            case.id,
            "write_off_proposed",
            principal.client_id,
            adjustment_id=adjustment_id,
            status=status,
            reason=reason,
        )
        if case.state == CaseState.OPEN:
            case.state = CaseState.INVESTIGATING
        case.updated_at = utcnow()
        if status == "posted":
            # Below the four-eyes threshold it posted at once. One approved later tells the case
            # through ``adjustment_posted``, from the adjustments code.
            adjustment_posted(
                uow, adjustment_id, case.id, _field(adjustment, "entry_id"), principal.client_id
            )

    return _act(uow, case_id, principal, change)


def _line(line: dict[str, Any]) -> tuple[AccountRef, int]:
    return AccountRef(line["owner_type"], line["owner_id"], line["kind"]), int(line["amount"])


def _field(adjustment: Any, name: str) -> Any:
    return adjustment.get(name) if isinstance(adjustment, dict) else getattr(adjustment, name, None)


def adjustment_posted(uow: UnitOfWork, adjustment_id: str, case_id: str, entry_id: str, actor: str) -> None:
    """An adjustment made for the case was posted (called in the adjustment's transaction): the
    case is ``written_off`` with it. Nothing happens to a case already final, so a second call for
    the same adjustment changes nothing."""
    session = uow.session
    assert session is not None
    case = session.get(ReconCase, case_id, with_for_update=True)
    if case is None:
        raise NotFound(f"No reconciliation case {case_id}.")
    if case.state not in OPEN_CASE_STATES:
        return
    _resolve(uow, case, actor, CaseState.WRITTEN_OFF, {"adjustment_id": adjustment_id, "entry_id": entry_id})


def close_approved_write_offs(uow_factory: Callable[[], UnitOfWork]) -> int:
    """Write off the cases whose write-off adjustment a second operator has approved since (the
    worker's pass; calling ``adjustment_posted`` again for one already closed changes nothing).
    How many were closed."""
    with uow_factory() as uow:
        session = uow.session
        assert session is not None
        approved = session.execute(
            sa.select(
                LedgerAdjustment.id,
                LedgerAdjustment.case_id,
                LedgerAdjustment.entry_id,
                LedgerAdjustment.decided_by,
            )
            .join(ReconCase, ReconCase.id == LedgerAdjustment.case_id)
            .where(
                LedgerAdjustment.status == "posted",
                ReconCase.state.in_([str(state) for state in OPEN_CASE_STATES]),
            )
        ).all()
        for adjustment_id, case_id, entry_id, decided_by in approved:
            adjustment_posted(uow, adjustment_id, case_id, entry_id or "", decided_by or SYSTEM)
        uow.commit()
        return len(approved)
