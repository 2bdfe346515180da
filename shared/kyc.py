"""What every service knows of an artisan's KYC standing, as onboarding announces it.

Onboarding decides tiers and statuses; payments and accounts keep a projection of them and ask
the same questions of it: may this artisan be paid at all, is a piece of KYC news newer than what
we hold, and what does the projection become when it is. They are answered here once, so the
services cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from shared.events.envelope import Event

log = logging.getLogger(__name__)

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


class KycProjection(Protocol):
    """A service's copy of one artisan's KYC standing (payments' payee, accounts' limits).

    Each projection also keeps the tier's cap, under its own column names: it stores the cap itself
    when ``apply_tier_change`` says the change applied.
    """

    kyc_tier: int
    kyc_status: str
    kyc_version: int


@dataclasses.dataclass(frozen=True)
class TierChange:
    """``onboarding.artisan.kyc_tier_changed``: the artisan's new tier, its cap, status and version."""

    event_id: str
    artisan_id: str
    kyc_tier: int
    kyc_status: str
    kyc_version: int
    cap_amount: int
    currency: str

    @classmethod
    def from_event(cls, event: Event) -> TierChange:
        data: Mapping[str, Any] = event.data
        return cls(
            event_id=event.id,
            artisan_id=data["artisan_id"],
            kyc_tier=data["kyc_tier"],
            kyc_status=data["kyc_status"],
            kyc_version=data["kyc_version"],
            cap_amount=data["tier_cap"]["amount"],
            currency=data["tier_cap"]["currency"],
        )


@dataclasses.dataclass(frozen=True)
class KycRejection:
    """``onboarding.artisan.kyc_rejected``: a compliance rejection's status, at the version it follows."""

    event_id: str
    artisan_id: str
    kyc_status: str
    kyc_version: int

    @classmethod
    def from_event(cls, event: Event) -> KycRejection:
        data: Mapping[str, Any] = event.data
        return cls(
            event_id=event.id,
            artisan_id=data["artisan_id"],
            kyc_status=data["kyc_status"],
            kyc_version=data["kyc_version"],
        )


def apply_tier_change(projection: KycProjection, change: TierChange) -> bool:
    """Bring ``projection`` to ``change``'s tier, status and version, unless the change is older
    news; return whether it applied (the caller then stores the cap).

    A change at the version already held is a replay: it is ignored too.
    """
    if is_stale(change.kyc_version, projection.kyc_version):
        _log_ignored("older KYC tier change ignored", change.event_id, change.kyc_version, projection)
        return False
    projection.kyc_tier = change.kyc_tier
    projection.kyc_status = change.kyc_status
    projection.kyc_version = change.kyc_version
    return True


def apply_rejection(projection: KycProjection, rejection: KycRejection) -> bool:
    """Record a rejection's status unless it is older news; return whether it applied.

    A rejection that changes the tier comes after the matching tier change with the same version;
    one that does not carries the current version: both apply. The version is not advanced: the
    rejection carries no cap, so the tier change of that version must still apply if it comes later.
    """
    if is_stale(rejection.kyc_version, projection.kyc_version, same_version_applies=True):
        _log_ignored("older KYC rejection ignored", rejection.event_id, rejection.kyc_version, projection)
        return False
    projection.kyc_status = rejection.kyc_status
    return True


def _log_ignored(message: str, event_id: str, event_version: int, projection: KycProjection) -> None:
    log.info(
        message,
        extra={"event_id": event_id, "event_version": event_version, "held_version": projection.kyc_version},
    )
