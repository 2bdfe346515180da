"""API clients: the marketplaces, bank partners and back-office staff that call Hirfa.

Secrets are shown once at creation and stored only as a salted scrypt hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from shared.auth.principal import is_bank_code
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.banking import KNOWN_BANKS

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_client_secret() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


def grantable_scopes(role: Role, requested: str | None) -> frozenset[str] | None:
    """The scopes to put in a token: all of the role's by default, or the requested subset.

    Returns None when the request asks for a scope the role may not have.
    """
    allowed = ROLE_SCOPES[role]
    if not requested:
        return allowed
    wanted = frozenset(requested.split())
    return wanted if wanted <= allowed else None


def bank_binding_problem(role: Role, bank_code: str | None) -> str | None:
    """Why ``bank_code`` cannot be the bank of a client with ``role``, or None when it can.

    A bank partner is bound to exactly one bank, a known one (its tokens carry the code, and
    accounts shows it that bank's data only); no other role is bound to a bank.
    """
    if role != Role.BANK_PARTNER:
        return None if bank_code is None else "only a bank partner client is bound to a bank"
    if bank_code is None:
        return "a bank partner client must be bound to its bank (a three-digit bank code)"
    if not is_bank_code(bank_code):
        return f"{bank_code!r} is not a three-digit bank code"
    if bank_code not in KNOWN_BANKS:
        return f"{bank_code!r} is not a bank code Hirfa knows"
    return None
