"""How long an erased-on-request artisan's data is kept, and what their identity becomes."""

from __future__ import annotations

import datetime as dt

import pytest

from services.onboarding.domain.personal_data import pseudonym, retention_ends, retention_over
from shared.ids import new_id


def test_the_duty_ends_the_same_day_years_later_and_a_29_february_on_the_1_march():
    ended = dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC)
    assert retention_ends(ended, 10) == dt.datetime(2036, 12, 6, 14, 30, tzinfo=dt.UTC)
    assert retention_ends(dt.datetime(2028, 2, 29, tzinfo=dt.UTC), 10) == dt.datetime(
        2038, 3, 1, tzinfo=dt.UTC
    )
    assert retention_ends(dt.datetime(2028, 2, 29, tzinfo=dt.UTC), 4) == dt.datetime(
        2032, 2, 29, tzinfo=dt.UTC
    )
    assert retention_ends(ended, 0) == ended
    with pytest.raises(ValueError):
        retention_ends(ended, -1)


def test_data_is_erased_from_the_end_of_the_duty_on_never_before():
    end = dt.datetime(2036, 12, 6, tzinfo=dt.UTC)
    assert not retention_over(end, end - dt.timedelta(microseconds=1))
    assert retention_over(end, end) and retention_over(end, end + dt.timedelta(days=1))


def test_an_erased_identity_is_unique_per_artisan_and_fits_the_cin_and_phone_columns():
    ids = [new_id("art") for _ in range(1000)]
    aliases = {pseudonym(artisan_id) for artisan_id in ids}
    assert len(aliases) == len(ids)
    assert all(len(alias) <= 20 and alias.startswith("ERASED") for alias in aliases)
