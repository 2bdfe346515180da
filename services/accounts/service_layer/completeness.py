"""Completeness: every payment that succeeded reaches the ledger; one that does not is noticed.

The first line of defence is the events themselves: the outbox, a relay that publishes again what
the broker lost, consumers that read it again. This is the second, and it does not go through the
broker at all. Every ``completeness_check_seconds`` the worker asks payments, over its API, for the
succeeded payments the ledger has not confirmed (payments marks a payment once it hears of its
entry, so the answer is normally what is still on its way) that succeeded more than the grace
period ago, and looks for each in the ledger: posted, parked waiting for room under the cap, or
refused into a case all count as arrived.

A payment that has not arrived is a gap: it gets an open ``payment_not_in_ledger`` ledger case
(one per payment) naming the payment, the artisan, the amount and when it succeeded, for an
operator to replay its event (``hirfa payments events replay``). The check resolves the case by
itself once the payment arrives. Open cases show in ``GET /v1/ledger/integrity`` (a difference, so
the report is not ok), in the ``hirfa_ledger_payments_not_in_ledger`` gauge of accounts' /metrics
and among the ledger cases; ``/readyz`` stays as it is, since the API still answers correctly.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import OPEN_PAYMENT_GAPS, PAYMENT_NOT_IN_LEDGER, LedgerCase
from services.accounts.domain.ports import PaymentsLedgerView, UnpostedPayment
from services.accounts.domain.postings import payment_key
from shared.db import UnitOfWork, as_utc, insert_statement, utcnow
from shared.ids import new_id

log = logging.getLogger(__name__)


def check_completeness(
    uow_factory: Callable[[], UnitOfWork],
    payments: PaymentsLedgerView,
    *,
    grace: dt.timedelta,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Open a case for each payment that succeeded more than ``grace`` ago and is not in the
    ledger, resolve the cases of those that arrived since; the counts. Safe to run in several
    workers at once: a payment has at most one open case whoever opens it."""
    now = now or utcnow()
    # Payments is asked before any transaction opens: no lock is held on the network.
    reported = {payment.payment_id: payment for payment in payments.unposted_payments(now - grace)}
    with uow_factory() as uow:
        session = uow.session
        arrived = _arrived(session, list(reported))
        missing = {
            payment_id: payment for payment_id, payment in reported.items() if payment_id not in arrived
        }
        open_cases = {
            case.cause_id: case
            for case in session.scalars(
                sa.select(LedgerCase)
                .where(LedgerCase.kind == PAYMENT_NOT_IN_LEDGER, LedgerCase.status == "open")
                .with_for_update()
            )
        }
        opened = _open_cases(
            session, [payment for payment_id, payment in missing.items() if payment_id not in open_cases], now
        )
        resolved = [case for payment_id, case in open_cases.items() if payment_id not in missing]
        for case in resolved:
            # Arrived: found in the ledger now. Otherwise payments no longer lists it, which it
            # does once it has heard of the payment's entry.
            case.mark_resolved("arrived" if case.cause_id in arrived else "confirmed_by_payments", at=now)
        uow.commit()
    if missing:
        log.error(
            "succeeded payments are missing from the ledger",
            extra={
                "count": len(missing),
                "payment_ids": sorted(missing)[:20],
                "grace_seconds": grace.total_seconds(),
            },
        )
    return {"missing": len(missing), "cases_opened": len(opened), "cases_resolved": len(resolved)}


def _arrived(session: Session, payment_ids: Iterable[str]) -> set[str]:
    """Which of the payments the ledger has heard of: posted (their posting key is, even by an
    adjustment that took the place of their event), or parked or refused into a case."""
    keys = {payment_key(payment_id): payment_id for payment_id in payment_ids}
    posted = {keys[key] for key in ledger.posted_keys(session, keys)}
    # Normally none is left: what payments lists is what is still on its way.
    not_posted = [payment_id for payment_id in keys.values() if payment_id not in posted]
    if not not_posted:
        return posted
    cased = session.scalars(
        sa.select(LedgerCase.cause_id).where(
            LedgerCase.cause == "payment",
            LedgerCase.cause_id.in_(not_posted),
            LedgerCase.kind != PAYMENT_NOT_IN_LEDGER,
        )
    )
    return posted | set(cased)


def _open_cases(session: Session, payments: list[UnpostedPayment], now: dt.datetime) -> list[str]:
    """Open a case for each payment, but for one a check running at the same time has just opened
    (the partial unique index on open cases lets one in; the other insert does nothing). The ids
    of the payments a case was opened for."""
    if not payments:
        return []
    statement = (
        insert_statement(session, LedgerCase)
        .on_conflict_do_nothing(index_elements=[LedgerCase.cause_id], index_where=sa.text(OPEN_PAYMENT_GAPS))
        .returning(LedgerCase.cause_id)
    )
    return list(session.scalars(statement, [_case(payment, now) for payment in payments]))


def _case(payment: UnpostedPayment, now: dt.datetime) -> dict[str, Any]:
    """A gap's case, as the row its insert writes."""
    return {
        "id": new_id("lc"),
        "kind": PAYMENT_NOT_IN_LEDGER,
        "status": "open",
        "cause": "payment",
        "cause_id": payment.payment_id,
        "event_id": None,
        "artisan_id": payment.artisan_id,
        "details": {
            "payment_id": payment.payment_id,
            "marketplace_id": payment.marketplace_id,
            "amount": {"amount": payment.amount, "currency": payment.currency},
            "succeeded_at": as_utc(payment.succeeded_at).isoformat(),
            "noticed_at": now.isoformat(),
        },
        "created_at": now,
    }


def open_gaps(session: Session) -> list[dict[str, Any]]:
    """The open gaps, oldest first: what the integrity report and the metrics show."""
    cases = session.scalars(
        sa.select(LedgerCase)
        .where(LedgerCase.kind == PAYMENT_NOT_IN_LEDGER, LedgerCase.status == "open")
        .order_by(LedgerCase.created_at, LedgerCase.id)
    )
    return [
        {
            "case_id": case.id,
            "payment_id": case.cause_id,
            "amount": int(case.details["amount"]["amount"]),
            "currency": case.details["amount"]["currency"],
            # Aware, whatever was stored: a time without a zone (SQLite's) is UTC.
            "succeeded_at": as_utc(dt.datetime.fromisoformat(case.details["succeeded_at"])),
        }
        for case in cases
    ]


class LedgerGapsCollector:
    """``/metrics``: the succeeded payments not in the ledger (open gaps) and how long ago the
    oldest of them succeeded, read at scrape time. Alert on the first above zero."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.uow_factory = uow_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.uow_factory() as uow:
                gaps = open_gaps(uow.session)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            return
        yield GaugeMetricFamily(
            "hirfa_ledger_payments_not_in_ledger",
            "Succeeded payments the ledger has not posted past the grace period (open payment_not_in_ledger cases)",
            value=len(gaps),
        )
        oldest = min((gap["succeeded_at"] for gap in gaps), default=None)
        yield GaugeMetricFamily(
            "hirfa_ledger_oldest_payment_not_in_ledger_seconds",
            "How long ago the oldest succeeded payment missing from the ledger succeeded (0: none)",
            value=(utcnow() - oldest).total_seconds() if oldest else 0.0,
        )

    def describe(self) -> list[GaugeMetricFamily]:
        return []
