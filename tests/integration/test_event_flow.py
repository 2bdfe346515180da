"""Events through the real embedded broker: outbox -> relay -> Kafka -> consumers -> effects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer

from services.accounts.adapters.orm import LedgerAccount
from services.accounts.adapters.orm import OutboxMessage as AccountsOutbox
from services.accounts.service_layer.projections import make_handlers as make_accounts_handlers
from services.onboarding.adapters.orm import OutboxMessage as OnboardingOutbox
from services.payments.adapters.orm import Payee
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.events.replay import replay_outbox
from shared.runtime import make_event_consumer, make_relay
from tests.support import Broker, artisan_body, wait_until


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker per test: topics start empty, so earlier tests' events cannot leak in."""
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


def with_broker(app, bootstrap: str, **overrides):
    """Point an app's context at the test broker (and short consumer timeouts)."""
    context = app.extensions["hirfa"]
    context.config = dataclasses.replace(
        context.config,
        kafka_bootstrap_servers=bootstrap,
        consumer_session_timeout_ms=6000,
        relay_poll_interval_seconds=0.05,
        **overrides,
    )
    return context


class Worker:
    """Runs a relay or consumer loop in a thread, as its process would."""

    def __init__(self, loop):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=loop, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "worker did not stop gracefully"


class Workers:
    def __init__(self) -> None:
        self.started: list[Worker] = []

    def __call__(self, loop) -> Worker:
        worker = Worker(loop)
        self.started.append(worker)
        return worker

    def close_all(self) -> None:
        while self.started:
            self.started.pop().close()


@pytest.fixture
def workers():
    workers = Workers()
    yield workers
    workers.close_all()


def count(context, model, *where) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def values(context, column) -> set:
    # A session left open would keep its transaction, and on SQLite the database's write lock, until
    # garbage collection: the next test's table cleaning then fails with "database is locked".
    with context.session_factory() as session:
        return set(session.scalars(sa.select(column)))


