"""A PostgreSQL restart in the middle of a burst of requests: clients get 503 problem+json with
Retry-After (never a 500) while the database is away, and the pool reconnects by itself.

The test runs its own PostgreSQL server (its own port and data directory), never the shared one.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from services.onboarding.app import create_app as create_onboarding_app
from services.onboarding.config import OnboardingConfig
from services.onboarding.service_layer.api_clients import ensure_client
from shared.auth.scopes import Role
from shared.config import PROJECT_ROOT
from shared.db import run_migrations
from tests.conftest import ISSUER
from tests.integration.conftest import MARKETPLACE, MARKETPLACE_SECRET
from tests.support import POSTGRES_BIN, PostgresServer, artisan_body

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not PostgresServer.available(),
        reason=f"no initdb/pg_ctl in {POSTGRES_BIN} to run a PostgreSQL of our own",
    ),
]


@pytest.fixture(scope="module")
def own_postgres():
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def onboarding(own_postgres, signing_keys, tmp_path):
    url = own_postgres.create_database(f"onboarding_{uuid.uuid4().hex[:8]}")
    run_migrations(PROJECT_ROOT / "services" / "onboarding", url)
    config = OnboardingConfig(
        service_name="onboarding",
        signing_keys_dir=str(signing_keys.directory),
        database_url=url,
        var_dir=str(tmp_path),
        token_issuer=ISSUER,
        kafka_bootstrap_servers="127.0.0.1:1",
        log_json=True,
    )
    app = create_onboarding_app(config)
    ensure_client(
        app.extensions["hirfa"].uow_factory(),
        client_id=MARKETPLACE,
        client_secret=MARKETPLACE_SECRET,
        name="Test marketplace",
        role=Role.MARKETPLACE,
    )
    yield app
    app.extensions["hirfa"].engine.dispose()


class Burst:
    """Clients registering and reading artisans in a loop, each answer recorded."""

    def __init__(self, app, token: str, clients: int = 3) -> None:
        self.app = app
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: list[tuple[float, float, object]] = []  # (sent, answered, response)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        client = self.app.test_client()
        known: list[str] = []
        while not self.stop.is_set():
            sent = time.monotonic()
            if known and len(self.answers) % 2:
                response = client.get(f"/v1/artisans/{known[-1]}", headers=self.headers)
            else:
                response = client.post(
                    "/v1/artisans",
                    json=artisan_body(),
                    headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                if response.status_code == 201:
                    known.append(response.json["id"])
            self.answers.append((sent, time.monotonic(), response))

    def __enter__(self) -> Burst:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.answers) >= count, "the burst made no progress"


def assert_only_successes_and_503s(answers) -> list:
    unavailable = []
    for _, _, response in answers:
        assert response.status_code in (200, 201, 503), (
            response.status_code,
            response.get_data(as_text=True),
        )
        if response.status_code == 503:
            assert response.mimetype == "application/problem+json"
            assert response.json["code"] == "database_unavailable"
            assert response.json["status"] == 503
            assert int(response.headers["Retry-After"]) > 0
            unavailable.append(response)
    return unavailable


def assert_serves_again(app, token: str) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        created = client.post(
            "/v1/artisans", json=artisan_body(), headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        assert client.get(f"/v1/artisans/{created.json['id']}", headers=headers).status_code == 200


def test_a_restart_mid_burst_answers_503_never_500_and_the_pool_reconnects(
    own_postgres, onboarding, issue_token
):
    token = issue_token(Role.MARKETPLACE)
    with Burst(onboarding, token) as burst:
        burst.wait_for(20)
        restart_began = time.monotonic()
        own_postgres.restart()
        restart_ended = time.monotonic()
        burst.wait_for(len(burst.answers) + 30)
    assert_only_successes_and_503s(burst.answers)
    # The restart did happen in the middle of the burst: requests were in flight across it.
    assert any(sent < restart_ended and answered > restart_began for sent, answered, _ in burst.answers)
    assert_serves_again(onboarding, token)


def test_while_the_database_is_down_requests_answer_503_with_retry_after(
    own_postgres, onboarding, issue_token
):
    token = issue_token(Role.MARKETPLACE)
    with Burst(onboarding, token) as burst:
        burst.wait_for(20)
        own_postgres.shut_down()
        try:
            before = len(burst.answers)
            burst.wait_for(before + 6)  # each waits out the reconnection attempts, then gives up
        finally:
            own_postgres.start_again()
    unavailable = assert_only_successes_and_503s(burst.answers)
    assert len(unavailable) >= 3, "requests while the database was down should have answered 503"
    assert_serves_again(onboarding, token)
