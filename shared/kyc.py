"""What every service knows of an artisan's KYC standing, as onboarding announces it.

Onboarding decides tiers and statuses; payments and accounts keep a projection of them and ask
the same two questions of it: may this artisan be paid at all, and is a piece of KYC news newer
than what we hold. Both questions are answered here once, so the services cannot drift apart.
"""

from __future__ import annotations

from typing import Final

# The KYC statuses onboarding announces (``kyc_status`` in its events).
KYC_ACTIVE: Final = "active"
KYC_REJECTED: Final = "rejected"
KYC_SUSPENDED: Final = "suspended"

# Tier 0 is "registered, not verified": no money may be received or paid out.
LOWEST_PAYABLE_TIER: Final = 1


def can_be_paid(kyc_tier: int, kyc_status: str) -> bool:
    """Whether an artisan at ``kyc_tier`` with ``kyc_status`` may receive money at all.

    The amount is a separate question (the tier's cap); this is the gate before it.
    """
    return kyc_tier >= LOWEST_PAYABLE_TIER and kyc_status == KYC_ACTIVE


def is_stale(event_version: int, held_version: int, *, same_version_applies: bool = False) -> bool:
    """Whether KYC news at ``event_version`` is older than the projection's ``held_version``.

    Events of one artisan arrive in order, but replays bring old news again under new event ids;
    ``kyc_version`` (per artisan, raised by onboarding on every tier change) lets a projection
    ignore them. ``same_version_applies``: news that carries the version it does not raise (a
    rejection that follows its tier change) still applies at that version.
    """
    if same_version_applies:
        return event_version < held_version
    return event_version <= held_version
