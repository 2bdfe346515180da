"""What each money movement posts, and how an amount owed by an artisan is split, without a database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.accounts.domain.ledger import (
    AccountRef,
    Line,
    artisan,
    check_balanced,
    gateway_receivable,
    is_known_account,
    marketplace,
    platform,
)
from services.accounts.domain.postings import (
    Split,
    dispute_closed_lines,
    dispute_opened_lines,
    net_amounts,
    payment_lines,
    platform_fee,
    refund_lines,
    release_lines,
    reversal_lines,
    split_artisan_debit,
    split_debit,
)

ART, MKT = "art_1", "cli_m"
amounts = st.integers(0, 10**9)


def assert_balanced(lines) -> None:
    check_balanced([Line(str(ref), amount, "MAD") for ref, amount in net_amounts(lines).items()])


# -- the split of a debit --------------------------------------------------------------------------


def test_a_debit_comes_from_the_payments_hold_first():
    assert split_debit(3_000, pending_hold_remaining=5_000, available=10_000) == Split(3_000, 0, 0)


def test_then_from_what_is_available():
    assert split_debit(8_000, pending_hold_remaining=5_000, available=10_000) == Split(5_000, 3_000, 0)


def test_and_the_marketplace_reserve_covers_the_shortfall():
    assert split_debit(8_000, pending_hold_remaining=1_000, available=2_000) == Split(1_000, 2_000, 5_000)


def test_a_hold_never_gives_more_than_the_pending_account_holds():
    # Earlier refunds took part of the pending account that the hold still counts.
    split = split_artisan_debit(4_000, hold_remaining=5_000, pending=1_500, available=0)
    assert split == Split(1_500, 0, 2_500)


@given(amount=amounts, hold=amounts, pending=amounts, available=amounts)
def test_a_split_covers_the_amount_and_never_overdraws_the_artisan(amount, hold, pending, available):
    split = split_artisan_debit(amount, hold_remaining=hold, pending=pending, available=available)
    assert split.from_pending + split.from_available + split.from_reserve == amount
    assert 0 <= split.from_pending <= min(hold, pending)
    assert 0 <= split.from_available <= available
    assert split.from_reserve >= 0
    # The reserve is only used once the artisan's money is spent.
    if split.from_reserve:
        assert split.from_pending == min(hold, pending) and split.from_available == available


def test_a_splits_lines_leave_out_the_parts_that_are_zero():
    assert Split(0, 700, 0).debit_lines(ART, MKT) == [(artisan(ART, "available"), 700)]
    assert Split(100, 0, 50).debit_lines(ART, MKT) == [
        (artisan(ART, "pending"), 100),
        (marketplace(MKT, "reserve"), 50),
    ]


# -- the entries -----------------------------------------------------------------------------------


def test_a_payment_gives_the_artisan_the_net_and_the_marketplace_its_fee():
    lines = payment_lines(gateway="m2t", artisan_id=ART, marketplace_id=MKT, gross=10_000, fee=1_200)
    assert lines == (
        (gateway_receivable("m2t"), 10_000),
        (artisan(ART, "pending"), -8_800),
        (marketplace(MKT, "commission"), -1_200),
    )
    assert_balanced(lines)


def test_a_payment_that_is_all_commission_leaves_the_artisan_unchanged():
    lines = payment_lines(gateway="cmi", artisan_id=ART, marketplace_id=MKT, gross=500, fee=500)
    assert net_amounts(lines) == {gateway_receivable("cmi"): 500, marketplace(MKT, "commission"): -500}


def test_a_refund_takes_the_fee_back_from_the_marketplace_and_the_rest_as_split():
    split = split_debit(9_000 - 900, pending_hold_remaining=5_000, available=1_000)
    lines = refund_lines(
        gateway="m2t", artisan_id=ART, marketplace_id=MKT, amount=9_000, fee_refunded=900, split=split
    )
    assert lines == (
        (gateway_receivable("m2t"), -9_000),
        (marketplace(MKT, "commission"), 900),
        (artisan(ART, "pending"), 5_000),
        (artisan(ART, "available"), 1_000),
        (marketplace(MKT, "reserve"), 2_100),
    )
    assert_balanced(lines)


def test_a_dispute_holds_the_amount_until_it_closes():
    split = Split(2_000, 3_000, 0)
    lines = dispute_opened_lines(artisan_id=ART, marketplace_id=MKT, amount=5_000, split=split)
    assert lines == (
        (artisan(ART, "pending"), 2_000),
        (artisan(ART, "available"), 3_000),
        (platform("disputes_held"), -5_000),
    )
    assert_balanced(lines)


def test_a_won_dispute_gives_back_what_was_held_where_it_came_from():
    held = Split(2_000, 0, 1_000)
    lines = dispute_closed_lines(outcome="won", gateway="m2t", artisan_id=ART, marketplace_id=MKT, held=held)
    assert lines == (
        (platform("disputes_held"), 3_000),
        (artisan(ART, "pending"), -2_000),
        (marketplace(MKT, "reserve"), -1_000),
    )
    assert_balanced(lines)


def test_a_lost_dispute_leaves_the_money_with_the_gateway():
    held = Split(2_000, 500, 1_000)
    lines = dispute_closed_lines(outcome="lost", gateway="m2t", artisan_id=ART, marketplace_id=MKT, held=held)
    assert lines == ((platform("disputes_held"), 3_500), (gateway_receivable("m2t"), -3_500))


def test_a_release_moves_pending_funds_to_available():
    assert release_lines(ART, 700) == ((artisan(ART, "pending"), 700), (artisan(ART, "available"), -700))


@given(
    gross=st.integers(1, 10**9),
    fee_percent=st.integers(0, 100),
    refunded_percent=st.integers(1, 100),
    hold=amounts,
    available=amounts,
)
def test_every_entry_of_a_payments_life_balances(gross, fee_percent, refunded_percent, hold, available):
    fee = gross * fee_percent // 100
    refund, fee_back = gross * refunded_percent // 100, fee * refunded_percent // 100
    split = split_debit(refund - fee_back, hold, available)
    for lines in (
        payment_lines(gateway="m2t", artisan_id=ART, marketplace_id=MKT, gross=gross, fee=fee),
        refund_lines(
            gateway="m2t",
            artisan_id=ART,
            marketplace_id=MKT,
            amount=refund,
            fee_refunded=fee_back,
            split=split,
        ),
        dispute_opened_lines(artisan_id=ART, marketplace_id=MKT, amount=refund - fee_back, split=split),
        dispute_closed_lines(outcome="won", gateway="m2t", artisan_id=ART, marketplace_id=MKT, held=split),
        dispute_closed_lines(outcome="lost", gateway="m2t", artisan_id=ART, marketplace_id=MKT, held=split),
    ):
        if net_amounts(lines):
            assert_balanced(lines)


def test_lines_on_one_account_are_added_up_and_accounts_left_unchanged_dropped():
    lines = [
        (artisan(ART, "pending"), 500),
        (artisan(ART, "available"), -500),
        (artisan(ART, "pending"), -500),
        (gateway_receivable("m2t"), 300),
        (marketplace(MKT, "commission"), -300),
    ]
    assert net_amounts(lines) == {
        artisan(ART, "available"): -500,
        gateway_receivable("m2t"): 300,
        marketplace(MKT, "commission"): -300,
    }


def test_the_platform_fee_comes_out_of_the_commission_and_goes_to_revenue():
    taken = platform_fee(gross=10_000, application_fee=1_200, fee_bp=250, fee_fixed=100)
    assert taken == 350  # 2.5 % of 10 000 + 1.00
    lines = payment_lines(
        gateway="m2t", artisan_id=ART, marketplace_id=MKT, gross=10_000, fee=1_200, platform_fee=taken
    )
    assert lines == (
        (gateway_receivable("m2t"), 10_000),
        (artisan(ART, "pending"), -8_800),  # the artisan's share does not see the platform's fee
        (marketplace(MKT, "commission"), -850),
        (platform("revenue"), -350),
    )
    assert_balanced(lines)


def test_the_platform_fee_rounds_half_up_and_never_passes_the_application_fee():
    # 15 bp of 10 001 = 15.0015 → 15; 1 bp of 5 000 = 0.5 → 1 (half up); 1 bp of 4 999 = 0.4999 → 0.
    assert platform_fee(gross=10_001, application_fee=1_000, fee_bp=15, fee_fixed=0) == 15
    assert platform_fee(gross=5_000, application_fee=1_000, fee_bp=1, fee_fixed=0) == 1
    assert platform_fee(gross=4_999, application_fee=1_000, fee_bp=1, fee_fixed=0) == 0
    assert platform_fee(gross=10_000, application_fee=300, fee_bp=500, fee_fixed=100) == 300
    assert platform_fee(gross=10_000, application_fee=0, fee_bp=500, fee_fixed=100) == 0
    assert platform_fee(gross=10_000, application_fee=1_000, fee_bp=0, fee_fixed=0) == 0


def test_a_reversal_is_the_exact_negation_line_by_line():
    lines = payment_lines(gateway="m2t", artisan_id=ART, marketplace_id=MKT, gross=10_000, fee=1_200)
    reversed_lines = reversal_lines(lines)
    assert reversed_lines == tuple((ref, -amount) for ref, amount in lines)
    assert_balanced(reversed_lines)


def test_the_chart_knows_which_accounts_an_adjustment_may_name():
    assert is_known_account(artisan(ART, "available"))
    assert is_known_account(marketplace(MKT, "reserve"))
    assert is_known_account(platform("revenue"))
    assert is_known_account(gateway_receivable("m2t"))
    assert is_known_account(platform("bank:145"))
    assert not is_known_account(artisan(ART, "commission"))
    assert not is_known_account(platform("savings"))
    assert not is_known_account(platform("other:1"))
    assert not is_known_account(AccountRef("platform", "someone", "revenue"))
    assert not is_known_account(AccountRef("bank", "x", "available"))
