"""Access tokens: the issuer/verifier pair, the forgeries it must refuse, the JWKS cache, rotation."""

from __future__ import annotations

import datetime as dt
import types

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.keys import SigningKeyStore
from shared.auth.principal import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import CLOCK_SKEW_SECONDS, RemoteKeySet, TokenIssuer, TokenVerifier
from shared.errors import InvalidToken
from tests import tokens_forge as forge
from tests.conftest import ISSUER

AUDIENCE = "hirfa-payments"
ALL_AUDIENCES = ["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"]


@pytest.fixture
def store(tmp_path) -> SigningKeyStore:
    keys = SigningKeyStore(tmp_path / "keys")
    keys.generate()
    return keys


@pytest.fixture
def issuer(store) -> TokenIssuer:
    return TokenIssuer(store, ISSUER, ttl_seconds=600)


@pytest.fixture
def verifier(store) -> TokenVerifier:
    return TokenVerifier(lambda kid: store.public_keys().get(kid), issuer=ISSUER, audience=AUDIENCE)


def _issue(issuer: TokenIssuer, **kwargs) -> str:
    kwargs.setdefault("client_id", "cli_test_marketplace")
    kwargs.setdefault("role", Role.MARKETPLACE)
    kwargs.setdefault("scopes", ROLE_SCOPES[Role.MARKETPLACE])
    kwargs.setdefault("audiences", ALL_AUDIENCES)
    token, _ = issuer.issue(**kwargs)
    return token


# --- the happy path ---------------------------------------------------------------------------


def test_valid_token_verifies_to_its_principal(issuer, verifier):
    token = _issue(
        issuer, client_id="cli_abc", role=Role.MARKETPLACE, scopes={"payments:read", "artisans:read"}
    )

    principal = verifier.verify(token)

    assert isinstance(principal, Principal)
    assert principal.client_id == "cli_abc"
    assert principal.role is Role.MARKETPLACE
    assert principal.scopes == frozenset({"payments:read", "artisans:read"})
    assert principal.token_id.startswith("tok_")
    assert principal.has_scopes("payments:read")
    assert not principal.has_scopes("payments:write")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_round_trips(issuer, verifier, role):
    bank_code = "145" if role == Role.BANK_PARTNER else None
    principal = verifier.verify(_issue(issuer, role=role, scopes=ROLE_SCOPES[role], bank_code=bank_code))
    assert principal.role is role
    assert principal.scopes == ROLE_SCOPES[role]
    assert principal.bank_code == bank_code


def test_a_bank_partner_token_carries_its_bank_code(issuer, verifier):
    token = _issue(issuer, role=Role.BANK_PARTNER, scopes=ROLE_SCOPES[Role.BANK_PARTNER], bank_code="350")

    assert forge.unverified_claims(token)["bank_code"] == "350"
    principal = verifier.verify(token)
    assert principal.is_bank_partner
    assert principal.bank_code == "350"


@pytest.mark.parametrize("bank_code", [None, "", "14", "1450", "abc", "*"])
def test_the_issuer_never_signs_a_bank_partner_token_without_a_bank(issuer, bank_code):
    with pytest.raises(ValueError, match="bank code"):
        _issue(issuer, role=Role.BANK_PARTNER, scopes=ROLE_SCOPES[Role.BANK_PARTNER], bank_code=bank_code)


def test_other_roles_are_bound_to_no_bank_even_if_the_token_names_one(store, verifier):
    # Only a bank partner is bound to a bank: a marketplace token with a bank_code claim (signed by
    # the issuer, say by an older version) gives its holder no bank.
    kid, key = store.active()
    token = forge.sign_eddsa(key, kid, forge.claims(ISSUER, AUDIENCE, bank_code="145"))
    assert verifier.verify(token).bank_code is None


def test_single_audience_token_verifies(issuer, verifier):
    # With one audience the issuer writes ``aud`` as a string rather than a list.
    token = _issue(issuer, audiences=[AUDIENCE])
    assert forge.unverified_claims(token)["aud"] == AUDIENCE
    assert verifier.verify(token).client_id == "cli_test_marketplace"


def test_issued_claims_and_header(issuer, store):
    token = _issue(issuer)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == store.active()[0]
    body = forge.unverified_claims(token)
    assert {"iss", "aud", "sub", "scope", "role", "iat", "nbf", "exp", "jti"} <= set(body)
    assert body["exp"] - body["iat"] == 600


