"""Staff: the people of the back office (compliance officers, operators), and how they prove who
they are: an argon2id password hash, a TOTP second factor, and a one-time enrolment token.

Pure rules, no I/O: the service layer stores what these functions decide (the TOTP secret
encrypted at rest, the enrolment token as a hash).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pyotp.exceptions import OTPVerificationError

from shared.auth.scopes import STAFF_ROLES, Role

STAFF_ID_PREFIX = "stf"
ENROLMENT_TOKEN_PREFIX = "hen_"
REFRESH_TOKEN_PREFIX = "hsr_"
TOTP_ISSUER = "Hirfa"
MIN_PASSWORD_LENGTH = 12
# argon2 hashes any length, but a megabyte "password" is a cheap way to burn our CPU.
MAX_PASSWORD_LENGTH = 128
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

# OWASP's Password Storage Cheat Sheet, argon2id, first configuration: 19 MiB of memory, two
# iterations, one lane. Hashes made with other parameters still verify (they are in the hash) and
# are rehashed at the next sign-in.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)


class StaffRuleError(ValueError):
    """A staff member's details break a rule (``code`` says which)."""

    def __init__(self, message: str, code: str = "validation_error") -> None:
        super().__init__(message)
        self.code = code


def normalise_email(email: str) -> str:
    """One spelling per address: trimmed and lower-cased (emails are unique case-insensitively)."""
    normalised = (email or "").strip().lower()
    if len(normalised) > 254 or not _EMAIL.fullmatch(normalised):
        raise StaffRuleError(f"{email!r} is not an email address.", code="invalid_email")
    return normalised


def staff_roles(roles: Iterable[str]) -> tuple[Role, ...]:
    """The roles as given, deduplicated in a stable order; at least one, each a staff role."""
    held = []
    for name in roles:
        try:
            role = Role(name)
        except ValueError:
            role = None
        if role not in STAFF_ROLES:
            raise StaffRuleError(
                f"{name!r} is not a staff role (one of: {', '.join(STAFF_ROLES)}).", code="invalid_role"
            )
        held.append(role)
    if not held:
        raise StaffRuleError("A staff member holds at least one role.", code="invalid_role")
    return tuple(role for role in STAFF_ROLES if role in held)


# -- passwords -----------------------------------------------------------------------------------


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffRuleError(
            f"A staff password has at least {MIN_PASSWORD_LENGTH} characters.", code="password_too_short"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffRuleError(
            f"A staff password has at most {MAX_PASSWORD_LENGTH} characters.", code="password_too_long"
        )


def hash_password(password: str) -> str:
    check_password_rules(password)
    return PASSWORDS.hash(password)


def verify_password(password: str, stored: str) -> bool:
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return PASSWORDS.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    return PASSWORDS.check_needs_rehash(stored)


# Verified against when the email is unknown, so that answer takes as long as a wrong password.
_DECOY_HASH = PASSWORDS.hash(secrets.token_urlsafe(16))


def spend_password_check(password: str) -> None:
    """Do the work of a password check for an unknown email (no timing tells who has an account)."""
    verify_password(password, _DECOY_HASH)


# -- enrolment tokens ----------------------------------------------------------------------------


def new_enrolment_token() -> str:
    """256 random bits, shown once: a bare SHA-256 is enough to keep it (nothing to brute-force)."""
    return ENROLMENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_enrolment_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- refresh tokens (a console session renewing its access token) ---------------------------------


def new_staff_refresh_token() -> str:
    """256 random bits, like an enrolment token, and kept the same way (a bare SHA-256)."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_staff_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- TOTP (RFC 6238: 30-second steps, six digits, SHA-1, as every authenticator app expects) -------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def otpauth_uri(secret: str, email: str) -> str:
    """What the authenticator app scans (as a QR code): the account is shown as ``Hirfa: email``."""
    uri: str = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)
    return uri


def totp_code(secret: str, at: dt.datetime) -> str:
    """The code an authenticator shows at ``at`` (tests and the demo stack use it)."""
    code: str = pyotp.TOTP(secret).at(at)
    return code


def accepted_totp_step(secret: str, code: str, now: dt.datetime, last_used_step: int | None) -> int | None:
    """The time step ``code`` belongs to if it is accepted now, else None.

    ``valid_window=1``: the current step or one either side (a clock a little off, a code typed as
    it rolled over). A code whose step is not after the last accepted one is refused: a code seen
    over a shoulder or in a proxy log cannot be replayed, not even within its window.
    """
    if not (isinstance(code, str) and code.isdigit() and len(code) == 6):
        return None
    try:
        step: int = pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=now, valid_window=1)
    except OTPVerificationError:
        return None
    if last_used_step is not None and step <= last_used_step:
        return None
    return step


def totp_binding(staff_id: str) -> bytes:
    """The associated data of a staff member's encrypted TOTP secret: it decrypts on their row only."""
    return f"staff_totp|{staff_id}".encode()


@dataclasses.dataclass(frozen=True)
class StaffProfile:
    """What a signed-in staff member learns about themself (and the console shows)."""

    id: str
    name: str
    email: str
    roles: tuple[Role, ...]


def mask_email(email: str) -> str:
    """For log lines: enough to recognise, not a list of addresses."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
