"""The lag bench's arithmetic (tests/bench_lag.py) on made-up times: which payments count and how
the percentiles are taken. Nothing here is timed."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from tests.bench_lag import lag_figures, percentile

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def at(milliseconds: float) -> dt.datetime:
    return START + dt.timedelta(milliseconds=milliseconds)


def test_a_hundred_lags_of_1_to_100_ms_have_their_median_at_50_and_p99_at_99() -> None:
    committed = {f"pay_{n}": at(n * 7) for n in range(1, 101)}  # committed at different times
    posted = {
        payment: committed_at + dt.timedelta(milliseconds=int(payment[4:]))
        for payment, committed_at in committed.items()
    }
    # The order payments come in does not matter.
    shuffled = list(committed.items())
    random.Random(4).shuffle(shuffled)

    figures = lag_figures(dict(shuffled), posted)

    assert figures.measured == 100
    assert figures.missing == 0
    assert figures.p50 == pytest.approx(0.050)
    assert figures.p99 == pytest.approx(0.099)
    assert figures.worst == pytest.approx(0.100)


def test_one_slow_payment_in_a_hundred_is_the_worst_but_not_the_p99() -> None:
    committed = {f"pay_{n}": at(0) for n in range(100)}
    posted = {payment: at(200) for payment in committed}
    posted["pay_42"] = at(3_000)

    figures = lag_figures(committed, posted)

    assert figures.p50 == pytest.approx(0.2)
    assert figures.p99 == pytest.approx(0.2)
    assert figures.worst == pytest.approx(3.0)


def test_two_slow_payments_in_a_hundred_are_the_p99() -> None:
    committed = {f"pay_{n}": at(0) for n in range(100)}
    posted = {payment: at(200) for payment in committed}
    posted["pay_1"] = posted["pay_2"] = at(1_500)

    assert lag_figures(committed, posted).p99 == pytest.approx(1.5)


def test_a_payment_never_posted_is_missing_not_a_lag_and_other_services_entries_are_ignored() -> None:
    committed = {"pay_a": at(0), "pay_b": at(10), "pay_c": at(20)}
    posted = {"pay_a": at(100), "pay_c": at(420), "pay_elsewhere": at(9_999)}

    figures = lag_figures(committed, posted)

    assert (figures.measured, figures.missing) == (2, 1)
    assert figures.p50 == pytest.approx(0.1)  # the lower of two: nearest rank
    assert figures.p99 == figures.worst == pytest.approx(0.4)


def test_nothing_posted_gives_no_figures() -> None:
    figures = lag_figures({"pay_a": at(0)}, {})

    assert (figures.measured, figures.missing) == (0, 1)
    assert math.isnan(figures.p99)


def test_nearest_rank_percentile_of_few_values() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 76) == 4.0
