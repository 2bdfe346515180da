"""Artisans' sessions without I/O: the lockout count, refresh tokens, the device claim of an artisan
token, and the scope of an artisan device's Idempotency-Keys."""

from __future__ import annotations

import datetime as dt

from services.onboarding.domain.artisan_sessions import (
    FailureCount,
    LockoutPolicy,
    first_failure,
    hash_refresh_token,
    is_device_id,
    new_refresh_token,
)
from shared.auth.keys import SigningKeyStore
from shared.auth.principal import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.idempotency_store import key_lifetime

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
POLICY = LockoutPolicy(max_failed_codes=3, window=dt.timedelta(hours=1), lockout=dt.timedelta(minutes=30))


def test_wrong_codes_lock_the_number_once_too_many_fall_in_the_window():
    count = first_failure(NOW, POLICY)
    assert (count.failed_codes, count.is_locked(NOW)) == (1, False)
    count = count.after_failure(NOW + dt.timedelta(minutes=1), POLICY)
    assert (count.failed_codes, count.is_locked(NOW)) == (2, False)
    locked = count.after_failure(NOW + dt.timedelta(minutes=2), POLICY)
    assert locked.is_locked(NOW + dt.timedelta(minutes=31))
    assert not locked.is_locked(NOW + dt.timedelta(minutes=33))


def test_failures_older_than_the_window_do_not_count():
    count = FailureCount(2, NOW)
    later = count.after_failure(NOW + dt.timedelta(hours=2), POLICY)
    assert (later.failed_codes, later.window_started_at, later.locked_until) == (
        1,
        NOW + dt.timedelta(hours=2),
        None,
    )


def test_refresh_tokens_are_random_and_only_their_hash_is_kept():
    one, two = new_refresh_token(), new_refresh_token()
    assert one != two and one.startswith("hrt_") and len(one) > 40
    assert hash_refresh_token(one) == hash_refresh_token(one) != hash_refresh_token(two)
    assert one not in hash_refresh_token(one)


def test_device_ids():
    assert is_device_id("3f0c9a7e-5b1d-4e2a-9c61-0d2b7e8f4a10")
    for bad in ("short", "has space in it", "x" * 129, "é" * 10, ""):
        assert not is_device_id(bad)


def test_an_artisan_token_carries_its_device_and_other_tokens_none(tmp_path):
    keys = SigningKeyStore(tmp_path)
    keys.generate()
    issuer = TokenIssuer(keys, "https://auth.hirfa.ma", ttl_seconds=900)
    verifier = TokenVerifier(
        lambda kid: keys.public_keys().get(kid), "https://auth.hirfa.ma", "hirfa-accounts"
    )
    token, expires_in = issuer.issue(
        client_id="art_01JD8Z6W5Q0T2C7S9K3M4N5P6R",
        role=Role.ARTISAN,
        scopes=ROLE_SCOPES[Role.ARTISAN],
        audiences=["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"],
        device_id="device-0001",
    )
    principal = verifier.verify(token)
    assert expires_in == 900
    assert (principal.role, principal.device_id, principal.is_artisan) == (Role.ARTISAN, "device-0001", True)
    # A device claim means nothing on another role's token.
    marketplace, _ = issuer.issue(
        client_id="cli_m",
        role=Role.MARKETPLACE,
        scopes=ROLE_SCOPES[Role.MARKETPLACE],
        audiences=["hirfa-accounts"],
        device_id="device-0001",
    )
    assert verifier.verify(marketplace).device_id is None


def test_an_artisan_devices_keys_are_its_own_and_live_seven_days():
    artisan = Principal(
        "art_01JD8Z6W5Q0T2C7S9K3M4N5P6R", Role.ARTISAN, frozenset(), "tok", device_id="phone-one"
    )
    other_phone = Principal(artisan.client_id, Role.ARTISAN, frozenset(), "tok", device_id="phone-two")
    marketplace = Principal("cli_m", Role.MARKETPLACE, frozenset(), "tok")
    assert artisan.idempotency_scope.startswith(artisan.client_id + "/")
    assert artisan.idempotency_scope != other_phone.idempotency_scope
    assert len(artisan.idempotency_scope) <= 64  # the keys table's client_id column
    assert marketplace.idempotency_scope == "cli_m"
    day, week = dt.timedelta(hours=24), dt.timedelta(days=7)
    assert key_lifetime(is_artisan=True, ttl=day, artisan_ttl=week) == week
    assert key_lifetime(is_artisan=False, ttl=day, artisan_ttl=week) == day
    assert key_lifetime(is_artisan=True, ttl=dt.timedelta(days=10), artisan_ttl=week) == dt.timedelta(days=10)
