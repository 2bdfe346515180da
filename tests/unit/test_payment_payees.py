"""Can this artisan receive this amount? The KYC gate, then their tier's cap, without a database."""

from __future__ import annotations

import pytest

from services.payments.domain.payees import cap_headroom, fits_under_cap
from shared.kyc import KYC_ACTIVE, KYC_REJECTED, KYC_SUSPENDED, can_be_paid


@pytest.mark.parametrize(
    ("tier", "status", "expected"),
    [
        (0, KYC_ACTIVE, False),  # registered, not verified
        (1, KYC_ACTIVE, True),
        (3, KYC_ACTIVE, True),
        (3, KYC_REJECTED, False),
        (2, KYC_SUSPENDED, False),
    ],
)
def test_only_a_verified_active_artisan_may_be_paid(tier, status, expected):
    assert can_be_paid(tier, status) is expected


def test_the_cap_counts_what_the_artisan_already_holds():
    assert cap_headroom(2_000_000, 1_500_000) == 500_000
    assert fits_under_cap(500_000, tier_cap=2_000_000, held=1_500_000)  # exactly up to the cap
    assert not fits_under_cap(500_001, tier_cap=2_000_000, held=1_500_000)


def test_an_artisan_above_their_cap_has_negative_headroom_and_receives_nothing():
    # A tier lowered after the money arrived.
    assert cap_headroom(500_000, 700_000) == -200_000
    assert not fits_under_cap(1, tier_cap=500_000, held=700_000)
