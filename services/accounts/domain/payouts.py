"""Payouts: their states and ledger entries, the bank's failure codes, and automatic payout schedules.

A payout only ever moves forward:

    pending ──> in_transit ──> paid ──> returned
                          └──> failed

``pending``: saved with its ledger entry, the bank has not accepted it yet. ``in_transit``: the bank
has it. ``failed`` is final; so is ``returned``: the bank paid it, then the beneficiary's bank sent it
back (a returned item on the client-funds statement, found by reconciliation), and the funds are the
artisan's again. Answers from the bank (callbacks, polls, replies to a
submission) may arrive twice or out of order; one that would move a payout backwards or sideways is
ignored, so a late ``pending`` never undoes a ``paid``.
"""

from __future__ import annotations

import datetime as dt
import enum

from services.accounts.domain.ledger import AccountRef, artisan, bank, marketplace, platform


class PayeeType(enum.StrEnum):
    """Who a payout pays: an artisan (from their available balance) or a marketplace (its commission)."""

    ARTISAN = "artisan"
    MARKETPLACE = "marketplace"


def payee_account(payee_type: str, payee_id: str) -> AccountRef:
    """The account a payout is paid from, and its funds return to if it fails."""
    if payee_type == PayeeType.MARKETPLACE:
        return marketplace(payee_id, "commission")
    return artisan(payee_id, "available")


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"


_STAGE = {
    PayoutStatus.PENDING: 0,
    PayoutStatus.IN_TRANSIT: 1,
    PayoutStatus.PAID: 2,
    PayoutStatus.FAILED: 2,
    PayoutStatus.RETURNED: 3,
}

# What the bank's transfer statuses mean for a payout.
STATUS_FROM_BANK = {
    "pending": PayoutStatus.IN_TRANSIT,
    "paid": PayoutStatus.PAID,
    "failed": PayoutStatus.FAILED,
}

FAILURE_CODES = ("account_closed", "invalid_rib", "name_mismatch", "bank_unavailable")
# A code the bank invents later is recorded as this one (and logged), so the API keeps its contract.
FALLBACK_FAILURE_CODE = "bank_unavailable"


def advances(current: str, target: str) -> bool:
    """Whether moving from ``current`` to ``target`` is a step forward (never out of a final state)."""
    return _STAGE[PayoutStatus(target)] > _STAGE[PayoutStatus(current)]


class PayoutStep(enum.StrEnum):
    """The moments of a payout's life that move money, each with its own ledger entry. The payee's
    account is the artisan's available balance, or the marketplace's commission."""

    CREATED = "created"  # Dr payee's account     / Cr payouts_in_transit
    PAID = "paid"  # Dr payouts_in_transit  / Cr bank:{source bank code}
    FAILED = "failed"  # Dr payouts_in_transit  / Cr payee's account (the funds come back)


def step_lines(
    step: PayoutStep,
    *,
    source_bank_code: str,
    amount: int,
    artisan_id: str | None = None,
    payee: AccountRef | None = None,
) -> tuple[tuple[AccountRef, int], tuple[AccountRef, int]]:
    """The payout's whole amount moved for ``step``: (debit line, credit line). ``payee``: the
    account paid from (default: ``artisan_id``'s available balance)."""
    if payee is None:
        if artisan_id is None:
            raise ValueError("a payout's step needs its payee")
        payee = artisan(artisan_id, "available")
    in_transit = platform("payouts_in_transit")
    debit, credit = {
        PayoutStep.CREATED: (payee, in_transit),
        PayoutStep.PAID: (in_transit, bank(source_bank_code)),
        PayoutStep.FAILED: (in_transit, payee),
    }[step]
    return (debit, amount), (credit, -amount)


def rib_last4(rib: str) -> str:
    """All of a RIB that leaves the service in events and API answers."""
    return rib[-4:]


class ScheduleInterval(enum.StrEnum):
    MANUAL = "manual"  # only payouts someone asks for
    DAILY = "daily"  # the whole available balance, once per UTC day
    WEEKLY = "weekly"  # the whole available balance, once per ISO week (Monday to Sunday, UTC)
    THRESHOLD = "threshold"  # the whole available balance once it reaches the threshold, at most daily


def schedule_window(interval: str, now: dt.datetime) -> str:
    """The window an automatic payout belongs to: at most one payout per artisan and window."""
    day = now.astimezone(dt.UTC).date()
    if interval == ScheduleInterval.WEEKLY:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if interval in (ScheduleInterval.DAILY, ScheduleInterval.THRESHOLD):
        return day.isoformat()
    raise ValueError(f"no window for interval {interval!r}")


def schedule_key(artisan_id: str, interval: str, now: dt.datetime) -> str:
    """Deterministic, so two worker passes (or two workers) in one window create one payout."""
    return f"auto:{artisan_id}:{interval}:{schedule_window(interval, now)}"


# A marketplace's commission is paid out by hand (an operator) or daily or weekly.
COMMISSION_INTERVALS = (ScheduleInterval.MANUAL, ScheduleInterval.DAILY, ScheduleInterval.WEEKLY)


def commission_schedule_key(marketplace_id: str, interval: str, now: dt.datetime) -> str:
    """As ``schedule_key``, for a marketplace's commission (its own namespace: ids never collide)."""
    return f"auto:marketplace:{marketplace_id}:{interval}:{schedule_window(interval, now)}"


def schedule_is_due(interval: str, available: int, threshold: int | None) -> bool:
    if interval == ScheduleInterval.MANUAL or available <= 0:
        return False
    if interval == ScheduleInterval.THRESHOLD:
        return threshold is not None and available >= threshold
    return True
