"""Builders for hand-crafted and forged access tokens, shared by the unit and integration tests.

Everything here builds tokens byte by byte (or with PyJWT where it signs honestly), so a test can
send exactly the forgery it means to: ``alg: none``, HS256 keyed with the public key, a token
signed by a stranger's key under a trusted ``kid``, tampered payloads and so on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.auth.scopes import ROLE_SCOPES, Role

LEEWAY = 10  # shared.auth.tokens.CLOCK_SKEW_SECONDS
# The bank a forged bank partner token is bound to unless a test says otherwise (the demo bank).
BANK_CODE = "145"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def segments(header: dict, payload: dict) -> str:
    """``base64url(header).base64url(payload)``: the JWS signing input."""
    return b64url(_json(header)) + "." + b64url(_json(payload))


def claims(
    issuer: str,
    audience: str | list[str],
    *,
    client_id: str = "cli_test_marketplace",
    role: Role = Role.MARKETPLACE,
    scopes=None,
    now: int | None = None,
    ttl: int = 600,
    drop: tuple[str, ...] = (),
    **overrides: Any,
) -> dict[str, Any]:
    """The claims a genuine token carries; ``overrides`` change some, ``drop`` removes some.

    A bank partner's carries ``bank_code`` (``BANK_CODE`` unless overridden)."""
    now = int(time.time()) if now is None else now
    body: dict[str, Any] = {
        "iss": issuer,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": "tok_forged",
        "scope": " ".join(sorted(ROLE_SCOPES[role] if scopes is None else scopes)),
        "role": str(role),
    }
    if role == Role.BANK_PARTNER:
        body["bank_code"] = BANK_CODE
    body.update(overrides)
    for name in drop:
        body.pop(name, None)
    return body


def sign_eddsa(private_key: Ed25519PrivateKey, kid: Any, payload: dict, **header: Any) -> str:
    """An honestly EdDSA-signed token (the key and claims may still be wrong)."""
    return jwt.encode(payload, private_key, algorithm="EdDSA", headers={"kid": kid, **header})


def sign_raw(private_key: Ed25519PrivateKey, header: dict, payload: dict) -> str:
    """EdDSA over hand-made segments, for headers PyJWT would refuse to write (``kid: 123``)."""
    signing_input = segments(header, payload)
    return signing_input + "." + b64url(private_key.sign(signing_input.encode()))


def alg_none(kid: str, payload: dict) -> str:
    """``alg: none`` with an empty signature (RFC 7519 §6 unsecured JWT)."""
    return segments({"alg": "none", "typ": "JWT", "kid": kid}, payload) + "."