def test_clock_skew_is_tolerated_within_leeway(store, verifier):
    kid, key = store.active()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    slightly_early = forge.claims(ISSUER, AUDIENCE, now=now, nbf=now + CLOCK_SKEW_SECONDS - 5, iat=now)
    just_expired = forge.claims(ISSUER, AUDIENCE, now=now - 600, ttl=600 - (CLOCK_SKEW_SECONDS - 5))
    assert verifier.verify(forge.sign_eddsa(key, kid, slightly_early))
    assert verifier.verify(forge.sign_eddsa(key, kid, just_expired))


# --- forgeries and broken tokens --------------------------------------------------------------

# Names only, for parametrize ids; each test rebuilds the tokens against its own store.
FORGERIES = sorted(forge.forged_tokens("k_x", Ed25519PrivateKey.generate(), issuer=ISSUER, audience=AUDIENCE))


@pytest.fixture
def forged(store) -> dict[str, str]:
    kid, key = store.active()
    return forge.forged_tokens(kid, key, issuer=ISSUER, audience=ALL_AUDIENCES)


@pytest.mark.parametrize("name", FORGERIES)
def test_forgery_is_refused(verifier, forged, name):
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(forged[name])
    assert caught.value.status == 401
    expected = "token_expired" if name.startswith("expired") else "invalid_token"
    assert caught.value.code == expected


def test_alg_none_is_refused(store, verifier):
    kid, _ = store.active()
    token = forge.alg_none(kid, forge.claims(ISSUER, AUDIENCE))
    assert token.endswith(".")  # empty signature
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


@pytest.mark.parametrize("form", ["pem", "raw"])
def test_hs256_keyed_with_the_public_key_is_refused(store, verifier, form):
    kid, key = store.active()
    token = forge.hs256_with_public_key(kid, key.public_key(), forge.claims(ISSUER, AUDIENCE), form)
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_hs256_forgery_is_refused_even_if_the_lookup_hands_back_bytes(store):
    """Defence in depth: a key lookup returning the PEM bytes must not make HMAC verification work."""
    kid, key = store.active()
    pem = forge.public_key_bytes(key.public_key(), "pem")
    verifier = TokenVerifier(lambda _kid: pem, issuer=ISSUER, audience=AUDIENCE)
    token = forge.hs256_with_public_key(kid, key.public_key(), forge.claims(ISSUER, AUDIENCE), "pem")
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_expired_token_from_the_real_issuer(issuer, verifier):
    token = _issue(issuer, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert caught.value.code == "token_expired"


def test_not_yet_valid_token_from_the_real_issuer(issuer, verifier):
    token = _issue(issuer, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=CLOCK_SKEW_SECONDS + 30))
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize(
    ("audience", "issuer_name"),
    [
        ("hirfa-accounts", ISSUER),  # a token for a sibling service
        ("hirfa-onboarding", ISSUER),
        (AUDIENCE, "https://auth.hirfa.ma.evil.example"),
        (AUDIENCE, "http://auth.hirfa.ma"),
    ],
)
def test_wrong_audience_or_issuer(store, verifier, audience, issuer_name):
    token = _issue(TokenIssuer(store, issuer_name), audiences=[audience])
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_unknown_kid(issuer, verifier, tmp_path):
    other_store = SigningKeyStore(tmp_path / "other")
    other_store.generate()
    token = _issue(TokenIssuer(other_store, ISSUER))
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)


def test_tampered_payload_keeps_signature_but_fails(issuer, verifier):
    token = _issue(issuer, scopes={"artisans:read"})
    assert verifier.verify(token).scopes == {"artisans:read"}
    tampered = forge.tamper_payload(token, scope="artisans:read payments:write payouts:write")
    assert tampered.rsplit(".", 1)[1] == token.rsplit(".", 1)[1]
    with pytest.raises(InvalidToken):
        verifier.verify(tampered)


def test_other_key_claiming_trusted_kid(store, verifier):
    kid, _ = store.active()
    token = forge.sign_eddsa(Ed25519PrivateKey.generate(), kid, forge.claims(ISSUER, AUDIENCE))
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub"])
def test_missing_required_claim(store, verifier, claim):
    kid, key = store.active()
    token = forge.sign_eddsa(key, kid, forge.claims(ISSUER, AUDIENCE, drop=(claim,)))
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@pytest.mark.parametrize("garbage", forge.GARBAGE, ids=lambda g: repr(g[:16]))
def test_garbage_strings(verifier, garbage):
    with pytest.raises(InvalidToken):
        verifier.verify(garbage)


