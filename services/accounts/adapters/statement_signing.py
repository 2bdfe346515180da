"""Signing income statements as compact JWS (RFC 7515, EdDSA over Ed25519) and checking them.

The statement key is accounts' own, for this purpose only: not onboarding's token key. Its
``k_<kid>.pem`` files live in ``ACCOUNTS_STATEMENT_KEYS_DIR`` (a mounted secret in production) and
rotate like the token keys (``shared.auth.keys.SigningKeyStore``): the newest signs, every key in
the directory stays in the JWKS (``GET /.well-known/jwks.json`` on accounts), so a statement
signed before a rotation still verifies as long as its key is kept.

The payload is the statement as canonical JSON (sorted keys, no spaces, UTF-8). Anyone can check
a statement offline with any JOSE library and the JWKS; ``verify`` is the same check, for banks
without one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from services.accounts.domain.ports import StatementCheck
from shared.auth.keys import SigningKeyStore
from shared.auth.tokens import is_compact_jws

ALGORITHM = "EdDSA"
# The JWS ``typ`` header: what kind of document was signed.
STATEMENT_TYPE = "hirfa-income-statement+jws"
STATEMENT_OBJECT = "income_statement"

_jws = PyJWS(algorithms=[ALGORITHM])


def canonical_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class JwsStatementSigner:
    def __init__(self, keys: SigningKeyStore) -> None:
        self.keys = keys

    def sign(self, statement: Mapping[str, object]) -> tuple[str, str]:
        kid, private_key = self.keys.active()
        jws = _jws.encode(
            canonical_json(statement),
            private_key,
            algorithm=ALGORITHM,
            headers={"kid": kid, "typ": STATEMENT_TYPE},
        )
        return jws, kid

    def jwks(self) -> Mapping[str, object]:
        return self.keys.jwks()

    def verify(self, jws: str) -> StatementCheck:
        if not is_compact_jws(jws):
            return StatementCheck(False, "malformed")
        try:
            header = _jws.get_unverified_header(jws)
        except jwt.PyJWTError:
            return StatementCheck(False, "malformed")
        if header.get("alg") != ALGORITHM:
            return StatementCheck(False, "unsupported_algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            return StatementCheck(False, "malformed")
        key = self.keys.public_keys().get(kid)
        if key is None:
            return StatementCheck(False, "unknown_key", kid=kid)
        try:
            decoded = _jws.decode_complete(jws, key, algorithms=[ALGORITHM])
        except jwt.InvalidSignatureError:
            return StatementCheck(False, "bad_signature", kid=kid)
        except jwt.PyJWTError:
            return StatementCheck(False, "malformed", kid=kid)
        try:
            statement = json.loads(decoded["payload"])
        except ValueError:
            statement = None
        if (
            header.get("typ") != STATEMENT_TYPE
            or not isinstance(statement, dict)
            or statement.get("object") != STATEMENT_OBJECT
        ):
            # Signed by our key, but not a statement (nothing else is signed with it today).
            return StatementCheck(False, "not_a_statement", kid=kid)
        return StatementCheck(True, "signature_valid", kid=kid, statement=statement)
