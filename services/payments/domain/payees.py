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