def test_key_lookup_is_never_asked_about_non_eddsa_tokens(store):
    asked = []

    def lookup(kid):
        asked.append(kid)
        return store.public_keys().get(kid)

    verifier = TokenVerifier(lookup, issuer=ISSUER, audience=AUDIENCE)
    kid, key = store.active()
    for token in (
        forge.alg_none(kid, forge.claims(ISSUER, AUDIENCE)),
        forge.hs256_with_public_key(kid, key.public_key(), forge.claims(ISSUER, AUDIENCE)),
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    assert asked == []


# --- the remote JWKS cache --------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    import shared.auth.tokens as tokens_module

    monkeypatch.setattr(tokens_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


class FakeFetch:
    """Serves ``store.jwks()``, counting calls; ``fail`` makes the next calls raise."""

    def __init__(self, store: SigningKeyStore) -> None:
        self.store = store
        self.calls: list[tuple[str, float]] = []
        self.fail: Exception | None = None
        self.document = None

    def __call__(self, url: str, timeout: float) -> dict:
        self.calls.append((url, timeout))
        if self.fail is not None:
            raise self.fail
        return self.document if self.document is not None else self.store.jwks()


URL = "https://auth.hirfa.ma/.well-known/jwks.json"


def test_remote_key_set_caches(store, clock):
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, timeout_seconds=2.5, min_refresh_seconds=10, fetch=fetch)
    kid, private = store.active()

    for _ in range(50):
        key = keys(kid)
        clock.advance(1)
    assert key is not None
    assert key.public_bytes_raw() == private.public_key().public_bytes_raw()
    assert fetch.calls == [(URL, 2.5)]

    clock.advance(300)  # cache expired: the next lookup refetches once, even for a known kid
    assert keys(kid) is not None
    assert keys(kid) is not None
    assert len(fetch.calls) == 2


def test_remote_key_set_refetches_unknown_kid_at_most_once_per_interval(store, clock):
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, min_refresh_seconds=10, fetch=fetch)
    kid, _ = store.active()
    assert keys(kid) is not None
    assert len(fetch.calls) == 1

    # A flood of made-up kids right after a fetch costs nothing.
    for i in range(100):
        assert keys(f"k_made_up_{i}") is None
    assert len(fetch.calls) == 1

    clock.advance(10.5)
    for i in range(100):
        assert keys(f"k_made_up_again_{i}") is None
        clock.advance(0.05)  # 5 s in all: still inside the interval after the refetch
    assert len(fetch.calls) == 2

    clock.advance(10.5)
    assert keys("k_yet_another") is None
    assert len(fetch.calls) == 3


def test_remote_key_set_finds_a_rotated_key(store, clock):
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, min_refresh_seconds=10, fetch=fetch)
    old_kid, _ = store.active()
    assert keys(old_kid) is not None

    new_kid = store.generate()
    assert keys(new_kid) is None  # inside the refresh interval: not looked for yet
    clock.advance(11)
    assert keys(new_kid) is not None
    assert keys(old_kid) is not None
    assert len(fetch.calls) == 2


def test_remote_key_set_survives_fetch_errors(store, clock):
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, min_refresh_seconds=10, fetch=fetch)
    kid, _ = store.active()
    assert keys(kid) is not None

    fetch.fail = ConnectionError("issuer down")
    clock.advance(301)
    assert keys(kid) is not None  # the keys we had are kept
    assert keys("k_unknown") is None
    assert len(fetch.calls) == 2  # and a failing issuer is not hammered either
    clock.advance(11)
    assert keys("k_unknown") is None
    assert len(fetch.calls) == 3

    fetch.fail = None
    clock.advance(11)
    assert keys("k_unknown_still") is None
    assert keys(kid) is not None
    assert len(fetch.calls) == 4


