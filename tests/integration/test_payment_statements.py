"""How much SQL a payment request costs: a regression guard on statement counts, not a timing test.

``POST /v1/payments`` is one transaction of four statements: the Idempotency-Key claimed, the
payee locked (its marketplace checked in the same statement), the payment inserted if what the
artisan holds leaves room under their cap (summed in the same statement), the answer kept for
retries. A confirmation is two transactions around the
gateway call: the payee and the payment locked, the cap summed and ``processing``
written; then the payment locked again, its gateway attempt, its new state, the news of it (outbox
and webhook event). A change that adds a round trip fails here; lower the numbers when a change
removes one. ``make bench`` (tests/bench_payments.py) measures what these numbers buy.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.domain.gateway import GatewayRegistry, TokeniseRequest
from tests.integration.conftest import add_payee

# Statements of one creation (one transaction) and of one card confirmation that succeeds.
CREATE = 4
CONFIRM = 11


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def app(make_payments_app, gateway):
    return make_payments_app(gateways=GatewayRegistry({"fake": gateway}), default_gateway="fake")


@pytest.fixture
def engine(app) -> sa.Engine:
    return app.extensions["hirfa"].engine


@pytest.fixture
def artisan(app) -> str:
    return add_payee(app.extensions["hirfa"])


@contextlib.contextmanager
def statements(engine: sa.Engine) -> Iterator[dict[str, list[str]]]:
    """The SQL statements run on ``engine`` meanwhile (but for SQLite's ``BEGIN IMMEDIATE``), the
    commits, and the connections taken from the pool."""
    seen: dict[str, list[str]] = {"statements": [], "commits": [], "checkouts": []}

    def statement(conn, cursor, text, parameters, context, executemany) -> None:
        if not text.startswith("BEGIN"):
            seen["statements"].append(text)

    def commit(conn) -> None:
        seen["commits"].append("COMMIT")

    def checkout(dbapi_connection, record, proxy) -> None:
        seen["checkouts"].append("checkout")

    listeners = [
        (engine, "before_cursor_execute", statement),
        (engine, "commit", commit),
        (engine.pool, "checkout", checkout),
    ]
    for target, name, listener in listeners:
        sa.event.listen(target, name, listener)
    try:
        yield seen
    finally:
        for target, name, listener in listeners:
            sa.event.remove(target, name, listener)


def create(app, artisan: str, marketplace_headers):
    body = {
        "artisan_id": artisan,
        "amount": 15_000,
        "currency": "MAD",
        "application_fee": 1_500,
        "payment_method_type": "card",
    }
    return app.test_client().post("/v1/payments", json=body, headers=marketplace_headers(str(uuid.uuid4())))


def test_creating_a_payment_is_one_transaction_of_four_statements(app, engine, artisan, marketplace_headers):
    create(app, artisan, marketplace_headers)  # the statements are built and compiled once
    with statements(engine) as seen:
        created = create(app, artisan, marketplace_headers)
    assert created.status_code == 201, created.json
    assert len(seen["statements"]) <= CREATE, seen["statements"]
    assert len(seen["commits"]) == 1
    assert len(seen["checkouts"]) == 1


def test_a_replayed_creation_reads_the_kept_answer_and_writes_nothing(
    app, engine, artisan, marketplace_headers
):
    headers = marketplace_headers("replayed")
    body = {
        "artisan_id": artisan,
        "amount": 15_000,
        "currency": "MAD",
        "application_fee": 1_500,
        "payment_method_type": "card",
    }
    first = app.test_client().post("/v1/payments", json=body, headers=headers)
    with statements(engine) as seen:
        again = app.test_client().post("/v1/payments", json=body, headers=headers)
    assert again.get_data() == first.get_data()
    # The claim that finds the key taken, and the read of its answer; nothing committed.
    assert len(seen["statements"]) == 2, seen["statements"]
    assert seen["commits"] == []


def test_confirming_a_card_payment_costs_eleven_statements(
    app, engine, gateway, artisan, marketplace_headers
):
    card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
    payment = create(app, artisan, marketplace_headers).json
    with statements(engine) as seen:
        confirmed = app.test_client().post(
            f"/v1/payments/{payment['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
        )
    assert confirmed.json["status"] == "succeeded"
    assert len(seen["statements"]) <= CONFIRM, seen["statements"]
    assert len(seen["commits"]) == 2  # before the gateway call, and after it
