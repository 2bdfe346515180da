"""Payees: whether an artisan can receive a payment of a given amount. No I/O here.

Two gates, in order. KYC first (``shared.kyc.can_be_paid``, the one home of that gate: tier 1 or
more, KYC active): an artisan who fails it receives nothing, whatever the amount. Then the cap of
their KYC tier (Bank Al-Maghrib's), here: what they hold (their ledger balance and their share of
the payments on their way to it) plus this payment's net share must stay within it.
"""

from __future__ import annotations


def cap_headroom(tier_cap: int, held: int) -> int:
    """How much more the artisan may receive under their tier's cap (negative once above it)."""
    return tier_cap - held


def fits_under_cap(net: int, *, tier_cap: int, held: int) -> bool:
    """Whether an artisan holding ``held`` may receive ``net`` more under their tier's cap."""
    return net <= cap_headroom(tier_cap, held)


def most_on_the_way_that_fits(net: int, *, tier_cap: int, ledger_balance: int) -> int:
    """The most the artisan's payments on their way to the ledger may add up to for ``net`` more to
    fit under their tier's cap beside their ledger balance: ``fits_under_cap(net, tier_cap=tier_cap,
    held=ledger_balance + on_the_way)`` exactly when ``on_the_way`` is at most this. A creation
    hands it to the insert, which sums what is on the way itself in the same statement."""
    return cap_headroom(tier_cap, ledger_balance) - net