@pytest.mark.parametrize(
    "document",
    [
        [],
        "not a dict",
        {"keys": "nope"},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k_bad", "x": "!!!"}]},
    ],
    ids=["list", "string", "keys-not-list", "bad-x"],
)
def test_remote_key_set_survives_a_bad_document(store, clock, document):
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, min_refresh_seconds=10, fetch=fetch)
    kid, _ = store.active()
    assert keys(kid) is not None
    fetch.document = document
    clock.advance(301)
    assert keys("k_bad") is None
    assert keys(kid) is not None  # a broken document does not wipe the keys we had
    assert len(fetch.calls) == 2


def test_remote_key_set_ignores_non_ed25519_keys(store, clock):
    fetch = FakeFetch(store)
    kid, _ = store.active()
    rsa = {"kty": "RSA", "kid": "k_rsa", "n": "AQAB", "e": "AQAB", "alg": "RS256"}
    fetch.document = {"keys": [rsa, *store.jwks()["keys"]]}
    keys = RemoteKeySet(URL, fetch=fetch)
    assert keys("k_rsa") is None
    assert keys(kid) is not None


def test_remote_key_set_first_fetch_failing_returns_none(store, clock):
    fetch = FakeFetch(store)
    fetch.fail = TimeoutError("timed out")
    keys = RemoteKeySet(URL, fetch=fetch)
    assert keys("k_anything") is None
    assert len(fetch.calls) == 1


