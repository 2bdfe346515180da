"""The test instruments of the simulators that play the gateway (the M2T sandbox process and the
payments service's in-memory fake), read by both here so they cannot drift apart: the test cards
and the test wallet phones. Card numbers themselves are read by ``shared/cards.py``.

Test cards (any future expiry, any 3-digit CVC):

    card number        brand       country  behaviour
    4242424242424242   visa        US       approved
    5555555555554444   mastercard  FR       approved
    6500000000000002   cmi         MA       approved (Moroccan domestic card)
    4000000000009995   visa        US       declined, insufficient_funds
    4000000000009979   visa        US       declined, stolen_card
    4000000000003220   visa        US       three_ds_required, then the buyer's choice on the 3-D Secure page
    4000000000000119   visa        US       every authorisation answers 500 processing_error;
                                            nothing is recorded
    4000000000000127   visa        US       timeout: recorded as approved (captured, or authorised when
                                            capture is false), the answer comes too late
    4000000000000259   visa        US       approved; a dispute (fraudulent, full captured amount) opens
                                            by itself after the capture

Any other valid number is approved. Its brand follows the first digit (4 visa; 2 and 5 mastercard;
anything else cmi) and its country the brand (visa US, mastercard FR, cmi MA).

Test wallet phones (a wallet request waits for the buyer's answer in their wallet app):

    phone           behaviour
    +212600000001   the buyer approves: captured (authorised when capture is false)
    +212600000002   the buyer refuses: declined wallet_declined
    +212600000003   the buyer never answers: the request expires (decline_code expired)

Any other Moroccan mobile behaves like +212600000001.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Final


class CardBehaviour(enum.StrEnum):
    """What a test card makes the simulated gateway do."""

    APPROVED = "approved"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    STOLEN_CARD = "stolen_card"
    THREE_DS = "three_ds"
    PROCESSING_ERROR = "processing_error"
    TIMEOUT = "timeout"
    DISPUTE = "dispute"

    @property
    def decline_code(self) -> str | None:
        """The decline the behaviour ends in at once, or None when the card is authorised."""
        if self in (CardBehaviour.INSUFFICIENT_FUNDS, CardBehaviour.STOLEN_CARD):
            return self.value
        return None


COUNTRY_BY_BRAND: Final[Mapping[str, str]] = {"visa": "US", "mastercard": "FR", "cmi": "MA"}


def card_brand(digits: str) -> str:
    """The brand of a card number, from its first digit."""
    if digits.startswith("4"):
        return "visa"
    if digits[0] in "25":
        return "mastercard"
    return "cmi"


@dataclasses.dataclass(frozen=True)
class TestCard:
    __test__ = False  # a card, not a pytest test class

    number: str = dataclasses.field(repr=False)
    country: str
    behaviour: CardBehaviour

    @property
    def brand(self) -> str:
        return card_brand(self.number)


CMI_TEST_CARD: Final = "6500000000000002"  # Luhn-valid, prefix 6500: a Moroccan domestic (CMI) card

# The card table in the module docstring.
TEST_CARDS: Final[Mapping[str, TestCard]] = {
    card.number: card
    for card in (
        TestCard("4242424242424242", "US", CardBehaviour.APPROVED),
        TestCard("5555555555554444", "FR", CardBehaviour.APPROVED),
        TestCard(CMI_TEST_CARD, "MA", CardBehaviour.APPROVED),
        TestCard("4000000000009995", "US", CardBehaviour.INSUFFICIENT_FUNDS),
        TestCard("4000000000009979", "US", CardBehaviour.STOLEN_CARD),
        TestCard("4000000000003220", "US", CardBehaviour.THREE_DS),
        TestCard("4000000000000119", "US", CardBehaviour.PROCESSING_ERROR),
        TestCard("4000000000000127", "US", CardBehaviour.TIMEOUT),
        TestCard("4000000000000259", "US", CardBehaviour.DISPUTE),
    )
}


def card_for(digits: str) -> TestCard:
    """What a simulated gateway does with a card number: the table's entry, or for any other number
    an approved card of the number's brand, from the brand's country."""
    listed = TEST_CARDS.get(digits)
    if listed is not None:
        return listed
    return TestCard(digits, COUNTRY_BY_BRAND[card_brand(digits)], CardBehaviour.APPROVED)


class WalletBehaviour(enum.StrEnum):
    """What the buyer does with a wallet request sent to a test phone."""

    APPROVES = "approves"
    DECLINES = "declines"
    NEVER_ANSWERS = "never_answers"


# The phone table in the module docstring.
TEST_PHONES: Final[Mapping[str, WalletBehaviour]] = {
    "+212600000001": WalletBehaviour.APPROVES,
    "+212600000002": WalletBehaviour.DECLINES,
    "+212600000003": WalletBehaviour.NEVER_ANSWERS,
}


def wallet_behaviour(phone: str) -> WalletBehaviour:
    """What the buyer behind ``phone`` does: the table's entry, or for any other phone approves."""
    return TEST_PHONES.get(phone, WalletBehaviour.APPROVES)
