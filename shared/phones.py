"""Moroccan mobile numbers, read one way by every service.

Artisans register with one (onboarding) and buyers pay from one (payments' mobile wallets). Both
accept what people type (``06 12 34 56 78``, ``+212612345678``, ``00212…``) and store E.164.
"""

from __future__ import annotations

import enum

import phonenumbers

MOROCCO_REGION = "MA"
MOROCCO_COUNTRY_CODE = 212


class MobileProblem(enum.StrEnum):
    """Why a text is not a Moroccan mobile number; each caller words it for its own readers."""

    NOT_A_NUMBER = "not_a_number"
    NOT_MOROCCAN = "not_moroccan"
    NOT_MOBILE = "not_mobile"


class NotAMoroccanMobile(ValueError):
    def __init__(self, problem: MobileProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def parse_moroccan_mobile(raw: str) -> str:
    """The E.164 form of a Moroccan mobile number, or ``NotAMoroccanMobile`` saying why not."""
    try:
        number = phonenumbers.parse(raw, MOROCCO_REGION)
    except phonenumbers.NumberParseException:
        raise NotAMoroccanMobile(MobileProblem.NOT_A_NUMBER) from None
    if not phonenumbers.is_valid_number(number) or number.country_code != MOROCCO_COUNTRY_CODE:
        raise NotAMoroccanMobile(MobileProblem.NOT_MOROCCAN)
    if phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE:
        raise NotAMoroccanMobile(MobileProblem.NOT_MOBILE)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
