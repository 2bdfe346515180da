"""The KYC gate and the version guard every projection of onboarding's KYC news uses (``shared.kyc``)."""

from __future__ import annotations

import dataclasses

import pytest

from shared.events import make_event
from shared.ids import new_id
from shared.kyc import (
    KYC_ACTIVE,
    KYC_REJECTED,
    KYC_SUSPENDED,
    KycRejection,
    TierChange,
    apply_rejection,
    apply_tier_change,
    can_be_paid,
    is_stale,
)

ARTISAN = new_id("art")


@dataclasses.dataclass
class Projection:
    """Any service's copy of an artisan's standing (payments' payee, accounts' limits)."""

    kyc_tier: int = 0
    kyc_status: str = KYC_ACTIVE
    kyc_version: int = 0


def tier_changed(tier: int, version: int, *, status: str = KYC_ACTIVE, cap: int = 20_000) -> TierChange:
    return TierChange.from_event(
        make_event(
            "onboarding.artisan.kyc_tier_changed",
            subject=ARTISAN,
            data={
                "artisan_id": ARTISAN,
                "previous_tier": 0,
                "kyc_tier": tier,
                "direction": "up",
                "tier_cap": {"amount": cap, "currency": "MAD"},
                "reason_code": "phone_verified",
                "actor": "system",
                "kyc_status": status,
                "kyc_version": version,
                "changed_at": "2026-12-01T10:00:00Z",
            },
        )
    )


def rejected(version: int, *, status: str = KYC_REJECTED) -> KycRejection:
    return KycRejection.from_event(
        make_event(
            "onboarding.artisan.kyc_rejected",
            subject=ARTISAN,
            data={
                "artisan_id": ARTISAN,
                "review_id": new_id("rev"),
                "review_kind": "tier_upgrade",
                "reason_code": "document_forged",
                "kyc_tier": 0,
                "kyc_status": status,
                "kyc_version": version,
                "rejected_at": "2026-12-01T10:00:00Z",
            },
        )
    )


# --- can this artisan be paid -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "status", "payable"),
    [
        (0, KYC_ACTIVE, False),  # registered, not verified
        (1, KYC_ACTIVE, True),
        (3, KYC_ACTIVE, True),
        (2, KYC_REJECTED, False),
        (2, KYC_SUSPENDED, False),
    ],
)
def test_only_an_active_artisan_from_tier_1_can_be_paid(tier, status, payable):
    assert can_be_paid(tier, status) is payable


# --- the version guard ------------------------------------------------------------------------------


def test_news_older_than_what_is_held_is_stale():
    assert is_stale(1, 2)
    assert not is_stale(3, 2)


def test_news_at_the_held_version_is_a_replay_unless_it_does_not_raise_the_version():
    assert is_stale(2, 2)
    assert not is_stale(2, 2, same_version_applies=True)
    assert is_stale(1, 2, same_version_applies=True)


# --- reading the events -----------------------------------------------------------------------------


def test_a_tier_change_is_read_with_its_cap():
    change = tier_changed(2, 5, cap=500_000)
    assert (change.artisan_id, change.kyc_tier, change.kyc_version, change.kyc_status) == (
        ARTISAN,
        2,
        5,
        KYC_ACTIVE,
    )
    assert (change.cap_amount, change.currency) == (500_000, "MAD")
    assert change.event_id.startswith("evt_")


def test_a_rejection_is_read_with_its_status_and_version():
    rejection = rejected(4)
    assert (rejection.artisan_id, rejection.kyc_status, rejection.kyc_version) == (ARTISAN, KYC_REJECTED, 4)


# --- applying a tier change -------------------------------------------------------------------------


def test_a_newer_tier_change_moves_tier_status_and_version():
    projection = Projection()
    assert apply_tier_change(projection, tier_changed(1, 1))
    assert projection == Projection(kyc_tier=1, kyc_status=KYC_ACTIVE, kyc_version=1)


def test_a_tier_change_can_carry_a_rejection_status():
    projection = Projection(kyc_tier=2, kyc_version=2)
    assert apply_tier_change(projection, tier_changed(0, 3, status=KYC_REJECTED))
    assert projection == Projection(kyc_tier=0, kyc_status=KYC_REJECTED, kyc_version=3)


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_or_replayed_tier_change_changes_nothing(version):
    projection = Projection(kyc_tier=2, kyc_version=2)
    assert not apply_tier_change(projection, tier_changed(3, version))
    assert projection == Projection(kyc_tier=2, kyc_version=2)


# --- applying a rejection ---------------------------------------------------------------------------


def test_a_rejection_at_the_held_version_applies_without_raising_it():
    projection = Projection(kyc_tier=1, kyc_version=1)
    assert apply_rejection(projection, rejected(1))
    assert projection == Projection(kyc_tier=1, kyc_status=KYC_REJECTED, kyc_version=1)


def test_a_rejection_ahead_of_its_tier_change_leaves_that_change_to_apply():
    projection = Projection(kyc_tier=2, kyc_version=2)
    assert apply_rejection(projection, rejected(3))
    assert projection.kyc_version == 2
    assert apply_tier_change(projection, tier_changed(0, 3, status=KYC_REJECTED))
    assert projection == Projection(kyc_tier=0, kyc_status=KYC_REJECTED, kyc_version=3)


def test_an_older_rejection_does_not_bring_a_status_back():
    projection = Projection(kyc_tier=0, kyc_status=KYC_REJECTED, kyc_version=3)
    assert not apply_rejection(projection, rejected(1, status=KYC_ACTIVE))
    assert projection.kyc_status == KYC_REJECTED
