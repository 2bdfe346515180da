"""Issuing and verifying access tokens (EdDSA-signed JWTs).

Verification is offline: a service holds the issuer's public keys (from its JWKS, cached) and
checks signature, algorithm, issuer, audience and time claims itself. Only ``EdDSA`` is accepted,
and the key is chosen by ``kid`` among Ed25519 public keys, so ``alg: none`` and HS256-with-the-
public-key forgeries have nothing to verify against. Every segment must be canonical base64url
without padding before PyJWT sees it: a token has one spelling, so a signed token with ``==``,
whitespace or stray bits added is not "the same token" to anything that compares or logs tokens.

A client sends the same token with every request for its fifteen minutes, so the verifier keeps the
principals of tokens it verified (``VerifiedTokens``), keyed by the token's exact text, and checks
a cached one's time claims again on every use. An access token is revoked only by retiring the key
that signed it (refresh tokens have their own revocation in onboarding): a cached token counts only
while the key lookup still hands back the same key for its kid.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.auth.keys import SigningKeyStore, is_canonical_b64url
from shared.auth.principal import Principal, is_bank_code
from shared.auth.scopes import Role
from shared.errors import InvalidToken
from shared.ids import new_id

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
CLOCK_SKEW_SECONDS = 10
# Verified tokens a verifier remembers: a few thousand API clients and devices active at once.
VERIFIED_TOKENS_CACHED = 4096
# Bound here, not looked up per call: tests replace this module's ``time`` with a fake monotonic clock.
_wall_clock = time.time
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")


class TokenIssuer:
    def __init__(self, keys: SigningKeyStore, issuer: str, ttl_seconds: int = 900) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        *,
        client_id: str,
        role: Role,
        scopes: Iterable[str],
        audiences: list[str],
        bank_code: str | None = None,
        now: dt.datetime | None = None,
        device_id: str | None = None,
        lang: str | None = None,
        name: str | None = None,
    ) -> tuple[str, int]:
        """Return ``(token, expires_in_seconds)``. A bank partner's token carries its ``bank_code``
        (and must: a bank partner bound to no bank would see every bank's data). ``device_id``: the
        artisan's device it is issued to; ``lang``: the person's preferred language; ``name``: a
        staff member's name, for the audit trails of the services they act in."""
        if role == Role.BANK_PARTNER and not is_bank_code(bank_code):
            raise ValueError("a bank partner's token needs the three-digit bank code it is bound to")
        now = now or dt.datetime.now(dt.UTC)
        kid, private_key = self.keys.active()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": audiences if len(audiences) != 1 else audiences[0],
            "iat": now,
            "nbf": now,
            "exp": now + dt.timedelta(seconds=self.ttl_seconds),
            "jti": new_id("tok"),
            "scope": " ".join(sorted(scopes)),
            "role": str(role),
        }
        if role == Role.BANK_PARTNER:
            claims["bank_code"] = bank_code
        if device_id is not None:
            claims["device_id"] = device_id
        if lang is not None:
            claims["lang"] = lang
        if name is not None:
            claims["name"] = name
        token = jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid})
        return token, self.ttl_seconds


KeyLookup = Callable[[str], Ed25519PublicKey | None]


