"""Card-number arithmetic. Hirfa never holds a card number: this serves the log masking (to
recognise one that slipped into a message) and the simulators that play the gateway."""

from __future__ import annotations


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
