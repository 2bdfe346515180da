"""Moroccan RIB and IBAN checks, exact to the digit."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.banking import (
    KNOWN_BANKS,
    PARTNER_BANK_CODES,
    BankIdentifierError,
    iban_check_digits,
    make_rib,
    parse_iban,
    parse_rib,
    rib_key,
)

KNOWN_RIB = "001810007800020110620318"
KNOWN_IBAN = "MA64 0018 1000 7800 0201 1062 0318"


def error_of(parse, raw) -> BankIdentifierError:
    with pytest.raises(BankIdentifierError) as error:
        parse(raw)
    return error.value


def with_digit(number: str, position: int, digit: str) -> str:
    return number[:position] + digit + number[position + 1 :]


class TestKnownCase:
    def test_rib_is_valid_and_split_into_its_parts(self):
        account = parse_rib(KNOWN_RIB)
        assert (account.bank_code, account.city_code) == ("001", "810")
        assert account.account_number == "0078000201106203"
        assert account.key == "18"
        assert account.bank.name == "Bank Al-Maghrib"

    def test_rib_gives_the_known_iban(self):
        account = parse_rib(KNOWN_RIB)
        assert account.iban == KNOWN_IBAN.replace(" ", "")
        assert account.formatted_iban == KNOWN_IBAN

    def test_iban_is_valid_and_gives_back_the_rib(self):
        assert parse_iban(KNOWN_IBAN) == parse_rib(KNOWN_RIB)

    def test_key_and_check_digits_are_computed(self):
        assert rib_key(KNOWN_RIB[:22]) == "18"
        assert iban_check_digits(KNOWN_RIB) == "64"
        assert int(KNOWN_RIB) % 97 == 0

    def test_last_digit_of_rib_changed_to_7_fails(self):
        assert error_of(parse_rib, KNOWN_RIB[:-1] + "7").code == "invalid_rib"

    def test_last_digit_of_iban_changed_to_7_fails(self):
        assert error_of(parse_iban, KNOWN_IBAN[:-1] + "7").code == "invalid_iban"

    def test_masked_rib_and_repr_hide_the_number(self):
        account = parse_rib(KNOWN_RIB)
        assert account.masked_rib == "001…0318"
        assert KNOWN_RIB not in repr(account)
        assert account.iban not in repr(account)


class TestRibInput:
    @pytest.mark.parametrize(
        "raw",
        [
            "001 810 0078000201106203 18",
            "001-810-0078000201106203-18",
            "  0018 1000 7800 0201 1062 0318  ",
            "001 - 810 - 0078000201106203 - 18",
        ],
    )
    def test_spaces_and_dashes_between_groups_are_accepted(self, raw):
        assert parse_rib(raw).rib == KNOWN_RIB

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "   ",
            "00181000780002011062031",  # 23 digits
            "0018100078000201106203180",  # 25 digits
            "001.810.0078000201106203.18",
            "-001810007800020110620318",
            "001810007800020110620318-",
            "00181000780002011062031O",  # letter O, not zero
            "٠٠١810007800020110620318",  # Arabic-Indic digits look like digits to str.isdigit
            "MA64001810007800020110620318",  # an IBAN in the RIB field
        ],
    )
    def test_malformed_rib_is_invalid_rib(self, raw):
        error = error_of(parse_rib, raw)
        assert (error.code, error.param) == ("invalid_rib", "rib")

    @pytest.mark.parametrize("raw", [None, 1810007800020110620318])
    def test_non_string_is_invalid_rib(self, raw):
        assert error_of(parse_rib, raw).code == "invalid_rib"

    def test_wrong_key_is_invalid_rib_without_echoing_the_number(self):
        error = error_of(parse_rib, KNOWN_RIB[:-2] + "19")
        assert (error.code, error.param) == ("invalid_rib", "rib")
        assert KNOWN_RIB[:-2] not in str(error)

    def test_key_00_is_refused_even_though_it_divides_by_97(self):
        first_22 = f"{97 * 10**19:022d}"  # divisible by 97, so key 00 would also make 24 digits divide
        assert int(first_22 + "00") % 97 == 0 and rib_key(first_22) == "97"
        assert error_of(parse_rib, first_22 + "00").code == "invalid_rib"

    def test_valid_rib_of_an_unknown_bank_is_unknown_bank(self):
        rib = make_rib("999", "780", "0000000000000001")
        error = error_of(parse_rib, rib)
        assert (error.code, error.param) == ("unknown_bank", "rib")


class TestIbanInput:
    def test_lower_case_and_spaces_are_accepted(self):
        assert parse_iban(KNOWN_IBAN.lower()).rib == KNOWN_RIB
        assert parse_iban(KNOWN_IBAN.replace(" ", "")).rib == KNOWN_RIB

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "MA64001810007800020110620318 0",  # 29 characters
            "MA6400181000780002011062031",  # 27 characters
            "FR7630006000011234567890189",  # not Moroccan
            "MA6A001810007800020110620318",
            "MA64-0018-1000-7800-0201-1062-0318",
            "MA64A01810007800020110620318",  # letters are valid in some BBANs, never in a Moroccan one
            None,
        ],
    )
    def test_malformed_iban_is_invalid_iban(self, raw):
        error = error_of(parse_iban, raw)
        assert (error.code, error.param) == ("invalid_iban", "iban")

    @pytest.mark.parametrize("check_digits", ["00", "01", "63", "65", "99"])
    def test_wrong_check_digits_are_invalid_iban(self, check_digits):
        error = error_of(parse_iban, "MA" + check_digits + KNOWN_RIB)
        assert (error.code, error.param) == ("invalid_iban", "iban")
        assert "check digits" in str(error)

    def test_right_check_digits_over_a_wrong_rib_key_is_invalid_iban(self):
        bad_rib = KNOWN_RIB[:-2] + "19"
        iban = "MA" + iban_check_digits(bad_rib) + bad_rib  # a consistent IBAN around a broken RIB
        error = error_of(parse_iban, iban)
        assert (error.code, error.param) == ("invalid_iban", "iban")
        assert "RIB key" in str(error)

    def test_unknown_bank_names_the_iban_param(self):
        rib = make_rib("999", "780", "0000000000000001")
        error = error_of(parse_iban, "MA" + iban_check_digits(rib) + rib)
        assert (error.code, error.param) == ("unknown_bank", "iban")

    def test_the_swift_registry_example_is_valid(self):
        # The IBAN registry's Moroccan example, a Bank of Africa account.
        account = parse_iban("MA64 0115 1900 0001 2050 0053 4921")
        assert account.bank.slug == "bank_of_africa"


class TestReferenceData:
    def test_banks_are_keyed_by_their_own_three_digit_code(self):
        for code, bank in KNOWN_BANKS.items():
            assert code == bank.code and len(code) == 3 and code.isascii() and code.isdigit()

    def test_partner_banks_issue_under_a_known_code_of_the_same_bank(self):
        for slug, code in PARTNER_BANK_CODES.items():
            assert KNOWN_BANKS[code].slug == slug

    def test_banque_populaire_regional_codes(self):
        for code in ("145", "157", "181", "190"):
            assert KNOWN_BANKS[code].slug == "banque_populaire"

    @pytest.mark.parametrize("raw", ["1" * 21, "1" * 23, "٠" * 22, "001810007800020110620A"])
    def test_rib_key_needs_22_ascii_digits(self, raw):
        with pytest.raises(ValueError):
            rib_key(raw)

    @pytest.mark.parametrize(
        ("bank_code", "city_code", "account_number"),
        [
            ("07", "780", "0" * 16),
            ("007", "7800", "0" * 16),
            ("007", "780", "0" * 15),
            ("007", "78a", "0" * 16),
        ],
    )
    def test_make_rib_refuses_wrong_part_lengths(self, bank_code, city_code, account_number):
        with pytest.raises(ValueError):
            make_rib(bank_code, city_code, account_number)


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
known_bank_codes = st.sampled_from(sorted(KNOWN_BANKS))
city_codes = st.text(alphabet="0123456789", min_size=3, max_size=3)
account_numbers = st.text(alphabet="0123456789", min_size=16, max_size=16)


class TestProperties:
    @given(known_bank_codes, city_codes, account_numbers)
    def test_made_ribs_parse_and_their_ibans_parse_back(self, bank_code, city_code, account_number):
        rib = make_rib(bank_code, city_code, account_number)
        account = parse_rib(rib)
        assert (account.bank_code, account.city_code, account.account_number) == (
            bank_code,
            city_code,
            account_number,
        )
        assert account.bank is KNOWN_BANKS[bank_code]
        assert parse_iban(account.iban) == account
        assert parse_iban(account.formatted_iban.lower()) == account

    @given(known_bank_codes, city_codes, account_numbers, st.integers(0, 23), st.integers(1, 9))
    def test_every_single_digit_substitution_is_refused(
        self, bank_code, city_code, account_number, position, shift
    ):
        # Changing digit d at position p changes the number by (d' - d) * 10^k with 0 < |d' - d| <= 9.
        # 97 is prime and divides neither factor, so the result can never be divisible by 97 again.
        rib = make_rib(bank_code, city_code, account_number)
        changed_digit = str((int(rib[position]) + shift) % 10)
        mistyped = with_digit(rib, position, changed_digit)
        assert mistyped != rib
        assert error_of(parse_rib, mistyped).code == "invalid_rib"
        assert error_of(parse_iban, "MA" + iban_check_digits(rib) + mistyped).code == "invalid_iban"

    @given(known_bank_codes, city_codes, account_numbers, st.integers(0, 22))
    def test_swapping_two_different_adjacent_digits_is_refused(
        self, bank_code, city_code, account_number, position
    ):
        rib = make_rib(bank_code, city_code, account_number)
        assume(rib[position] != rib[position + 1])
        swapped = rib[:position] + rib[position + 1] + rib[position] + rib[position + 2 :]
        assert error_of(parse_rib, swapped).code == "invalid_rib"