class RemoteKeySet:
    """The issuer's public keys, fetched from its JWKS URL and cached.

    An unknown ``kid`` triggers at most one refetch per ``min_refresh_seconds``, so a flood of
    tokens with made-up kids cannot turn into a flood of requests to the issuer.
    """

    def __init__(
        self,
        url: str,
        cache_seconds: int = 300,
        timeout_seconds: float = 3.0,
        min_refresh_seconds: float = 10.0,
        fetch: Callable[[str, float], dict[str, Any]] | None = None,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._fetch = fetch or _http_get_json
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")  # never fetched: stale whatever the monotonic clock says

    def _refresh(self) -> None:
        try:
            document = self._fetch(self.url, self.timeout_seconds)
            keys = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("kid"):
                    if not is_canonical_b64url(jwk.get("x")):
                        # A broken document, like any other: the keys we had are kept.
                        raise ValueError("a JWK's x is not canonical base64url")
                    key = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
                    if isinstance(key, Ed25519PublicKey):
                        keys[jwk["kid"]] = key
            self._keys = keys
        except Exception as exc:  # noqa: BLE001 - keep serving with the keys we have
            log.warning("could not refresh JWKS", extra={"url": self.url, "error": str(exc)})
        self._fetched_at = time.monotonic()

    def __call__(self, kid: str) -> Ed25519PublicKey | None:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.cache_seconds or (kid not in self._keys and age > self.min_refresh_seconds):
                self._refresh()
            return self._keys.get(kid)


def _http_get_json(url: str, timeout: float) -> dict[str, Any]:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def is_compact_jws(token: object) -> bool:
    """Three segments (header, payload, signature), each canonical base64url without padding. The
    signature may be empty here: ``alg: none`` is then refused by name, with its own message."""
    if not isinstance(token, str):
        return False
    segments = token.split(".")
    return len(segments) == 3 and all(is_canonical_b64url(segment) for segment in segments)


@dataclasses.dataclass(frozen=True)
class _Verified:
    """A token that passed every check, and what its later uses must check again."""

    principal: Principal
    kid: str
    key: Ed25519PublicKey  # the key it was verified with
    issued_at: int
    not_before: int
    expires_at: int


class VerifiedTokens:
    """The last ``size`` tokens a verifier accepted, by their exact text (least recently used go).

    Only tokens that passed every check are kept; a refused token is verified afresh each time, so
    a flood of bad tokens cannot push good ones out faster than it pays for their checks.
    """

    def __init__(self, size: int = VERIFIED_TOKENS_CACHED) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._tokens: collections.OrderedDict[str, _Verified] = collections.OrderedDict()

    def get(self, token: str) -> _Verified | None:
        with self._lock:
            verified = self._tokens.get(token)
            if verified is not None:
                self._tokens.move_to_end(token)
            return verified

    def put(self, token: str, verified: _Verified) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._tokens[token] = verified
            self._tokens.move_to_end(token)
            while len(self._tokens) > self.size:
                self._tokens.popitem(last=False)

    def forget(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def __len__(self) -> int:
        return len(self._tokens)


class TokenVerifier:
    """Verifies access tokens for one audience. ``clock`` (seconds since the epoch) is what a
    remembered token's time claims are checked against; ``cache_size`` 0 remembers none."""

    def __init__(
        self,
        key_lookup: KeyLookup,
        issuer: str,
        audience: str,
        *,
        cache_size: int = VERIFIED_TOKENS_CACHED,
        clock: Callable[[], float] = _wall_clock,
    ) -> None:
        self.key_lookup = key_lookup
        self.issuer = issuer
        self.audience = audience
        self.clock = clock
        self.verified = VerifiedTokens(cache_size)

    def verify(self, token: str) -> Principal:
        remembered = self.verified.get(token) if isinstance(token, str) else None
        if remembered is not None:
            principal = self._still_valid(token, remembered)
            if principal is not None:
                return principal
        return self._verify(token)

    def _still_valid(self, token: str, remembered: _Verified) -> Principal | None:
        """The remembered principal if the token is still within its time claims and its key is
        still the issuer's; raises as a first verification would; None: verify it afresh."""
        now = self.clock()
        # PyJWT's comparisons, with the same leeway.
        if remembered.expires_at <= now - CLOCK_SKEW_SECONDS:
            self.verified.forget(token)
            raise InvalidToken("The access token has expired.", code="token_expired")
        if max(remembered.not_before, remembered.issued_at) > now + CLOCK_SKEW_SECONDS:
            raise InvalidToken("The access token is not valid yet.")
        key = self.key_lookup(remembered.kid)
        if key is None:
            # Its key was retired: so is every token it signed.
            self.verified.forget(token)
            raise InvalidToken("The token was signed with an unknown key.")
        if key is not remembered.key and not _same_key(key, remembered.key):
            self.verified.forget(token)
            return None
        return remembered.principal

    def _verify(self, token: str) -> Principal:
        if not is_compact_jws(token):
            raise InvalidToken("The access token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is malformed.") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("The token's signing algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("The token names no signing key.")
        key = self.key_lookup(kid)
        if key is None:
            raise InvalidToken("The token was signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired.", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The access token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The access token is not meant for this service.") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The access token comes from an unknown issuer.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The access token could not be verified.") from None
        try:
            role = Role(str(claims["role"]))
        except (KeyError, ValueError):
            raise InvalidToken("The access token carries no valid role.") from None
        scope = claims.get("scope", "")
        device_id = claims.get("device_id")
        if (
            not isinstance(scope, str)
            or not isinstance(claims["sub"], str)
            or not isinstance(device_id, str | None)
        ):
            raise InvalidToken("The access token's claims are malformed.")
        # A bank partner sees one bank's data: without a valid bank code its token is malformed
        # (never "every bank"). Other roles are bound to no bank, whatever the token says.
        bank_code = claims.get("bank_code")
        if role == Role.BANK_PARTNER and not is_bank_code(bank_code):
            raise InvalidToken("The access token's claims are malformed.")
        lang = claims.get("lang")
        name = claims.get("name")
        principal = Principal(
            client_id=claims["sub"],
            role=role,
            scopes=frozenset(scope.split()),
            token_id=str(claims.get("jti", "")),
            bank_code=bank_code if role == Role.BANK_PARTNER else None,
            # A language tag or nothing: anything else in the claim is ignored, not trusted.
            lang=lang if isinstance(lang, str) and _LANGUAGE_TAG.fullmatch(lang) else None,
            device_id=device_id if role == Role.ARTISAN else None,
            name=name if role == Role.STAFF and isinstance(name, str) and 0 < len(name) <= 200 else None,
        )
        if isinstance(key, Ed25519PublicKey):
            self.verified.put(
                token,
                _Verified(
                    principal=principal,
                    kid=kid,
                    key=key,
                    # PyJWT checked each is a number of seconds, and compared them as integers.
                    issued_at=int(claims["iat"]),
                    not_before=int(claims["nbf"]),
                    expires_at=int(claims["exp"]),
                ),
            )
        return principal


def _same_key(one: object, other: Ed25519PublicKey) -> bool:
    """Whether the key lookup's answer is the key a token was verified with (a refetched JWKS
    builds new key objects for the same keys)."""
    return isinstance(one, Ed25519PublicKey) and one.public_bytes_raw() == other.public_bytes_raw()
