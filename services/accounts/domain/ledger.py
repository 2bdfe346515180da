"""The chart of accounts and the rules every journal entry obeys (DESIGN §3)."""

from __future__ import annotations

import dataclasses
import enum
from collections import defaultdict


class ArtisanAccountKind(enum.StrEnum):
    PENDING = "pending"  # received, inside the hold period
    AVAILABLE = "available"  # may be paid out


ARTISAN_ACCOUNT_KINDS = tuple(ArtisanAccountKind)


class UnbalancedEntry(ValueError):
    """Debits and credits of an entry differ for some currency, or it has fewer than two lines."""


@dataclasses.dataclass(frozen=True)
class Line:
    account_id: str
    amount: int  # minor units; positive = debit, negative = credit
    currency: str


def check_balanced(lines: list[Line]) -> None:
    if len(lines) < 2:
        raise UnbalancedEntry("a journal entry needs at least two lines")
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        if isinstance(line.amount, bool) or not isinstance(line.amount, int):
            raise UnbalancedEntry("amounts are integers in minor units")
        totals[line.currency] += line.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"debits and credits differ: {unbalanced}")
