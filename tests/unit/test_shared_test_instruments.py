"""The test instruments both gateway simulators read (shared/test_instruments.py): what each test
card and each test wallet phone does, and what any other number or phone does. The contract suite
checks that the M2T sandbox and the fake act on them alike."""

from __future__ import annotations

import pytest

from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.domain.gateway import RequestToPay, TransactionStatus
from shared.cards import card_digits, luhn_valid
from shared.test_instruments import (
    CMI_TEST_CARD,
    TEST_CARDS,
    TEST_PHONES,
    CardBehaviour,
    WalletBehaviour,
    card_for,
    wallet_behaviour,
)


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


@pytest.mark.parametrize(
    ("phone", "behaviour"),
    [
        ("+212600000001", WalletBehaviour.APPROVES),
        ("+212600000002", WalletBehaviour.DECLINES),
        ("+212600000003", WalletBehaviour.NEVER_ANSWERS),
    ],
)
def test_each_test_phone_does_what_the_table_says(phone, behaviour):
    assert wallet_behaviour(phone) is behaviour
    assert phone in TEST_PHONES


def test_every_wallet_behaviour_has_a_phone():
    assert set(TEST_PHONES.values()) == set(WalletBehaviour)


@pytest.mark.parametrize("phone", ["+212612345678", "+212700000001", "+212600000004"])
def test_any_other_phone_approves(phone):
    assert wallet_behaviour(phone) is WalletBehaviour.APPROVES


@pytest.mark.parametrize(
    ("phone", "answered"),
    [
        ("+212600000001", TransactionStatus.CAPTURED),
        ("+212600000002", TransactionStatus.DECLINED),
        ("+212600000003", TransactionStatus.ACTION_REQUIRED),
        ("+212612345678", TransactionStatus.CAPTURED),
    ],
)
def test_the_fake_gateway_answers_a_wallet_request_as_the_phone_table_says(phone, answered):
    fake = FakeGateway(callback_secret="fake-secret")
    request = RequestToPay(
        reference="pay_w",
        amount=500,
        currency="MAD",
        phone=phone,
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="w",
    )
    transaction = fake.request_to_pay(request)
    assert transaction.status is TransactionStatus.ACTION_REQUIRED
    assert fake.answer_wallet(transaction.gateway_reference).status is answered
