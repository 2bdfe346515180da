"""Payees: whether an artisan can receive a payment of a given amount. No I/O here.

Two gates, in order. KYC first (``shared.kyc.can_be_paid``: tier 1 or more, KYC active): an
artisan who fails it receives nothing. Then the cap of their KYC tier (Bank Al-Maghrib's): what
they hold (their ledger balance and the payments on their way to it) plus this payment's net
share must stay within it.
"""

from __future__ import annotations

import enum

from shared.kyc import can_be_paid


class PayeeRefusal(enum.StrEnum):
    """Why an artisan cannot receive a payment; the value is the API's error code."""

    NOT_ELIGIBLE = "payee_not_eligible"
    TIER_LIMIT_EXCEEDED = "tier_limit_exceeded"


def may_receive_payments(kyc_tier: int, kyc_status: str) -> bool:
    """The KYC gate, before any amount is looked at."""
    return can_be_paid(kyc_tier, kyc_status)


def cap_headroom(tier_cap: int, held: int) -> int:
    """How much more the artisan may receive under their tier's cap (negative once above it)."""
    return tier_cap - held


def refusal_for(kyc_tier: int, kyc_status: str, *, tier_cap: int, held: int, net: int) -> PayeeRefusal | None:
    """Why an artisan holding ``held`` cannot receive ``net`` more, or None when they can."""
    if not may_receive_payments(kyc_tier, kyc_status):
        return PayeeRefusal.NOT_ELIGIBLE
    if net > cap_headroom(tier_cap, held):
        return PayeeRefusal.TIER_LIMIT_EXCEEDED
    return None
