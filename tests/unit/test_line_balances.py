"""``balance_after`` of journal lines: each line's account balance right after it, from the
balances as locked, lines of one account in one batch running on from each other."""

from __future__ import annotations

import pytest

from services.accounts.adapters.ledger import balances_after


def test_each_line_carries_its_accounts_balance_after_it():
    opening = {"receivable": 5_000, "pending": -4_500, "commission": -500}
    lines = [("receivable", 1_000), ("pending", -900), ("commission", -100)]
    assert balances_after(opening, lines) == [6_000, -5_400, -600]


def test_lines_of_one_account_in_a_batch_run_on_from_each_other():
    opening = {"receivable": 0, "pending": 0}
    lines = [
        ("receivable", 1_000),
        ("pending", -1_000),
        ("receivable", 2_000),
        ("pending", -2_000),
        ("pending", 500),
    ]
    assert balances_after(opening, lines) == [1_000, -1_000, 3_000, -3_000, -2_500]
    assert opening == {"receivable": 0, "pending": 0}  # the caller's balances are left as locked


def test_a_line_for_an_account_not_locked_is_refused():
    with pytest.raises(KeyError):
        balances_after({"pending": 0}, [("pending", -100), ("receivable", 100)])
