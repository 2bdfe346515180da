"""The chart of accounts and the rules every journal entry obeys (DESIGN §3).

Line amounts are signed minor units: positive = debit, negative = credit. An account's stored
balance is the sum of its lines, so a credit-normal account (a liability: what we owe an artisan
or a marketplace) holds a negative number; ``shown_balance`` turns it the way people read it.

    owner        kind                        normal   what it is
    artisan      pending                     credit   the artisan's money inside the hold period
    artisan      available                   credit   the artisan's money that can be paid out
    marketplace  commission                  credit   commission owed to the marketplace
    marketplace  reserve                     credit   the marketplace's reserve, which covers
                                                      refunds and disputes an artisan cannot
    platform     gateway_receivable:{gw}     debit    captured funds the gateway owes us
    platform     bank:{bank}                 debit    ring-fenced client funds at a bank
    platform     payouts_in_transit          credit   payouts sent, not yet confirmed paid
    platform     disputes_held               credit   artisans' funds held during disputes
    platform     gateway_fees                debit    what the gateway charges (expense)
    platform     bank_fees                   debit    what the bank charges (expense)
    platform     revenue                     credit   Hirfa's own income
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections import defaultdict


class ArtisanAccountKind(enum.StrEnum):
    PENDING = "pending"  # received, inside the hold period
    AVAILABLE = "available"  # may be paid out


ARTISAN_ACCOUNT_KINDS = tuple(ArtisanAccountKind)
MARKETPLACE_ACCOUNT_KINDS = ("commission", "reserve")
PLATFORM_OWNER = "platform"

_DEBIT_NORMAL_PREFIXES = ("gateway_receivable:", "bank:")
_DEBIT_NORMAL_KINDS = {"gateway_fees", "bank_fees"}
PLATFORM_KINDS = ("payouts_in_transit", "disputes_held", "gateway_fees", "bank_fees", "revenue")


@dataclasses.dataclass(frozen=True, order=True)
class AccountRef:
    """Names a ledger account independently of its id: (owner type, owner id, kind)."""

    owner_type: str
    owner_id: str
    kind: str

    @property
    def normal_side(self) -> str:
        return normal_side(self.owner_type, self.kind)


def normal_side(owner_type: str, kind: str) -> str:
    if owner_type == PLATFORM_OWNER and (
        kind in _DEBIT_NORMAL_KINDS or kind.startswith(_DEBIT_NORMAL_PREFIXES)
    ):
        return "debit"
    return "credit"


def shown_balance(stored: int, side: str) -> int:
    """What people read: a credit-normal account with stored -500 holds 500."""
    return stored if side == "debit" else -stored


@functools.lru_cache(maxsize=16_384)
def account_ref(owner_type: str, owner_id: str, kind: str) -> AccountRef:
    """``AccountRef(owner_type, owner_id, kind)``, the same object each time while it is among the
    last few thousand asked for: an entry's accounts are keys of several mappings (its amounts,
    the locked accounts, their ids), and a key that is the very object is found without comparing
    its fields; a batch of payments names the same shared accounts in each of its entries."""
    return AccountRef(owner_type, owner_id, kind)


def artisan(artisan_id: str, kind: str) -> AccountRef:
    return account_ref("artisan", artisan_id, kind)


def marketplace(marketplace_id: str, kind: str) -> AccountRef:
    return account_ref("marketplace", marketplace_id, kind)


def platform(kind: str) -> AccountRef:
    return account_ref(PLATFORM_OWNER, PLATFORM_OWNER, kind)


def gateway_receivable(gateway: str) -> AccountRef:
    return platform(f"gateway_receivable:{gateway}")


def bank(bank_code: str) -> AccountRef:
    return platform(f"bank:{bank_code}")


def is_known_account(ref: AccountRef) -> bool:
    """Whether ``ref`` names an account of the chart above (adjustments may name any of them)."""
    if ref.owner_type == "artisan":
        return ref.kind in {str(kind) for kind in ARTISAN_ACCOUNT_KINDS} and bool(ref.owner_id)
    if ref.owner_type == "marketplace":
        return ref.kind in MARKETPLACE_ACCOUNT_KINDS and bool(ref.owner_id)
    if ref.owner_type == PLATFORM_OWNER and ref.owner_id == PLATFORM_OWNER:
        prefix, _, code = ref.kind.partition(":")
        if code:
            return f"{prefix}:" in _DEBIT_NORMAL_PREFIXES
        return ref.kind in PLATFORM_KINDS
    return False


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
        if line.amount == 0:
            raise UnbalancedEntry("a line moves a non-zero amount")
        totals[line.currency] += line.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"debits and credits differ: {unbalanced}")
