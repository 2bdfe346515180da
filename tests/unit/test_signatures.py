"""HMAC callback signatures: what a receiver accepts and what it refuses, with the reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.signatures import SignatureError, sign, verify

SECRET = "whsec_test_secret"
OTHER_SECRET = "whsec_other_secret"
BODY = b'{"id":"evt_1","type":"account_opening.opened","amount":12500}'
NOW = 1_750_000_000


def reason_of(secret, header, body=BODY, **kwargs) -> str:
    with pytest.raises(SignatureError) as error:
        verify(secret, header, body, now=kwargs.pop("now", NOW), **kwargs)
    return error.value.reason


class TestRoundTrip:
    def test_signed_body_verifies_and_returns_its_timestamp(self):
        assert verify(SECRET, sign(SECRET, BODY, timestamp=NOW), BODY, now=NOW) == NOW

    def test_header_format_is_t_then_v1_hex_hmac(self):
        expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(SECRET, BODY, timestamp=NOW) == f"t={NOW},v1={expected}"

    def test_bytes_and_str_secrets_are_the_same_key(self):
        assert sign(SECRET.encode(), BODY, timestamp=NOW) == sign(SECRET, BODY, timestamp=NOW)

    def test_defaults_to_the_current_time(self):
        header = sign(SECRET, BODY)
        assert verify(SECRET, header, BODY) == int(header.split(",")[0][2:])

    def test_empty_body_can_be_signed(self):
        assert verify(SECRET, sign(SECRET, b"", timestamp=NOW), b"", now=NOW) == NOW

    def test_whitespace_around_items_is_tolerated(self):
        header = sign(SECRET, BODY, timestamp=NOW).replace(",", " , ")
        assert verify(SECRET, header, BODY, now=NOW) == NOW

    def test_empty_secret_is_refused(self):
        with pytest.raises(ValueError):
            sign("", BODY)
        with pytest.raises(ValueError):
            verify(b"", sign(SECRET, BODY), BODY)


class TestMismatch:
    def test_tampered_body(self):
        header = sign(SECRET, BODY, timestamp=NOW)
        assert reason_of(SECRET, header, BODY.replace(b"12500", b"99999")) == "mismatch"

    def test_wrong_secret(self):
        assert reason_of(OTHER_SECRET, sign(SECRET, BODY, timestamp=NOW)) == "mismatch"

    def test_timestamp_is_part_of_the_signed_payload(self):
        header = sign(SECRET, BODY, timestamp=NOW)
        shifted = header.replace(f"t={NOW}", f"t={NOW + 1}")
        assert reason_of(SECRET, shifted) == "mismatch"

    def test_non_hex_signature_is_a_mismatch_not_a_crash(self):
        assert reason_of(SECRET, f"t={NOW},v1=zz-not-hex-é") == "mismatch"


class TestTimestampTolerance:
    def test_too_old(self):
        header = sign(SECRET, BODY, timestamp=NOW - 301)
        assert reason_of(SECRET, header) == "timestamp_outside_tolerance"

    def test_too_far_in_the_future(self):
        header = sign(SECRET, BODY, timestamp=NOW + 301)
        assert reason_of(SECRET, header) == "timestamp_outside_tolerance"

    @pytest.mark.parametrize("offset", [-300, 0, 300])
    def test_edges_of_the_window_are_accepted(self, offset):
        assert verify(SECRET, sign(SECRET, BODY, timestamp=NOW + offset), BODY, now=NOW) == NOW + offset

    def test_tolerance_is_configurable(self):
        header = sign(SECRET, BODY, timestamp=NOW - 30)
        assert reason_of(SECRET, header, tolerance_seconds=10) == "timestamp_outside_tolerance"
        assert verify(SECRET, header, BODY, now=NOW, tolerance_seconds=60) == NOW - 30

    def test_forged_message_with_old_timestamp_reports_mismatch(self):
        # Authenticity is checked first: a stale-timestamp reason always means a genuine replay.
        assert reason_of(SECRET, f"t={NOW - 10_000},v1={'0' * 64}") == "mismatch"


class TestMissingAndMalformed:
    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_missing(self, header):
        assert reason_of(SECRET, header) == "missing"

    @pytest.mark.parametrize(
        "header",
        [
            "garbage",
            f"v1={'a' * 64}",  # no timestamp
            f"t={NOW}",  # no signature
            f"t=abc,v1={'a' * 64}",
            f"t=-5,v1={'a' * 64}",
            f"t={NOW},t={NOW},v1={'a' * 64}",
            f"t={NOW},,v1={'a' * 64}",
            f"t={NOW},=abc,v1={'a' * 64}",
            f"t={NOW},v0={'a' * 64}",  # only an unknown scheme
        ],
    )
    def test_malformed(self, header):
        assert reason_of(SECRET, header) == "malformed"

    def test_unknown_schemes_next_to_v1_are_ignored(self):
        header = sign(SECRET, BODY, timestamp=NOW) + ",v2=something-newer"
        assert verify(SECRET, header, BODY, now=NOW) == NOW

    def test_signature_error_is_a_value_error(self):
        assert issubclass(SignatureError, ValueError)


class TestSecretRotation:
    def two_signature_header(self, first: str, second: str) -> str:
        old = sign(first, BODY, timestamp=NOW)
        new = sign(second, BODY, timestamp=NOW)
        return old + "," + new.split(",")[1]

    @pytest.mark.parametrize("receiver_secret", [SECRET, OTHER_SECRET])
    def test_header_with_two_v1_values_verifies_with_either_secret(self, receiver_secret):
        header = self.two_signature_header(SECRET, OTHER_SECRET)
        assert header.count("v1=") == 2
        assert verify(receiver_secret, header, BODY, now=NOW) == NOW

    def test_receiver_with_several_secrets_accepts_any(self):
        header = sign(OTHER_SECRET, BODY, timestamp=NOW)
        assert verify([SECRET, OTHER_SECRET], header, BODY, now=NOW) == NOW
        assert verify((b"retired", OTHER_SECRET.encode()), header, BODY, now=NOW) == NOW

    def test_none_of_the_secrets_matching_is_a_mismatch(self):
        header = self.two_signature_header(SECRET, OTHER_SECRET)
        assert reason_of(["third", "fourth"], header) == "mismatch"

    def test_empty_list_of_secrets_is_a_programming_error(self):
        with pytest.raises(ValueError) as error:
            verify([], sign(SECRET, BODY), BODY)
        assert not isinstance(error.value, SignatureError)
