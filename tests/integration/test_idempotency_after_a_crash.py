"""A request killed while it holds its Idempotency-Key (its process SIGKILLed, its connection cut)
never locks the key: on PostgreSQL the claim lives in the request's open transaction, which dies
with it, so the client's retry is applied at once instead of hearing ``idempotency_key_in_progress``."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import Artisan
from shared.db import is_postgres
from shared.idempotency_store import IdempotencyStore
from tests.integration.conftest import MARKETPLACE
from tests.support import artisan_body

pytestmark = pytest.mark.integration


def test_a_key_whose_request_died_is_taken_again_at_once(onboarding_app, onboarding, marketplace_headers):
    context = onboarding_app.extensions["hirfa"]
    with context.session_factory() as session:
        if not is_postgres(session):
            pytest.skip("SQLite claims are committed at once and taken over after LOCK_SECONDS")
    store = IdempotencyStore(context.session_factory, context.models.idempotency_key, dt.timedelta(hours=24))
    body = artisan_body()
    # The first request claims the key, then its process dies: its connection goes away with it.
    with store.hold(
        MARKETPLACE, "killed", "fingerprint", method="POST", path="/v1/artisans", wait_seconds=5
    ) as claim:
        assert claim.existing is None and claim.session is not None
        backend = claim.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with context.engine.connect() as other:
            assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()
        retried = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("killed"))
    assert retried.status_code == 201, retried.json
    replayed = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("killed"))
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json["id"] == retried.json["id"]
    with context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Artisan)) == 1


def test_a_retry_while_the_first_request_still_runs_is_told_it_is_in_progress(
    onboarding_app, onboarding, marketplace_headers
):
    context = onboarding_app.extensions["hirfa"]
    with context.session_factory() as session:
        if not is_postgres(session):
            pytest.skip("the claim held in an open transaction is PostgreSQL's")
    store = IdempotencyStore(context.session_factory, context.models.idempotency_key, dt.timedelta(hours=24))
    with store.hold(
        MARKETPLACE, "running", "fingerprint", method="POST", path="/v1/artisans", wait_seconds=5
    ):
        busy = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("running"))
    assert busy.status_code == 409 and busy.json["code"] == "idempotency_key_in_progress"
    assert busy.headers["Retry-After"] == "1"
