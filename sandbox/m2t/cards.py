"""Test cards and tokenisation: ``POST /v1/tokens`` turns a card number into a ``tok_…`` token.

In production the buyer's browser gives the card to M2T's hosted fields and Hirfa only ever sees the
token; the sandbox offers the endpoint so tests and demos can make tokens. The card number is checked
(Luhn, 12 to 19 digits), the expiry must not be past (a card is valid to the end of its expiry month,
UTC) and the CVC must be 3 or 4 digits. The number itself is then dropped: the token keeps only the
brand, the last four digits, the issuing country and the test behaviour the number selects. It is
never stored, echoed or logged.

Test cards (any future expiry, any 3-digit CVC):

    card number        brand       country  behaviour
    4242424242424242   visa        US       approved
    5555555555554444   mastercard  FR       approved
    6500000000000002   cmi         MA       approved (Moroccan domestic card)
    4000000000009995   visa        US       declined, insufficient_funds
    4000000000009979   visa        US       declined, stolen_card
    4000000000003220   visa        US       three_ds_required, then the buyer's choice on the 3-D Secure page
    4000000000000119   visa        US       every POST /v1/transactions answers 500 processing_error;
                                            nothing is recorded
    4000000000000127   visa        US       timeout: recorded as approved (captured, or authorised when
                                            capture is false), the answer comes slow_response_seconds later
    4000000000000259   visa        US       approved; a dispute (fraudulent, full captured amount) opens
                                            by itself callback_delay_seconds after the capture

Any other valid number is approved. Its brand follows the first digit (4 visa; 2 and 5 mastercard;
anything else cmi) and its country the brand (visa US, mastercard FR, cmi MA).

Tokens can be used for any number of transactions and never expire (sandbox only).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import secrets
import time

from shared.cards import luhn_valid

TOKEN_PREFIX = "tok_"

_DIGITS = re.compile(r"[0-9]{12,19}")
_CVC = re.compile(r"[0-9]{3,4}")
# Spaces and hyphens are how people group the digits; they are not part of the number.
_SEPARATORS = re.compile(r"[ -]")


class CardBehaviour(enum.StrEnum):
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


@dataclasses.dataclass(frozen=True)
class TestCard:
    number: str
    country: str
    behaviour: CardBehaviour


# The table in the module docstring.
TEST_CARDS: dict[str, TestCard] = {
    card.number: card
    for card in (
        TestCard("4242424242424242", "US", CardBehaviour.APPROVED),
        TestCard("5555555555554444", "FR", CardBehaviour.APPROVED),
        TestCard("6500000000000002", "MA", CardBehaviour.APPROVED),
        TestCard("4000000000009995", "US", CardBehaviour.INSUFFICIENT_FUNDS),
        TestCard("4000000000009979", "US", CardBehaviour.STOLEN_CARD),
        TestCard("4000000000003220", "US", CardBehaviour.THREE_DS),
        TestCard("4000000000000119", "US", CardBehaviour.PROCESSING_ERROR),
        TestCard("4000000000000127", "US", CardBehaviour.TIMEOUT),
        TestCard("4000000000000259", "US", CardBehaviour.DISPUTE),
    )
}

_COUNTRY_BY_BRAND = {"visa": "US", "mastercard": "FR", "cmi": "MA"}


def card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[0] in "25":
        return "mastercard"
    return "cmi"


@dataclasses.dataclass(frozen=True)
class CardToken:
    """What M2T keeps of a card: never the number."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    country: str
    behaviour: CardBehaviour

    def to_json(self) -> dict[str, object]:
        return {
            "token": self.token,
            "brand": self.brand,
            "last4": self.last4,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "country": self.country,
        }

    def details(self) -> dict[str, str]:
        """The ``card`` of a transaction."""
        return {"brand": self.brand, "last4": self.last4, "country": self.country}


class CardRefused(ValueError):
    """The card details are not acceptable; ``code`` and ``param`` go into the 422."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def normalise_number(raw: object) -> str:
    """The digits of a card number, or ``CardRefused`` (``invalid_card_number``)."""
    digits = _SEPARATORS.sub("", raw) if isinstance(raw, str) else ""
    if not _DIGITS.fullmatch(digits) or not luhn_valid(digits):
        raise CardRefused("invalid_card_number", "card_number is not a valid card number.", "card_number")
    return digits


def _small_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        return int(raw.strip())
    return None


def check_expiry(raw_month: object, raw_year: object, now: float | None = None) -> tuple[int, int]:
    """``(exp_month, exp_year)`` with a four-digit year; ``CardRefused`` when invalid or in the past."""
    month = _small_int(raw_month)
    if month is None or not 1 <= month <= 12:
        raise CardRefused("invalid_expiry_month", "exp_month must be a month number, 1 to 12.", "exp_month")
    year = _small_int(raw_year)
    if year is not None and year < 100:
        year += 2000
    if year is None or not 2000 <= year <= 2099:
        raise CardRefused("invalid_expiry_year", "exp_year must be a year, like 2030.", "exp_year")
    today = time.gmtime(time.time() if now is None else now)
    if (year, month) < (today.tm_year, today.tm_mon):
        raise CardRefused("expired_card", "The card has expired.", "exp_year")
    return month, year


def check_cvc(raw: object) -> None:
    if not isinstance(raw, str) or not _CVC.fullmatch(raw.strip()):
        raise CardRefused("invalid_cvc", "cvc must be the 3 or 4 digits on the card.", "cvc")


def tokenise(card_number: object, exp_month: object, exp_year: object, cvc: object) -> CardToken:
    """Check a card and make its token; raise ``CardRefused`` on the first fault."""
    digits = normalise_number(card_number)
    month, year = check_expiry(exp_month, exp_year)
    check_cvc(cvc)
    test_card = TEST_CARDS.get(digits)
    brand = card_brand(digits)
    return CardToken(
        token=TOKEN_PREFIX + secrets.token_hex(12),
        brand=brand,
        last4=digits[-4:],
        exp_month=month,
        exp_year=year,
        country=test_card.country if test_card else _COUNTRY_BY_BRAND[brand],
        behaviour=test_card.behaviour if test_card else CardBehaviour.APPROVED,
    )