def register(onboarding, marketplace_headers, **overrides) -> str:
    response = onboarding.post(
        "/v1/artisans", json=artisan_body(**overrides), headers=marketplace_headers(str(uuid.uuid4()))
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_registration_reaches_accounts_and_payments(
    fresh_broker, onboarding, onboarding_app, accounts_app, payments_app, marketplace_headers, workers
):
    onboarding_ctx = with_broker(onboarding_app, fresh_broker.bootstrap)
    accounts_ctx = with_broker(accounts_app, fresh_broker.bootstrap)
    payments_ctx = with_broker(payments_app, fresh_broker.bootstrap)

    artisan_id = register(onboarding, marketplace_headers)
    workers(make_relay(onboarding_ctx).run)
    workers(make_event_consumer(accounts_ctx, make_accounts_handlers("MAD"), ["onboarding.events"]).run)
    workers(make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"]).run)
    accounts_relay = make_relay(accounts_ctx)
    workers(accounts_relay.run)

    headers = marketplace_headers()
    balance = wait_until(
        lambda: (
            (
                r := accounts_app.test_client().get(f"/v1/artisans/{artisan_id}/balance", headers=headers)
            ).status_code
            == 200
            and r
        ),
        message="ledger accounts",
    )
    assert balance.json == {
        "object": "balance",
        "artisan_id": artisan_id,
        "pending": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
        "available": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
        "kyc_tier": 0,
        "cap": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
    }
    payee = wait_until(
        lambda: (
            (r := payments_app.test_client().get(f"/v1/payees/{artisan_id}", headers=headers)).status_code
            == 200
            and r
        ),
        message="payee projection",
    )
    assert payee.json["kyc_tier"] == 0 and payee.json["can_accept_payments"] is False

    # Another marketplace sees neither.
    other = marketplace_headers(client_id="cli_other_marketplace")
    assert (
        accounts_app.test_client().get(f"/v1/artisans/{artisan_id}/balance", headers=other).status_code == 404
    )
    assert payments_app.test_client().get(f"/v1/payees/{artisan_id}", headers=other).status_code == 404

    # Onboarding's outbox is drained; accounts announced the accounts it opened.
    wait_until(lambda: count(onboarding_ctx, OnboardingOutbox, OnboardingOutbox.published_at.is_(None)) == 0)
    wait_until(
        lambda: count(accounts_ctx, AccountsOutbox, AccountsOutbox.published_at.is_not(None)) == 1,
        message="accounts event published",
    )
    assert count(accounts_ctx, AccountsOutbox) == 1


def test_replayed_events_have_no_second_effect(
    fresh_broker, onboarding, onboarding_app, accounts_app, marketplace_headers, workers
):
    onboarding_ctx = with_broker(onboarding_app, fresh_broker.bootstrap)
    accounts_ctx = with_broker(accounts_app, fresh_broker.bootstrap)
    artisan_ids = [register(onboarding, marketplace_headers) for _ in range(3)]
    assert make_relay(onboarding_ctx).publish_batch().published == 3

    producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap, acks="all")
    replayed = replay_outbox(
        session_factory=onboarding_ctx.session_factory,
        outbox_model=OnboardingOutbox,
        producer=producer,
        since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
    )
    producer.close()
    assert replayed == 3

    consumer = make_event_consumer(accounts_ctx, make_accounts_handlers("MAD"), ["onboarding.events"])
    applied = []
    original_apply_batch = consumer.apply_batch

    def apply_then_record(events):
        # Recorded once the batch has committed, so the counts below never race the transaction.
        result = original_apply_batch(events)
        applied.extend(e.id for e in events)
        return result

    consumer.apply_batch = apply_then_record
    workers(consumer.run)
    wait_until(lambda: len(applied) == 6, message="all six deliveries")
    assert count(accounts_ctx, LedgerAccount) == 6  # pending + available for each of 3 artisans, once
    assert set(artisan_ids) == values(accounts_ctx, LedgerAccount.owner_id)


def test_poison_message_goes_to_dead_letter_and_processing_continues(
    fresh_broker, onboarding, onboarding_app, payments_app, marketplace_headers, workers
):
    onboarding_ctx = with_broker(onboarding_app, fresh_broker.bootstrap)
    payments_ctx = with_broker(payments_app, fresh_broker.bootstrap)
    relay = make_relay(onboarding_ctx)
    first = register(onboarding, marketplace_headers)
    assert relay.publish_batch().published == 1

    producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap, acks="all")
    producer.send("onboarding.events", key=first.encode(), value=b"{not json").get(10)
    producer.send(
        "onboarding.events",
        key=first.encode(),
        value=b'{"id":"evt_01M83C1NV0ZQDY5JVSH4E6Y0MW","type":"onboarding.artisan.registered","source":"onboarding",'
        b'"subject":"x","time":"2026-11-23T00:00:00Z","schema_version":1,"data":{"artisan_id":"nope"}}',
    ).get(10)
    producer.close()
    second = register(onboarding, marketplace_headers)
    assert relay.publish_batch().published == 1

    workers(make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"]).run)
    wait_until(lambda: count(payments_ctx, Payee) == 2, message="both valid events applied")
    assert {first, second} == values(payments_ctx, Payee.artisan_id)

    dead = KafkaConsumer(
        "payments.dead-letter",
        bootstrap_servers=fresh_broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        group_id=None,
    )
    letters = []
    for message in dead:
        letters.append(message)
        if len(letters) == 2:
            break
    dead.close()
    assert len(letters) == 2
    errors = [dict(m.headers)["error"].decode() for m in letters]
    assert errors[0].startswith("not JSON")
    assert errors[1].startswith("schema violation")
    assert dict(letters[0].headers)["original_topic"] == b"onboarding.events"


def test_outbox_keeps_events_while_the_broker_is_down(
    tmp_path, onboarding, onboarding_app, payments_app, marketplace_headers, workers
):
    """Broker down: registrations still succeed; the events wait and arrive once it is back."""
    broker = Broker(tmp_path / "broker.log")  # not started yet
    onboarding_ctx = with_broker(onboarding_app, broker.bootstrap, relay_max_backoff_seconds=1.0)
    payments_ctx = with_broker(payments_app, broker.bootstrap)
    relay = make_relay(onboarding_ctx)
    relay.send_timeout = 2.0

    artisan_id = register(onboarding, marketplace_headers)
    result = relay.publish_batch()
    assert result.published == 0 and result.failed == 1 and result.error
    with onboarding_ctx.session_factory() as session:
        row = session.scalars(sa.select(OnboardingOutbox)).one()
        assert row.published_at is None and row.attempts == 1 and row.last_error

    broker.start()
    try:
        workers(relay.run)
        workers(make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"]).run)
        wait_until(lambda: count(payments_ctx, Payee) == 1, timeout=45, message="event after broker returned")
        assert values(payments_ctx, Payee.artisan_id) == {artisan_id}
    finally:
        workers.close_all()  # before the broker goes, so they stop cleanly
        broker.stop()
