"""Moroccan mobile numbers, read one way by every service (``shared.phones``)."""

from __future__ import annotations

import pytest

from services.onboarding.domain.artisans import IdentityRuleError, normalise_moroccan_mobile
from shared.phones import MobileProblem, NotAMoroccanMobile, parse_moroccan_mobile


@pytest.mark.parametrize(
    "typed",
    ["06 12 34 56 78", "0612345678", "+212612345678", "00212612345678", "+212 6-12-34-56-78"],
)
def test_the_ways_people_type_a_mobile_number_give_one_e164_form(typed):
    assert parse_moroccan_mobile(typed) == "+212612345678"


def test_07_numbers_are_mobiles_too():
    assert parse_moroccan_mobile("0712345678") == "+212712345678"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("abc", MobileProblem.NOT_A_NUMBER),
        ("", MobileProblem.NOT_A_NUMBER),
        ("+33612345678", MobileProblem.NOT_MOROCCAN),  # a French mobile
        ("0612", MobileProblem.NOT_MOROCCAN),  # too short to be any Moroccan number
        ("0522123456", MobileProblem.NOT_MOBILE),  # a Casablanca landline
    ],
)
def test_a_refusal_says_why(typed, problem):
    with pytest.raises(NotAMoroccanMobile) as refused:
        parse_moroccan_mobile(typed)
    assert refused.value.problem is problem
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("abc", "Not a phone number."),
        ("+33612345678", "Not a valid Moroccan phone number."),
        ("0522123456", "Must be a mobile number (06/07)."),
    ],
)
def test_onboarding_words_each_refusal_for_the_registering_marketplace(typed, message):
    with pytest.raises(IdentityRuleError) as refused:
        normalise_moroccan_mobile(typed)
    assert (refused.value.param, refused.value.code, str(refused.value)) == (
        "phone",
        "invalid_phone",
        message,
    )


def test_onboarding_stores_the_shared_e164_form():
    assert normalise_moroccan_mobile("06 12 34 56 78") == parse_moroccan_mobile("06 12 34 56 78")
