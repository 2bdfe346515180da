"""Staff rules without a database: emails, roles, passwords, TOTP codes taken once, the staff
token's claims, and which staff tokens act as a compliance officer or an operator."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest

from services.onboarding.domain.staff import (
    StaffRuleError,
    accepted_totp_step,
    hash_password,
    mask_email,
    normalise_email,
    otpauth_uri,
    password_needs_rehash,
    staff_roles,
    verify_password,
)
from shared.auth.keys import SigningKeyStore
from shared.auth.principal import Principal
from shared.auth.scopes import ROLE_SCOPES, Role, staff_scopes
from shared.auth.tokens import TokenIssuer, TokenVerifier
from tests.conftest import ISSUER

NOW = dt.datetime(2026, 12, 6, 10, 0, 15, tzinfo=dt.UTC)
SECRET = "AMINACOMPLIANCEDEMOTOTPSECRETAAA"


def code_at(moment: dt.datetime) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_emails_have_one_spelling():
    assert normalise_email("  Amina.Benali@Hirfa.TEST ") == "amina.benali@hirfa.test"
    for wrong in ("", "amina", "amina@", "@hirfa.test", "a b@hirfa.test", "amina@hirfa"):
        with pytest.raises(StaffRuleError):
            normalise_email(wrong)


def test_staff_hold_compliance_operator_or_both():
    assert staff_roles(["operator", "compliance", "operator"]) == (Role.COMPLIANCE, Role.OPERATOR)
    for wrong in ([], ["marketplace"], ["staff"], ["admin"]):
        with pytest.raises(StaffRuleError):
            staff_roles(wrong)


def test_passwords_are_argon2id_with_owasp_parameters():
    stored = hash_password("a long enough passphrase")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("a long enough passphrase", stored)
    assert not verify_password("a long enough passphrasE", stored)
    assert not verify_password("a long enough passphrase", "not a hash")
    assert not password_needs_rehash(stored)
    with pytest.raises(StaffRuleError):
        hash_password("short")


def test_a_code_is_accepted_one_step_either_side_and_never_twice():
    step = pyotp.TOTP(SECRET).timecode(NOW)
    assert accepted_totp_step(SECRET, code_at(NOW), NOW, None) == step
    assert accepted_totp_step(SECRET, code_at(NOW - dt.timedelta(seconds=30)), NOW, None) == step - 1
    assert accepted_totp_step(SECRET, code_at(NOW + dt.timedelta(seconds=30)), NOW, None) == step + 1
    assert accepted_totp_step(SECRET, code_at(NOW - dt.timedelta(seconds=60)), NOW, None) is None
    # Once a step is used, its code and every earlier one are refused, within the window too.
    assert accepted_totp_step(SECRET, code_at(NOW), NOW, step) is None
    assert accepted_totp_step(SECRET, code_at(NOW - dt.timedelta(seconds=30)), NOW, step) is None
    assert accepted_totp_step(SECRET, code_at(NOW + dt.timedelta(seconds=30)), NOW, step) == step + 1
    for malformed in ("", "12345", "1234567", "abcdef", " 12345"):
        assert accepted_totp_step(SECRET, malformed, NOW, None) is None


def test_the_authenticator_shows_hirfa_and_the_email():
    uri = otpauth_uri(SECRET, "amina@hirfa.test")
    assert uri == f"otpauth://totp/Hirfa:amina%40hirfa.test?secret={SECRET}&issuer=Hirfa"


def test_log_lines_show_a_masked_email():
    assert mask_email("amina@hirfa.test") == "a***@hirfa.test"


def test_a_staff_token_names_the_person_and_carries_their_roles_scopes(tmp_path):
    keys = SigningKeyStore(tmp_path / "keys")
    keys.generate()
    token, _ = TokenIssuer(keys, ISSUER).issue(
        client_id="stf_01",
        role=Role.STAFF,
        scopes=staff_scopes([Role.COMPLIANCE]),
        audiences=["hirfa-onboarding", "hirfa-accounts"],
        name="Amina Benali",
    )
    verifier = TokenVerifier(
        lambda kid: keys.public_keys().get(kid), issuer=ISSUER, audience="hirfa-accounts"
    )
    principal = verifier.verify(token)
    assert (principal.client_id, principal.role, principal.name) == ("stf_01", Role.STAFF, "Amina Benali")
    assert principal.scopes == ROLE_SCOPES[Role.COMPLIANCE]
    # Only a staff token's name is taken: an API client's token has none to show.
    client_token, _ = TokenIssuer(keys, ISSUER).issue(
        client_id="cli_x", role=Role.OPERATOR, scopes=[], audiences=["hirfa-accounts"], name="Someone"
    )
    assert verifier.verify(client_token).name is None


def staff(*roles: Role) -> Principal:
    return Principal(client_id="stf_01", role=Role.STAFF, scopes=staff_scopes(roles), token_id="tok")


def test_a_staff_token_acts_as_the_roles_the_person_holds():
    both = staff(Role.COMPLIANCE, Role.OPERATOR)
    assert both.acts_as(Role.COMPLIANCE) and both.acts_as(Role.OPERATOR)
    assert staff(Role.OPERATOR).acts_as(Role.OPERATOR) and not staff(Role.OPERATOR).acts_as(Role.COMPLIANCE)
    assert staff(Role.COMPLIANCE).acts_as(Role.COMPLIANCE) and not staff(Role.COMPLIANCE).acts_as(
        Role.OPERATOR
    )
    for never in (Role.MARKETPLACE, Role.BANK_PARTNER, Role.ARTISAN):
        assert not both.acts_as(never)
    # A bank partner holds payouts:write and ledger:read, but is no operator.
    bank = Principal("cli_bank", Role.BANK_PARTNER, ROLE_SCOPES[Role.BANK_PARTNER], "tok", bank_code="145")
    assert not bank.acts_as(Role.OPERATOR)
    with pytest.raises(ValueError):
        staff_scopes([Role.MARKETPLACE])


def test_the_ready_banner_shows_demo_staff_only_when_the_stack_creates_them(monkeypatch, tmp_path):
    from services.stack import demo_staff_lines

    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ONBOARDING_DEMO_STAFF", "false")
    assert demo_staff_lines("http://127.0.0.1:8001") == []
    monkeypatch.setenv("ONBOARDING_DEMO_STAFF", "true")
    shown = "\n".join(demo_staff_lines("http://127.0.0.1:8001"))
    assert "amina.compliance@hirfa.test" in shown and "demo-staff-password" in shown
    assert SECRET in shown
