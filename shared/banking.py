"""Moroccan bank account identifiers: the 24-digit RIB and the 28-character MA IBAN, checked exactly.

Shared: onboarding checks artisans' RIBs with it, accounts marketplaces' payout RIBs, and the bank
sandbox the RIBs of the transfers it is asked for. One rule, so all three accept the same numbers.

A RIB is bank code (3) + city/branch code (3) + account number (16) + RIB key (2). The key makes
the whole 24-digit number divisible by 97, so it catches every single-digit typo and every swap
of two adjacent different digits. The IBAN wraps the RIB: ``MA`` + ISO 13616 check digits + RIB.

Only ASCII digits are accepted: ``str.isdigit`` and ``\\d`` also match Arabic-Indic digits, which
would pass a naive check and then break at the bank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COUNTRY = "MA"
RIB_LENGTH = 24
IBAN_LENGTH = 4 + RIB_LENGTH

_DIGITS = "0123456789"
# Digit groups separated by spaces or dashes, as RIBs are printed on statements and cheques.
_GROUPED_DIGITS = re.compile(r"[0-9]+(?:[\s-]+[0-9]+)*")
_MOROCCAN_IBAN = re.compile(r"MA[0-9]{2}[0-9]{24}")
_ALPHANUMERIC = re.compile(r"[0-9A-Z]+")


@dataclass(frozen=True)
class Bank:
    code: str
    name: str
    slug: str


_BANQUE_POPULAIRE = "Banque Populaire"

# Reference data: keep in step with Bank Al-Maghrib's published list of bank codes. Only codes we
# are sure of are listed; a valid RIB from a bank missing here is refused as ``unknown_bank``, so
# add the bank (with its code from BAM's list) rather than loosening the check.
# The Banque Populaire group issues RIBs under several codes, one per regional bank; more of them
# exist than are listed here.
KNOWN_BANKS: dict[str, Bank] = {
    bank.code: bank
    for bank in (
        Bank("001", "Bank Al-Maghrib", "bank_al_maghrib"),
        Bank("007", "Attijariwafa bank", "attijariwafa_bank"),
        Bank("011", "Bank of Africa (BMCE)", "bank_of_africa"),
        Bank("013", "BMCI", "bmci"),
        Bank("021", "Crédit du Maroc", "credit_du_maroc"),
        Bank("022", "Société Générale Maroc", "societe_generale_maroc"),
        Bank("145", _BANQUE_POPULAIRE, "banque_populaire"),
        Bank("157", _BANQUE_POPULAIRE, "banque_populaire"),
        Bank("181", _BANQUE_POPULAIRE, "banque_populaire"),
        Bank("190", _BANQUE_POPULAIRE, "banque_populaire"),
        Bank("225", "Crédit Agricole du Maroc", "credit_agricole_du_maroc"),
        Bank("230", "CIH Bank", "cih_bank"),
        Bank("310", "Trésorerie Générale du Royaume", "tresorerie_generale_du_royaume"),
        Bank("350", "Al Barid Bank", "al_barid_bank"),
    )
}

# The bank code each partner bank issues new RIBs under (the sandbox issues RIBs the same way).
PARTNER_BANK_CODES: dict[str, str] = {
    "banque_populaire": "145",
    "al_barid_bank": "350",
    "cih_bank": "230",
}


class BankIdentifierError(ValueError):
    """A RIB or IBAN was refused. ``code`` is the stable rule name, ``param`` the field at fault.

    Messages never repeat the number itself: they end up in API responses and logs.
    """

    CODES = frozenset({"invalid_rib", "invalid_iban", "unknown_bank"})

    def __init__(self, code: str, param: str, message: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"unknown bank identifier error code: {code!r}")
        super().__init__(message)
        self.code = code
        self.param = param


@dataclass(frozen=True)
class BankAccountNumber:
    """A checked Moroccan account number. Build it with ``parse_rib`` or ``parse_iban``."""

    rib: str
    iban: str
    bank: Bank

    @property
    def bank_code(self) -> str:
        return self.rib[0:3]

    @property
    def city_code(self) -> str:
        return self.rib[3:6]

    @property
    def account_number(self) -> str:
        return self.rib[6:22]

    @property
    def key(self) -> str:
        return self.rib[22:24]

    @property
    def formatted_iban(self) -> str:
        return " ".join(self.iban[start : start + 4] for start in range(0, len(self.iban), 4))

    @property
    def masked_rib(self) -> str:
        return f"{self.rib[:3]}…{self.rib[-4:]}"

    def __repr__(self) -> str:
        # The full number must not leak through a stray repr in a log line or a traceback.
        return f"BankAccountNumber(rib={self.masked_rib!r}, bank={self.bank.slug!r})"


def _is_ascii_digits(text: str, length: int) -> bool:
    return len(text) == length and all(char in _DIGITS for char in text)


def rib_key(first_22_digits: str) -> str:
    """The 2-digit RIB key for bank code + city code + account number (22 digits)."""
    if not _is_ascii_digits(first_22_digits, RIB_LENGTH - 2):
        raise ValueError("a RIB key is computed from exactly 22 digits")
    return f"{97 - (int(first_22_digits) * 100) % 97:02d}"


def _iban_number(rearranged: str) -> int:
    # A=10 … Z=35: int(char, 36) is exactly the ISO 13616 letter conversion.
    return int("".join(str(int(char, 36)) for char in rearranged))


def iban_check_digits(bban: str, country: str = COUNTRY) -> str:
    """ISO 13616 check digits for ``bban`` in ``country``: 98 − (BBAN + country + "00" mod 97)."""
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ValueError("country must be two upper-case letters")
    if not _ALPHANUMERIC.fullmatch(bban):
        raise ValueError("a BBAN is made of digits and upper-case letters")
    return f"{98 - _iban_number(bban + country + '00') % 97:02d}"


def make_rib(bank_code: str, city_code: str, account_number: str) -> str:
    """Assemble a RIB and compute its key (how the sandbox issues RIBs that real checks accept)."""
    parts = (("bank_code", bank_code, 3), ("city_code", city_code, 3), ("account_number", account_number, 16))
    for name, value, length in parts:
        if not _is_ascii_digits(value, length):
            raise ValueError(f"{name} must be exactly {length} digits")
    first_22 = bank_code + city_code + account_number
    return first_22 + rib_key(first_22)


def _rib_key_is_right(rib: str) -> bool:
    # Comparing with the computed key, rather than only testing divisibility by 97, also refuses
    # key "00": it divides when the first 22 digits do, but the formula never issues it (it gives 97).
    return rib[22:] == rib_key(rib[:22])


def _known_bank(rib: str, param: str) -> Bank:
    bank = KNOWN_BANKS.get(rib[:3])
    if bank is None:
        raise BankIdentifierError(
            "unknown_bank", param, f"Bank code {rib[:3]} is not a bank we know; check the first digits."
        )
    return bank


def _account(rib: str, bank: Bank) -> BankAccountNumber:
    return BankAccountNumber(rib=rib, iban=COUNTRY + iban_check_digits(rib) + rib, bank=bank)


def parse_rib(raw: str) -> BankAccountNumber:
    """Check a 24-digit RIB (spaces or dashes between digit groups allowed) and return the account."""
    if not isinstance(raw, str) or not _GROUPED_DIGITS.fullmatch(raw.strip()):
        raise BankIdentifierError(
            "invalid_rib", "rib", "A RIB is made of digits only (spaces and dashes allowed)."
        )
    rib = re.sub(r"[\s-]", "", raw)
    if len(rib) != RIB_LENGTH:
        raise BankIdentifierError("invalid_rib", "rib", f"A RIB has {RIB_LENGTH} digits, not {len(rib)}.")
    if not _rib_key_is_right(rib):
        raise BankIdentifierError(
            "invalid_rib", "rib", "The RIB key (last two digits) does not match; a digit is likely mistyped."
        )
    return _account(rib, _known_bank(rib, "rib"))


def parse_iban(raw: str) -> BankAccountNumber:
    """Check a Moroccan IBAN (spaces and lower case allowed), then the RIB inside it."""
    if not isinstance(raw, str):
        raise BankIdentifierError("invalid_iban", "iban", "An IBAN is a string.")
    iban = re.sub(r"\s", "", raw).upper()
    if not _MOROCCAN_IBAN.fullmatch(iban):
        raise BankIdentifierError(
            "invalid_iban",
            "iban",
            f"A Moroccan IBAN is {COUNTRY}, 2 check digits and 24 digits ({IBAN_LENGTH} characters).",
        )
    if _iban_number(iban[4:] + iban[:4]) % 97 != 1:
        raise BankIdentifierError(
            "invalid_iban", "iban", "The IBAN check digits do not match; a character is probably mistyped."
        )
    rib = iban[4:]
    # The IBAN check digits can be computed over a wrong RIB; the bank would still reject it.
    if not _rib_key_is_right(rib):
        raise BankIdentifierError("invalid_iban", "iban", "The RIB key inside the IBAN is wrong.")
    return _account(rib, _known_bank(rib, "iban"))