def public_key_bytes(public_key: Ed25519PublicKey, form: str = "pem") -> bytes:
    if form == "raw":
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hs256_with_public_key(kid: str, public_key: Ed25519PublicKey, payload: dict, form: str = "pem") -> str:
    """The algorithm-confusion forgery: HMAC-SHA256 keyed with the (public!) verification key.

    Built with ``hmac`` directly: PyJWT refuses to use a PEM public key as an HMAC secret.
    """
    signing_input = segments({"alg": "HS256", "typ": "JWT", "kid": kid}, payload)
    mac = hmac.new(public_key_bytes(public_key, form), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def tamper_payload(token: str, **changes: Any) -> str:
    """Rewrite claims in the payload segment and keep the original header and signature."""
    header, payload, signature = token.split(".")
    body = json.loads(b64url_decode(payload))
    body.update(changes)
    return header + "." + b64url(_json(body)) + "." + signature


def unverified_claims(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def forged_tokens(
    kid: str,
    private_key: Ed25519PrivateKey,
    *,
    issuer: str,
    audience: str | list[str],
    scopes=None,
) -> dict[str, str]:
    """Every forgery the verifier must refuse, by name.

    ``kid``/``private_key`` are the trusted issuer's, so each token differs from a valid one in
    exactly the way its name says. ``audience`` is what a valid token would carry.
    """
    now = int(time.time())
    good = claims(issuer, audience, scopes=scopes, now=now)
    public_key = private_key.public_key()
    stranger = Ed25519PrivateKey.generate()
    limited = claims(issuer, audience, scopes={"artisans:read"}, now=now)
    bank = claims(issuer, audience, role=Role.BANK_PARTNER, client_id="cli_test_bank", now=now)
    genuine_limited = sign_eddsa(private_key, kid, limited)
    return {
        "alg_none": alg_none(kid, good),
        "alg_none_uppercase": segments({"alg": "None", "kid": kid}, good) + ".",
        "alg_none_with_signature_kept": alg_none(kid, good)
        + sign_eddsa(private_key, kid, good).rsplit(".", 1)[1],
        "hs256_public_key_pem": hs256_with_public_key(kid, public_key, good, "pem"),
        "hs256_public_key_raw": hs256_with_public_key(kid, public_key, good, "raw"),
        "expired": sign_eddsa(private_key, kid, claims(issuer, audience, now=now - 3600, ttl=600)),
        "expired_beyond_leeway": sign_eddsa(
            private_key, kid, claims(issuer, audience, now=now - 600 - LEEWAY - 5, ttl=600)
        ),
        "not_yet_valid": sign_eddsa(private_key, kid, {**good, "nbf": now + LEEWAY + 60, "iat": now}),
        "issued_in_future": sign_eddsa(private_key, kid, claims(issuer, audience, now=now + LEEWAY + 60)),
        "wrong_audience": sign_eddsa(private_key, kid, {**good, "aud": "hirfa-elsewhere"}),
        "no_audience": sign_eddsa(private_key, kid, claims(issuer, audience, now=now, drop=("aud",))),
        "wrong_issuer": sign_eddsa(private_key, kid, {**good, "iss": "https://evil.example"}),
        "issuer_lookalike": sign_eddsa(private_key, kid, {**good, "iss": issuer + "/"}),
        "unknown_kid": sign_eddsa(private_key, "k_unknown", good),
        "kid_path_traversal": sign_eddsa(private_key, "../../../../dev/null", good),
        "kid_not_a_string": sign_raw(private_key, {"alg": "EdDSA", "kid": 123}, good),
        "no_kid": jwt.encode(good, private_key, algorithm="EdDSA"),
        "tampered_scope": tamper_payload(genuine_limited, scope=good["scope"]),
        "tampered_sub": tamper_payload(sign_eddsa(private_key, kid, good), sub="cli_other_marketplace"),
        "stranger_key_trusted_kid": sign_eddsa(stranger, kid, good),
        "missing_exp": sign_eddsa(private_key, kid, claims(issuer, audience, now=now, drop=("exp",))),
        "missing_sub": sign_eddsa(private_key, kid, claims(issuer, audience, now=now, drop=("sub",))),
        "missing_role": sign_eddsa(private_key, kid, claims(issuer, audience, now=now, drop=("role",))),
        "unknown_role": sign_eddsa(private_key, kid, {**good, "role": "superuser"}),
        "scope_not_a_string": sign_eddsa(private_key, kid, {**good, "scope": ["payments:read"]}),
        "signature_stripped": sign_eddsa(private_key, kid, good).rsplit(".", 1)[0] + ".",
        # A bank partner sees one bank's data: bound to none (or to nonsense), its token is refused.
        "bank_partner_without_bank_code": sign_eddsa(
            private_key, kid, {k: v for k, v in bank.items() if k != "bank_code"}
        ),
        "bank_partner_bank_code_not_three_digits": sign_eddsa(
            private_key, kid, {**bank, "bank_code": "1450"}
        ),
        "bank_partner_bank_code_a_number": sign_eddsa(private_key, kid, {**bank, "bank_code": 145}),
        "bank_partner_bank_code_wildcard": sign_eddsa(private_key, kid, {**bank, "bank_code": "*"}),
        "bank_partner_bank_code_null": sign_eddsa(private_key, kid, {**bank, "bank_code": None}),
        "tampered_bank_code": tamper_payload(sign_eddsa(private_key, kid, bank), bank_code="007"),
    }


GARBAGE = [
    "",
    "garbage",
    "a.b.c",
    "..",
    "....",
    "eyJhbGciOiJFZERTQSJ9",  # a header alone
    "eyJhbGciOiJFZERTQSJ9.e30",  # header and payload, no signature segment
    b64url(b"[1,2]") + "." + b64url(b"{}") + ".",  # header is a JSON array
    b64url(b"not json") + "." + b64url(b"{}") + ".",
    b64url(_json({"alg": "EdDSA", "kid": "k_x"})) + "." + b64url(b"not json") + ".AAAA",
    "Bearer x",
    "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9",
    "%00.%00.%00",
    "x" * 10_000,
    ".".join(["A" * 2000] * 3),
]
