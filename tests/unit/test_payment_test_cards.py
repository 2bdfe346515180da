"""The test-card table both gateway simulators read (shared/cards.py): what each card does, and what
any other number does. The contract suite checks that the M2T sandbox and the fake act on it alike."""

from __future__ import annotations

import pytest

from shared.cards import CMI_TEST_CARD, TEST_CARDS, CardBehaviour, card_digits, card_for, luhn_valid


@pytest.mark.parametrize(
    ("number", "brand", "country", "behaviour"),
    [
        ("4242424242424242", "visa", "US", CardBehaviour.APPROVED),
        ("5555555555554444", "mastercard", "FR", CardBehaviour.APPROVED),
        (CMI_TEST_CARD, "cmi", "MA", CardBehaviour.APPROVED),
        ("4000000000009995", "visa", "US", CardBehaviour.INSUFFICIENT_FUNDS),
        ("4000000000009979", "visa", "US", CardBehaviour.STOLEN_CARD),
        ("4000000000003220", "visa", "US", CardBehaviour.THREE_DS),
        ("4000000000000119", "visa", "US", CardBehaviour.PROCESSING_ERROR),
        ("4000000000000127", "visa", "US", CardBehaviour.TIMEOUT),
        ("4000000000000259", "visa", "US", CardBehaviour.DISPUTE),
    ],
)
def test_each_test_card_does_what_the_table_says(number, brand, country, behaviour):
    card = card_for(number)
    assert (card.brand, card.country, card.behaviour) == (brand, country, behaviour)
    assert luhn_valid(number) and number in TEST_CARDS


def test_every_behaviour_has_a_card_and_only_declines_carry_a_decline_code():
    assert {card.behaviour for card in TEST_CARDS.values()} == set(CardBehaviour)
    declining = {behaviour for behaviour in CardBehaviour if behaviour.decline_code is not None}
    assert declining == {CardBehaviour.INSUFFICIENT_FUNDS, CardBehaviour.STOLEN_CARD}


@pytest.mark.parametrize(
    ("number", "brand", "country"),
    [
        ("4111111111111111", "visa", "US"),
        ("2223003122003222", "mastercard", "FR"),
        ("6011111111111117", "cmi", "MA"),
    ],
)
def test_any_other_valid_number_is_approved_with_its_brand_and_the_brands_country(number, brand, country):
    card = card_for(number)
    assert (card.brand, card.country, card.behaviour) == (brand, country, CardBehaviour.APPROVED)


def test_a_card_number_is_read_as_people_type_it_and_never_shown():
    assert card_digits("4242 4242-4242 4242") == "4242424242424242"
    for not_a_card in ("4242424242424241", "42424242", "4242x42424242424", None, 4242424242424242):
        assert card_digits(not_a_card) is None
    assert "4242424242424242" not in repr(card_for("4242424242424242"))