def test_remote_key_set_first_lookup_fetches_whatever_the_monotonic_clock(store, monkeypatch):
    import shared.auth.tokens as tokens_module

    fake = FakeClock(start=5.0)  # monotonic clocks may start near zero (time since boot)
    monkeypatch.setattr(tokens_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    fetch = FakeFetch(store)
    keys = RemoteKeySet(URL, cache_seconds=300, min_refresh_seconds=10, fetch=fetch)
    kid, _ = store.active()
    assert keys(kid) is not None
    assert len(fetch.calls) == 1


def test_verifier_over_remote_key_set(store, issuer, clock):
    keys = RemoteKeySet(URL, fetch=FakeFetch(store))
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(_issue(issuer)).client_id == "cli_test_marketplace"
    with pytest.raises(InvalidToken):
        verifier.verify(forge.alg_none(store.active()[0], forge.claims(ISSUER, AUDIENCE)))


# --- key rotation -----------------------------------------------------------------------------


def test_key_rotation(store, issuer, verifier):
    old_kid, _ = store.active()
    old_token = _issue(issuer)

    new_kid = store.generate()

    assert new_kid != old_kid
    assert store.active()[0] == new_kid  # the newest key signs
    new_token = _issue(issuer)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid
    assert verifier.verify(new_token).client_id == "cli_test_marketplace"
    assert verifier.verify(old_token).client_id == "cli_test_marketplace"

    jwks = store.jwks()
    assert {jwk["kid"] for jwk in jwks["keys"]} == {old_kid, new_kid}
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
        assert "d" not in jwk  # never the private part

    # Retiring the old key file retires its tokens.
    (store.directory / f"{old_kid}.pem").unlink()
    with pytest.raises(InvalidToken):
        verifier.verify(old_token)
    assert verifier.verify(new_token)


def test_rotation_twice_in_the_same_millisecond_still_orders_keys(store):
    kids = [store.generate() for _ in range(5)]
    assert kids == sorted(kids)
    assert store.active()[0] == kids[-1]
    assert len(store.jwks()["keys"]) == 6


# --- one spelling per token: canonical base64url without padding ------------------------------

SEGMENTS = ("header", "payload", "signature")
_STANDARD_TWIN = {"-": "+", "_": "/"}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def spelled_token(store) -> str:
    """A genuine token whose every segment holds a ``-`` and a ``_`` (which have ``+`` and ``/`` as
    standard-alphabet twins) and has a length that leaves stray bits in its last character."""
    kid, key = store.active()
    for attempt in range(2000):
        # "???>>>~~~" encodes to both "-" and "_" however it is aligned; the "a"s vary the lengths.
        filler = "???>>>~~~" + "a" * (attempt % 5)
        header = {"alg": "EdDSA", "kid": kid, "typ": "JWT", "x": filler}
        payload = forge.claims(ISSUER, AUDIENCE, jti=f"tok_{attempt}", note=filler + "a" * (attempt // 5 % 5))
        token = forge.sign_raw(key, header, payload)
        if all("-" in s and "_" in s and len(s) % 4 for s in token.split(".")):
            return token
    raise AssertionError("no token with every character class in every segment")


def _respell(token: str, index: int, change) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def _stray_bits(segment: str) -> str:
    """The same bytes with a non-zero unused bit in the last character (the lenient decoders'
    reading of it is unchanged)."""
    last = _ALPHABET.index(segment[-1])
    return segment[:-1] + _ALPHABET[last + 1]


RESPELLINGS = {
    "padding '='": lambda s: s + "=",
    "padding '=='": lambda s: s + "==",
    "'=' inside": lambda s: s[:4] + "=" + s[4:],
    "trailing space": lambda s: s + " ",
    "leading space": lambda s: " " + s,
    "newline inside": lambda s: s[:4] + "\n" + s[4:],
    "tab inside": lambda s: s[:4] + "\t" + s[4:],
    "'+' for '-'": lambda s: s.replace("-", "+", 1),
    "'/' for '_'": lambda s: s.replace("_", "/", 1),
    "standard alphabet": lambda s: "".join(_STANDARD_TWIN.get(c, c) for c in s),
    "stray trailing bits": _stray_bits,
}


def test_the_canonical_spelling_verifies(spelled_token, verifier):
    assert verifier.verify(spelled_token).client_id == "cli_test_marketplace"


@pytest.mark.parametrize("respelling", sorted(RESPELLINGS))
@pytest.mark.parametrize("index", range(3), ids=SEGMENTS)
def test_any_other_spelling_of_a_valid_token_is_refused(spelled_token, verifier, index, respelling):
    respelled = _respell(spelled_token, index, RESPELLINGS[respelling])
    assert respelled != spelled_token
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(respelled)
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    assert "malformed" in caught.value.detail


def test_stray_bits_decode_to_the_same_bytes_leniently(spelled_token):
    """What makes the stray-bits case a respelling rather than a forgery: the bytes are the same."""
    for segment in spelled_token.split("."):
        assert forge.b64url_decode(_stray_bits(segment)) == forge.b64url_decode(segment)


def test_a_token_with_a_fourth_segment_or_none_is_refused(spelled_token, verifier):
    for token in (spelled_token + ".", spelled_token + ".e30", spelled_token.rsplit(".", 1)[0]):
        with pytest.raises(InvalidToken):
            verifier.verify(token)


def test_the_jwks_ignores_a_key_written_with_padding(store, clock):
    fetch = FakeFetch(store)
    kid, _ = store.active()
    jwk = dict(store.jwks()["keys"][0])
    fetch.document = {"keys": [{**jwk, "x": jwk["x"] + "="}]}
    assert RemoteKeySet(URL, fetch=fetch)(kid) is None  # a broken document: no keys from it
    fetch.document = None
    assert RemoteKeySet(URL, fetch=fetch)(kid) is not None


# --- tokens seen before: the verified-token memory ----------------------------------------------


class WallClock:
    """Seconds since the epoch, from now on, moved by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall_clock(monkeypatch) -> WallClock:
    """The verifier's clock, which PyJWT reads too: a token verified afresh is judged by the same
    time as a remembered one."""
    clock = WallClock()

    class ClockedDatetime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.fromtimestamp(clock.now, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", ClockedDatetime)
    return clock


@pytest.fixture
def signature_checks(monkeypatch) -> list[str]:
    """The tokens whose signature PyJWT checked, in order."""
    import shared.auth.tokens as tokens_module

    checked: list[str] = []
    decode = tokens_module.jwt.decode

    def counting_decode(token, *args, **kwargs):
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(tokens_module.jwt, "decode", counting_decode)
    return checked


def test_a_token_seen_before_is_not_verified_again(store, issuer, signature_checks):
    verifier = TokenVerifier(lambda kid: store.public_keys().get(kid), issuer=ISSUER, audience=AUDIENCE)
    token = _issue(issuer)
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert signature_checks == [token]


def _signed_now(store: SigningKeyStore, clock: WallClock) -> str:
    kid, key = store.active()
    return forge.sign_eddsa(key, kid, forge.claims(ISSUER, AUDIENCE, now=int(clock.now)))


def test_a_remembered_token_expires_on_time(store, wall_clock):
    verifier = TokenVerifier(
        lambda kid: store.public_keys().get(kid), issuer=ISSUER, audience=AUDIENCE, clock=wall_clock
    )
    token = _signed_now(store, wall_clock)
    expires_at = forge.unverified_claims(token)["exp"]
    assert verifier.verify(token).client_id == "cli_test_marketplace"

    # Within the leeway after exp it still passes, as on a first verification; then never again.
    wall_clock.now = expires_at + CLOCK_SKEW_SECONDS - 1
    assert verifier.verify(token).client_id == "cli_test_marketplace"
    wall_clock.now = expires_at + CLOCK_SKEW_SECONDS
    for _ in range(2):
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(token)
        assert caught.value.code == "token_expired"
    assert len(verifier.verified) == 0


def test_a_remembered_token_is_not_valid_before_its_time(store, wall_clock):
    # A clock stepped back after the token was verified: the token's nbf is honoured again.
    verifier = TokenVerifier(
        lambda kid: store.public_keys().get(kid), issuer=ISSUER, audience=AUDIENCE, clock=wall_clock
    )
    token = _signed_now(store, wall_clock)
    not_before = forge.unverified_claims(token)["nbf"]
    verifier.verify(token)
    wall_clock.now = not_before - CLOCK_SKEW_SECONDS - 1
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(token)
    wall_clock.now = not_before
    assert verifier.verify(token).client_id == "cli_test_marketplace"


def test_a_token_for_another_audience_is_refused_every_time(store, issuer, signature_checks):
    lookup = store.public_keys().get
    accounts = TokenVerifier(lookup, issuer=ISSUER, audience="hirfa-accounts")
    payments = TokenVerifier(lookup, issuer=ISSUER, audience=AUDIENCE)
    token = _issue(issuer, audiences=["hirfa-accounts"])
    assert accounts.verify(token).client_id == "cli_test_marketplace"
    assert accounts.verify(token).client_id == "cli_test_marketplace"

    for _ in range(3):
        with pytest.raises(InvalidToken, match="not meant for this service"):
            payments.verify(token)
    assert len(payments.verified) == 0
    assert signature_checks == [token] * 4  # accounts once, payments every time


def test_refused_tokens_are_not_remembered(store, verifier, forged):
    for token in forged.values():
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    assert len(verifier.verified) == 0


def test_another_spelling_of_a_remembered_token_is_still_refused(spelled_token, verifier):
    assert verifier.verify(spelled_token).client_id == "cli_test_marketplace"
    respelled = _respell(spelled_token, 2, RESPELLINGS["stray trailing bits"])
    with pytest.raises(InvalidToken, match="malformed"):
        verifier.verify(respelled)


def test_a_remembered_token_dies_with_its_retired_key(store, issuer, verifier):
    kid, _ = store.active()
    token = _issue(issuer)
    assert verifier.verify(token)
    store.generate()
    (store.directory / f"{kid}.pem").unlink()
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)
    assert len(verifier.verified) == 0


def test_a_remembered_token_is_checked_again_when_its_kid_names_another_key(store, issuer):
    kid, _ = store.active()
    keys = {kid: store.public_keys()[kid]}
    verifier = TokenVerifier(keys.get, issuer=ISSUER, audience=AUDIENCE)
    token = _issue(issuer)
    assert verifier.verify(token)
    keys[kid] = Ed25519PrivateKey.generate().public_key()  # the kid now names a stranger's key
    with pytest.raises(InvalidToken, match="could not be verified"):
        verifier.verify(token)


def test_a_refetched_key_set_keeps_remembered_tokens(store, issuer, clock, signature_checks):
    fetch = FakeFetch(store)
    verifier = TokenVerifier(
        RemoteKeySet(URL, cache_seconds=300, fetch=fetch), issuer=ISSUER, audience=AUDIENCE
    )
    token = _issue(issuer)
    verifier.verify(token)
    clock.advance(301)  # the JWKS is fetched again: new key objects, the same keys
    verifier.verify(token)
    assert len(fetch.calls) == 2
    assert signature_checks == [token]


def test_the_memory_is_bounded(store, issuer):
    verifier = TokenVerifier(store.public_keys().get, issuer=ISSUER, audience=AUDIENCE, cache_size=2)
    tokens = [_issue(issuer) for _ in range(3)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier.verified) == 2
    assert verifier.verified.get(tokens[0]) is None  # the least recently used went
    assert all(verifier.verify(token).client_id == "cli_test_marketplace" for token in tokens)
