"""The ledger's artisan rules (never below zero, never above the tier cap), without a database.

The accounts are plain values, as ``post`` hands them over after locking them: stored balances are
signed (a credit-normal artisan account holding 500 stores -500), entry amounts too (+ debit).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.accounts.domain.artisan_rules import (
    AccountBalance,
    BalanceRuleViolation,
    artisan_cap,
    check_artisan_rules,
)
from services.accounts.domain.ledger import AccountRef, artisan, gateway_receivable, marketplace, platform

ART = "art_1"
PENDING, AVAILABLE = artisan(ART, "pending"), artisan(ART, "available")


def holding(pending: int = 0, available: int = 0, **others: int) -> dict[AccountRef, AccountBalance]:
    """The artisan's locked accounts holding ``pending`` and ``available`` (as people read them)."""
    accounts = {
        PENDING: AccountBalance(normal_side="credit", balance=-pending),
        AVAILABLE: AccountBalance(normal_side="credit", balance=-available),
        gateway_receivable("m2t"): AccountBalance(normal_side="debit", balance=0),
        marketplace("cli_m", "commission"): AccountBalance(normal_side="credit", balance=0),
        platform("payouts_in_transit"): AccountBalance(normal_side="credit", balance=0),
    }
    for owner_id, shown in others.items():
        accounts[artisan(owner_id, "available")] = AccountBalance(normal_side="credit", balance=-shown)
    return accounts


def refusal(accounts, caps, amounts) -> tuple[str, dict]:
    with pytest.raises(BalanceRuleViolation) as refused:
        check_artisan_rules(accounts, caps, amounts)
    return refused.value.rule, refused.value.detail


# -- the cap ---------------------------------------------------------------------------------------


def test_a_payment_that_fits_under_the_cap_passes():
    amounts = {gateway_receivable("m2t"): 10_000, PENDING: -9_000, marketplace("cli_m", "commission"): -1_000}
    check_artisan_rules(holding(pending=5_000, available=6_000), {ART: 20_000}, amounts)


def test_a_payment_that_reaches_the_cap_exactly_passes():
    check_artisan_rules(
        holding(pending=11_000), {ART: 20_000}, {gateway_receivable("m2t"): 9_000, PENDING: -9_000}
    )


def test_the_cap_counts_everything_the_artisan_holds():
    rule, detail = refusal(
        holding(pending=8_000, available=8_000),
        {ART: 20_000},
        {gateway_receivable("m2t"): 5_000, PENDING: -5_000},
    )
    assert (rule, detail) == ("tier_cap_exceeded", {"artisan_id": ART, "total_after": 21_000, "cap": 20_000})


def test_an_artisan_without_a_known_cap_can_hold_nothing():
    rule, detail = refusal(holding(), {}, {gateway_receivable("m2t"): 100, PENDING: -100})
    assert (rule, detail["cap"], detail["total_after"]) == ("tier_cap_exceeded", 0, 100)


def test_money_leaving_an_artisan_never_breaks_the_cap():
    # A KYC downgrade left them above their cap: a payout still goes through.
    check_artisan_rules(
        holding(available=30_000), {ART: 0}, {AVAILABLE: 10_000, platform("payouts_in_transit"): -10_000}
    )


def test_moving_money_between_an_artisans_own_accounts_never_breaks_the_cap():
    check_artisan_rules(holding(pending=30_000), {ART: 20_000}, {PENDING: 10_000, AVAILABLE: -10_000})


def test_only_the_artisan_the_money_goes_to_is_checked_against_their_cap():
    accounts = holding(pending=0, art_2=50_000)
    check_artisan_rules(accounts, {ART: 1_000, "art_2": 0}, {gateway_receivable("m2t"): 500, PENDING: -500})


def test_the_cap_only_counts_while_kyc_is_active():
    assert artisan_cap(20_000, "active") == 20_000
    assert artisan_cap(20_000, "rejected") == 0
    assert artisan_cap(20_000, "suspended") == 0
    assert artisan_cap(None, None) == 0  # no limits known yet


# -- never below zero ------------------------------------------------------------------------------


def test_an_account_may_be_emptied_to_zero():
    check_artisan_rules(
        holding(available=4_000), {ART: 0}, {AVAILABLE: 4_000, platform("payouts_in_transit"): -4_000}
    )


def test_no_artisan_account_goes_below_zero():
    rule, detail = refusal(
        holding(available=4_000), {ART: 100_000}, {AVAILABLE: 4_001, platform("payouts_in_transit"): -4_001}
    )
    assert (rule, detail) == (
        "artisan_balance_negative",
        {"artisan_id": ART, "account": "available", "balance_after": -1},
    )


def test_money_elsewhere_does_not_cover_a_debit_on_one_account():
    rule, detail = refusal(
        holding(pending=50_000, available=0),
        {ART: 100_000},
        {AVAILABLE: 1, platform("payouts_in_transit"): -1},
    )
    assert (rule, detail["account"]) == ("artisan_balance_negative", "available")


def test_going_below_zero_is_refused_before_the_cap_is_looked_at():
    rule, _ = refusal(
        holding(pending=100), {ART: 0}, {PENDING: 200, AVAILABLE: -100, gateway_receivable("m2t"): -100}
    )
    assert rule == "artisan_balance_negative"


def test_platform_and_marketplace_accounts_are_not_artisan_rules_business():
    check_artisan_rules(
        holding(), {}, {gateway_receivable("m2t"): -5_000, marketplace("cli_m", "commission"): 5_000}
    )


@given(
    pending=st.integers(0, 10**9),
    available=st.integers(0, 10**9),
    cap=st.integers(0, 10**9),
    incoming=st.integers(1, 10**9),
)
def test_a_credit_passes_exactly_when_the_total_stays_within_the_cap(pending, available, cap, incoming):
    amounts = {gateway_receivable("m2t"): incoming, PENDING: -incoming}
    fits = pending + available + incoming <= cap
    try:
        check_artisan_rules(holding(pending, available), {ART: cap}, amounts)
    except BalanceRuleViolation as refused:
        assert not fits and refused.rule == "tier_cap_exceeded"
    else:
        assert fits


@given(available=st.integers(0, 10**9), outgoing=st.integers(1, 10**9))
def test_a_debit_passes_exactly_when_the_account_stays_at_or_above_zero(available, outgoing):
    amounts = {AVAILABLE: outgoing, platform("payouts_in_transit"): -outgoing}
    try:
        check_artisan_rules(holding(available=available), {ART: 0}, amounts)
    except BalanceRuleViolation as refused:
        assert outgoing > available and refused.detail["balance_after"] == available - outgoing
    else:
        assert outgoing <= available
