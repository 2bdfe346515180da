"""Artisan identity rules: who may be registered and how their details are normalised."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from shared.phones import MobileProblem, NotAMoroccanMobile, parse_moroccan_mobile

CRAFTS = (
    "pottery_ceramics",
    "carpets",
    "zellige",
    "leather",
    "wood",
    "textiles",
    "metal",
    "jewellery",
    "basketry",
    "embroidery",
    "other",
)

LANGUAGES = ("fr", "ar", "en")


class IdentityRuleError(ValueError):
    """A registration detail breaks a rule; ``param`` names the field, ``code`` the rule."""

    def __init__(self, param: str, code: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


# What a registering marketplace is told, per reason a phone is refused.
_PHONE_MESSAGES = {
    MobileProblem.NOT_A_NUMBER: "Not a phone number.",
    MobileProblem.NOT_MOROCCAN: "Not a valid Moroccan phone number.",
    MobileProblem.NOT_MOBILE: "Must be a mobile number (06/07).",
}


def normalise_moroccan_mobile(raw: str) -> str:
    """Return the E.164 form of a Moroccan mobile number, or raise ``IdentityRuleError``."""
    try:
        return parse_moroccan_mobile(raw)
    except NotAMoroccanMobile as exc:
        raise IdentityRuleError("phone", "invalid_phone", _PHONE_MESSAGES[exc.problem]) from None


def normalise_cin(raw: str, pattern: str) -> str:
    cin = re.sub(r"\s+", "", raw).upper()
    if not re.fullmatch(pattern, cin):
        raise IdentityRuleError("cin", "invalid_cin", "Not a valid CIN number.")
    return cin


def check_adult(date_of_birth: dt.date, today: dt.date, minimum_age: int) -> None:
    if date_of_birth > today:
        raise IdentityRuleError("date_of_birth", "invalid_date_of_birth", "Date of birth is in the future.")
    had_birthday = (today.month, today.day) >= (date_of_birth.month, date_of_birth.day)
    age = today.year - date_of_birth.year - (0 if had_birthday else 1)
    if age < minimum_age:
        raise IdentityRuleError(
            "date_of_birth", "underage", f"Artisans must be at least {minimum_age} years old."
        )


_NAME_PUNCTUATION = set(" -'’.")


def normalise_full_name(raw: str) -> str:
    """Collapse whitespace and check the name is written in Latin and/or Arabic script.

    Letters must be Latin (accents included) or Arabic; Arabic vowel marks, spaces, hyphens,
    apostrophes and dots are allowed. Digits, symbols and other scripts are refused.
    """
    name = unicodedata.normalize("NFC", " ".join(raw.split()))
    letters = 0
    for char in name:
        category = unicodedata.category(char)
        if char in _NAME_PUNCTUATION or char == "\u0640":  # tatweel, the Arabic elongation mark
            continue
        if category.startswith("M"):
            continue  # combining marks: accents, harakat
        if category.startswith("L") and unicodedata.name(char, "").startswith(("LATIN", "ARABIC")):
            letters += 1
            continue
        raise IdentityRuleError(
            "full_name", "invalid_full_name", "A name is written in Latin or Arabic letters only."
        )
    if letters < 2:
        raise IdentityRuleError("full_name", "invalid_full_name", "A name needs at least two letters.")
    return name
