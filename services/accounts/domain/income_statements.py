"""The artisan's income statement ("financial passport"): monthly figures read off the ledger.

Everything here is pure: the service layer hands over the journal lines of the artisan's entries
(``Movement``), these functions add them up. The figures, per calendar month (UTC, like every
timestamp of the ledger), in minor units of the ledger currency:

    gross_sales       what buyers paid: the debits of the artisan's payment entries (each entry
                      balances, so its debits are its gross amount whatever accounts it credits)
    refunds           what went back to buyers: the debits of the artisan's refund entries
    marketplace_fees  the marketplaces' commission, net of commission given back on refunds
    disputes          what disputes took from the artisan's accounts, net of disputes won
    net_income        what the artisan earned: every movement of their own accounts (pending and
                      available) except payouts and releases (pending to available, which moves
                      nothing in total)
    payouts           what left their accounts for their bank, net of failed payouts returned
    payments_count    payments posted; the ledger knows payments, not buyers, so this is what is
                      counted instead of buyers (one buyer paying twice counts twice)
    marketplaces      the marketplaces whose commission account a payment of the artisan credited

So ``closing balance = opening balance + net income - payouts`` for any period, which is what
makes a statement agree with the ledger's own artisan statements (``/transactions``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable

ARTISAN_OWNER = "artisan"
MARKETPLACE_OWNER = "marketplace"
COMMISSION = "commission"
# Causes that move the artisan's money without it being income.
NOT_INCOME_CAUSES = frozenset({"payout", "release"})

# A statement spans at most this many months (a loan or visa file asks for 6 to 24).
MAX_MONTHS = 36

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")

# Verification codes: 16 characters of Crockford's base32 (80 bits), shown in groups of four.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16
_CODE_CONFUSABLES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class PeriodError(ValueError):
    """A month that is not ``YYYY-MM``, or a period that is backwards or too long."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclasses.dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str, param: str) -> Month:
        found = _MONTH.match(text)
        if found is None:
            raise PeriodError(f"{param} must be a month as YYYY-MM (e.g. 2026-01).", param)
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, moment: dt.datetime) -> Month:
        moment = moment.astimezone(dt.UTC)
        return cls(moment.year, moment.month)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def start(self) -> dt.datetime:
        """The first instant of the month (UTC)."""
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclasses.dataclass(frozen=True)
class Period:
    """Whole months, ``first`` to ``last`` included."""

    first: Month
    last: Month

    @classmethod
    def parse(cls, first: str, last: str, *, today: dt.date) -> Period:
        period = cls(Month.parse(first, "from"), Month.parse(last, "to"))
        if period.last < period.first:
            raise PeriodError("to must not be before from.", "to")
        if len(period.months()) > MAX_MONTHS:
            raise PeriodError(f"A statement covers at most {MAX_MONTHS} months.", "to")
        if period.first > Month(today.year, today.month):
            raise PeriodError("from must not be in the future.", "from")
        return period

    def months(self) -> list[Month]:
        months, month = [], self.first
        while month <= self.last:
            months.append(month)
            month = month.next()
        return months

    @property
    def start(self) -> dt.datetime:
        return self.first.start()

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period."""
        return self.last.next().start()


@dataclasses.dataclass(frozen=True)
class Movement:
    """One journal line of an entry whose ``artisan_id`` is the artisan's."""

    entry_id: str
    cause: str
    cause_id: str
    posted_at: dt.datetime
    owner_type: str
    owner_id: str
    kind: str
    amount: int  # stored sign: positive debit, negative credit


@dataclasses.dataclass
class MonthFigures:
    month: Month
    gross_sales: int = 0
    refunds: int = 0
    marketplace_fees: int = 0
    disputes: int = 0
    net_income: int = 0
    payouts: int = 0
    payments: set[str] = dataclasses.field(default_factory=set)
    marketplaces: set[str] = dataclasses.field(default_factory=set)

    @property
    def active(self) -> bool:
        """A month with at least one sale."""
        return bool(self.payments)


@dataclasses.dataclass(frozen=True)
class IncomeFigures:
    months: list[MonthFigures]

    def total(self, name: str) -> int:
        return sum(int(getattr(month, name)) for month in self.months)

    @property
    def payments(self) -> set[str]:
        return set().union(*(month.payments for month in self.months))

    @property
    def marketplaces(self) -> list[str]:
        return sorted(set().union(*(month.marketplaces for month in self.months)))

    @property
    def months_active(self) -> int:
        return sum(1 for month in self.months if month.active)


def _is_artisan_account(line: Movement) -> bool:
    return line.owner_type == ARTISAN_OWNER


def add_up(period: Period, movements: Iterable[Movement]) -> IncomeFigures:
    """The period's figures, month by month (months without movements are there, with zeros)."""
    by_month = {month: MonthFigures(month) for month in period.months()}
    for line in movements:
        figures = by_month.get(Month.of(line.posted_at))
        if figures is None:
            continue  # posted outside the period
        # Artisan accounts are credit-normal: a credit (negative line) is money in for them.
        to_artisan = -line.amount if _is_artisan_account(line) else 0
        if line.cause == "payment":
            figures.payments.add(line.cause_id)
            if line.amount > 0:
                figures.gross_sales += line.amount
            if line.owner_type == MARKETPLACE_OWNER and line.kind == COMMISSION:
                figures.marketplace_fees -= line.amount
                figures.marketplaces.add(line.owner_id)
        elif line.cause == "refund":
            if line.amount > 0:
                figures.refunds += line.amount
            if line.owner_type == MARKETPLACE_OWNER and line.kind == COMMISSION:
                figures.marketplace_fees -= line.amount
        elif line.cause == "dispute":
            figures.disputes -= to_artisan
        if line.cause == "payout":
            figures.payouts -= to_artisan
        elif line.cause not in NOT_INCOME_CAUSES:
            figures.net_income += to_artisan
    return IncomeFigures([by_month[month] for month in period.months()])


def artisan_balance(movements: Iterable[Movement]) -> int:
    """What the artisan's accounts hold after ``movements`` (all of them, from the first)."""
    return sum(-line.amount for line in movements if _is_artisan_account(line))


# --- verification codes ---------------------------------------------------------------------------


def new_verification_code() -> str:
    """A fresh code, e.g. ``7KQ2-M9XD-3TRA-E5WB``: what a bank types to fetch the signed statement."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_code(text: str) -> str | None:
    """The code as issued (grouped, upper case) from what someone typed, or None if it cannot be one.

    Spaces, dashes and case do not matter; O, I and L are read as 0, 1 and 1 (Crockford)."""
    compact = re.sub(r"[\s-]", "", text).upper().translate(_CODE_CONFUSABLES)
    if len(compact) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in compact):
        return None
    return "-".join(compact[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def code_digest(code: str) -> str:
    """How a code is stored: a SHA-256 of its normalized form (the code itself is a capability)."""
    return hashlib.sha256(code.encode()).hexdigest()
