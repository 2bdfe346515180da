"""Test cards and tokenisation: ``POST /v1/tokens`` turns a card number into a ``tok_…`` token.

In production the buyer's browser gives the card to M2T's hosted fields and Hirfa only ever sees the
token; the sandbox offers the endpoint so tests and demos can make tokens. The card number is checked
(Luhn, 12 to 19 digits), the expiry must not be past (a card is valid to the end of its expiry month,
UTC) and the CVC must be 3 or 4 digits. The number itself is then dropped: the token keeps only the
brand, the last four digits, the issuing country and the test behaviour the number selects. It is
never stored, echoed or logged.

The test cards, and what any other number does, are the table in ``shared/test_instruments.py``,
which the payments service's in-memory fake gateway reads too. Here the timeout card's answer comes
``slow_response_seconds`` late, and the dispute card's dispute opens ``callback_delay_seconds`` after
the capture.

Tokens can be used for any number of transactions and never expire (sandbox only).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time

from shared.cards import card_digits
from shared.test_instruments import CardBehaviour, card_for

__all__ = [
    "TOKEN_PREFIX",
    "CardRefused",
    "CardToken",
    "check_cvc",
    "check_expiry",
    "normalise_number",
    "tokenise",
]

TOKEN_PREFIX = "tok_"

_CVC = re.compile(r"[0-9]{3,4}")


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
    digits = card_digits(raw)
    if digits is None:
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
    card = card_for(digits)
    return CardToken(
        token=TOKEN_PREFIX + secrets.token_hex(12),
        brand=card.brand,
        last4=digits[-4:],
        exp_month=month,
        exp_year=year,
        country=card.country,
        behaviour=card.behaviour,
    )
