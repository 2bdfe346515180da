"""Can this artisan receive this amount? The KYC gate, then their tier's cap, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.payees import cap_headroom, fits_under_cap, most_on_the_way_that_fits
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


@given(
    net=st.integers(min_value=0, max_value=10**13),
    tier_cap=st.integers(min_value=0, max_value=10**13),
    ledger_balance=st.integers(min_value=-(10**12), max_value=10**13),
    on_the_way=st.integers(min_value=0, max_value=10**13),
)
def test_the_bound_a_creation_gives_its_insert_is_the_cap_itself(net, tier_cap, ledger_balance, on_the_way):
    """A creation's insert goes in while what is on its way is at most ``most_on_the_way_that_fits``:
    exactly when the cap check would let the payment through."""
    bound = most_on_the_way_that_fits(net, tier_cap=tier_cap, ledger_balance=ledger_balance)
    assert (on_the_way <= bound) == fits_under_cap(net, tier_cap=tier_cap, held=ledger_balance + on_the_way)
