"""Card numbers: the Luhn check, and reading a number as people type it. Hirfa never holds a card
number: this serves the log masking (to recognise one that slipped into a message) and the
simulators that play the gateway (their test cards are in ``shared/test_instruments.py``).
"""

from __future__ import annotations

import re

# Spaces and hyphens are how people group the digits; they are not part of the number.
_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"[0-9]{12,19}")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check every card number carries."""
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_digits(raw: object) -> str | None:
    """The digits of a card number as people type it (grouped by spaces or hyphens), or None when
    it is not one: 12 to 19 digits passing the Luhn check."""
    digits = _SEPARATORS.sub("", raw) if isinstance(raw, str) else ""
    if not _DIGITS.fullmatch(digits) or not luhn_valid(digits):
        return None
    return digits
