"""``POST /v1/payments`` keeps its Idempotency-Key in the payment's own transaction: the key's
claim, the payment and the answer kept for retries are saved together or not at all.

Concurrent requests with one key make one payment and all get its answer; a retry gets the first
answer again, whatever happened to the payment since; another body with the key is refused; a
request that fails saves nothing, so the key can be used again; one that waits too long for the
holder of its key is told to retry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.orm import IdempotencyKey, Payee, PayeeMarketplace, Payment, Refund
from services.payments.adapters.repositories import payments
from services.payments.app import create_app
from services.payments.domain.gateway import GatewayRegistry, TokeniseRequest
from shared.db import is_postgres, utcnow
from shared.idempotency_store import IdempotencyStore
from tests.integration.conftest import MARKETPLACE, add_payee


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def app(make_payments_app, gateway):
    return make_payments_app(gateways=GatewayRegistry({"fake": gateway}), default_gateway="fake")


@pytest.fixture
def context(app):
    return app.extensions["hirfa"]


@pytest.fixture
def artisan(context) -> str:
    return add_payee(context)


@pytest.fixture
def create(app, artisan, marketplace_headers):
    def post(key: str, **changes):
        body = {
            "artisan_id": artisan,
            "amount": 15_000,
            "currency": "MAD",
            "application_fee": 1_500,
            "payment_method_type": "card",
            **changes,
        }
        return app.test_client().post("/v1/payments", json=body, headers=marketplace_headers(key))

    return post


def count(context, model, *where) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_a_hundred_concurrent_creations_with_one_key_make_one_payment(create, context):
    barrier = threading.Barrier(100)

    def send(_):
        barrier.wait()
        return create("one-order")

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(send, range(100)))
    assert {answer.status_code for answer in answers} == {201}, {a.status_code: a.json for a in answers}
    assert len({answer.json["id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 99
    assert count(context, Payment) == 1
    assert count(context, IdempotencyKey) == 1


def test_a_retry_gets_the_first_answer_even_after_the_payment_moved_on(
    create, app, gateway, marketplace_headers
):
    first = create("order-7", order_reference="ORD-7")
    assert first.status_code == 201, first.json
    card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
    confirmed = app.test_client().post(
        f"/v1/payments/{first.json['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
    )
    assert confirmed.json["status"] == "succeeded"

    again = create("order-7", order_reference="ORD-7")
    assert (again.status_code, again.get_data()) == (201, first.get_data())
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/payments/{first.json['id']}"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["status"] == "requires_confirmation"


def test_the_key_with_another_body_or_endpoint_is_refused(create, app, context, marketplace_headers):
    assert create("order-8").status_code == 201
    other_body = create("order-8", amount=16_000)
    assert (other_body.status_code, other_body.json["code"]) == (409, "idempotency_key_reuse")
    other_endpoint = app.test_client().post(
        "/v1/refunds", json={"payment_id": "pay_x"}, headers=marketplace_headers("order-8")
    )
    assert (other_endpoint.status_code, other_endpoint.json["code"]) == (409, "idempotency_key_reuse")
    assert count(context, Payment) == 1


def test_a_refused_creation_saves_nothing_and_its_key_can_be_used_again(create, context):
    refused = create("order-9", artisan_id="art_nobody_knows")
    assert (refused.status_code, refused.json["code"]) == (422, "payee_unknown")
    assert count(context, IdempotencyKey) == 0

    created = create("order-9")
    assert created.status_code == 201
    assert "Idempotent-Replayed" not in created.headers
    assert count(context, Payment) == 1


def test_a_failure_after_the_payment_was_written_leaves_neither_the_payment_nor_the_key(
    create, context, monkeypatch
):
    def lost(*_args, **_kwargs):
        raise RuntimeError("the process died before the answer was kept")

    with monkeypatch.context() as patched:
        patched.setattr(IdempotencyStore, "keep_response", lost)
        failed = create("order-10")
    assert failed.status_code == 500
    # One transaction: no payment without its kept answer, so no twin on the retry either.
    assert count(context, Payment) == 0
    assert count(context, IdempotencyKey) == 0

    retried = create("order-10")
    assert retried.status_code == 201
    assert count(context, Payment, Payment.creation_key == "order-10") == 1


def expire(context, key: str) -> None:
    """Age the key's idempotency record past its lifetime: a retry with the key starts over."""
    with context.session_factory() as session:
        aged = session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(created_at=utcnow() - dt.timedelta(days=3))
        )
        assert aged.rowcount == 1
        session.commit()


def test_a_key_reused_after_it_expired_gives_the_payment_it_made_never_a_twin(create, context):
    first = create("order-11")
    expire(context, "order-11")

    again = create("order-11")
    assert again.status_code == 201
    assert again.json["id"] == first.json["id"]
    assert count(context, Payment) == 1


def lose_eligibility(context, artisan: str) -> None:
    with context.session_factory() as session:
        session.execute(sa.update(Payee).where(Payee.artisan_id == artisan).values(kyc_tier=0))
        session.commit()


def leave_the_marketplace(context, artisan: str) -> None:
    with context.session_factory() as session:
        session.execute(sa.delete(PayeeMarketplace).where(PayeeMarketplace.artisan_id == artisan))
        session.commit()


@pytest.mark.parametrize(
    ("change", "refusal"),
    [(lose_eligibility, (409, "payee_not_eligible")), (leave_the_marketplace, (422, "payee_unknown"))],
)
def test_a_key_reused_after_it_expired_gives_its_payment_though_the_artisan_can_no_longer_take_one(
    create, context, artisan, change, refusal
):
    first = create("order-12")
    expire(context, "order-12")
    change(context, artisan)

    again = create("order-12")
    assert again.status_code == 201, again.json
    assert again.json == first.json
    assert again.headers["Location"] == f"/v1/payments/{first.json['id']}"
    # The gates still stand for a new payment: only the key's own payment is answered.
    refused = create("order-13")
    assert (refused.status_code, refused.json["code"]) == refusal
    assert count(context, Payment) == 1


def test_a_key_reused_after_it_expired_gives_its_payment_though_that_payment_fills_the_cap(
    create, app, context, gateway, marketplace_headers
):
    artisan = add_payee(context, cap=13_500)  # the artisan's share of one payment, exactly
    first = create("order-14", artisan_id=artisan)
    card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
    confirmed = app.test_client().post(
        f"/v1/payments/{first.json['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
    )
    assert confirmed.json["status"] == "succeeded"  # and on its way to the ledger: it holds the cap
    expire(context, "order-14")

    again = create("order-14", artisan_id=artisan)
    assert again.status_code == 201, again.json
    assert (again.json["id"], again.json["status"]) == (first.json["id"], "succeeded")
    refused = create("order-15", artisan_id=artisan)
    assert (refused.status_code, refused.json["code"]) == (409, "tier_limit_exceeded")
    assert count(context, Payment) == 1
    assert gateway.charge_count(first.json["id"]) == 1


def test_a_key_sent_with_spaces_around_it_is_the_same_key_even_after_it_expired(create, context):
    first = create(" order-16 ")
    assert first.status_code == 201, first.json
    expire(context, "order-16")

    again = create("order-16")
    assert again.status_code == 201, again.json
    assert again.json["id"] == first.json["id"]
    assert count(context, Payment) == 1
    assert count(context, Payment, Payment.creation_key == "order-16") == 1


@pytest.fixture
def paid(create, app, gateway, marketplace_headers):
    """A succeeded card payment, as its creation answered it."""
    created = create(str(uuid.uuid4()))
    card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
    confirmed = app.test_client().post(
        f"/v1/payments/{created.json['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
    )
    assert confirmed.json["status"] == "succeeded", confirmed.json
    return confirmed.json


@pytest.fixture
def refund(app, paid, marketplace_headers):
    def post(key: str):
        return app.test_client().post(
            "/v1/refunds", json={"payment_id": paid["id"], "amount": 1_000}, headers=marketplace_headers(key)
        )

    return post


def test_a_refund_key_sent_with_spaces_around_it_is_the_same_key_even_after_it_expired(refund, context):
    first = refund("refund-1 ")
    assert first.status_code == 201, first.json
    expire(context, "refund-1")

    again = refund("refund-1")
    assert again.status_code == 201, again.json
    assert again.json["id"] == first.json["id"]
    assert count(context, Refund) == 1


def test_a_refund_whose_answer_could_not_be_kept_is_answered_and_its_retry_finds_it(
    refund, context, monkeypatch, caplog
):
    """The refund is committed; then the connection that holds its key's claim drops before the
    answer is kept in it. The refund is done, so the client hears it rather than a 503; the claim
    went with the connection (on SQLite, committed apart, it is taken over after ``LOCK_SECONDS``),
    and a retry with the key finds the refund it made."""
    postgres = is_postgres(context.engine)
    if postgres:
        keep_response = IdempotencyStore.keep_response

        def on_a_dropped_connection(store, session, *args, **kwargs):
            backend = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with context.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            return keep_response(store, session, *args, **kwargs)

        monkeypatch.setattr(IdempotencyStore, "keep_response", on_a_dropped_connection)
    else:

        def on_a_dropped_connection(*_args, **_kwargs):
            raise sa.exc.OperationalError("UPDATE idempotency_keys", {}, ConnectionError("connection lost"))

        monkeypatch.setattr(IdempotencyStore, "complete", on_a_dropped_connection)

    with caplog.at_level(logging.WARNING, logger="shared.idempotency"):
        first = refund("refund-2")
    monkeypatch.undo()
    assert first.status_code == 201, first.json
    assert any(
        record.message == "could not keep the answer to an idempotent request" for record in caplog.records
    )

    if not postgres:
        busy = refund("refund-2")
        assert (busy.status_code, busy.json["code"]) == (409, "idempotency_key_in_progress")
        with context.session_factory() as session:
            session.execute(
                sa.update(IdempotencyKey)
                .where(IdempotencyKey.key == "refund-2")
                .values(locked_until=utcnow() - dt.timedelta(seconds=1))
            )
            session.commit()

    again = refund("refund-2")
    assert again.status_code == 201, again.json
    assert again.json["id"] == first.json["id"]
    assert count(context, Refund) == 1


def test_a_creation_gives_the_payment_as_stored_or_the_one_its_key_made(context, artisan):
    """Columns left to their defaults come back as the database stored them; a key already used
    gives the payment it made, not the one asked for."""
    asked = {
        "marketplace_id": MARKETPLACE,
        "artisan_id": artisan,
        "amount": 15_000,
        "currency": "MAD",
        "application_fee": 1_500,
        "payment_method_type": "card",
        "capture_method": "automatic",
        "status": "requires_confirmation",
        "creation_key": "order-17",
        "gateway": "fake",
    }
    with context.session_factory() as session:
        created = payments.add_unless_created(session, id="pay_first", **asked)
        again = payments.add_unless_created(session, id="pay_twin", **{**asked, "amount": 16_000})
        session.commit()
    with context.session_factory() as session:
        stored = session.get(Payment, "pay_first")
        columns = [attribute.key for attribute in sa.inspect(Payment).column_attrs]
        assert {name: getattr(created, name) for name in columns} == {
            name: getattr(stored, name) for name in columns
        }
    assert (created.metadata_json, created.amount_captured, created.ledger_posted) == ("{}", 0, False)
    assert created.created_at is not None
    assert (again.id, again.amount) == ("pay_first", 15_000)
    assert count(context, Payment) == 1


@pytest.fixture
def impatient_app(context, gateway):
    """The payments app with ``idempotency_wait_seconds`` at 0.3 s."""
    config = dataclasses.replace(context.config, idempotency_wait_seconds=0.3)
    app = create_app(
        config,
        key_lookup=context.token_verifier.key_lookup,
        gateways=GatewayRegistry({"fake": gateway}),
        default_gateway="fake",
    )
    yield app
    app.extensions["hirfa"].engine.dispose()


def test_a_request_whose_key_stays_held_too_long_is_told_to_retry(
    impatient_app, context, artisan, marketplace_headers
):
    """The key's holder is another request's open transaction: this one waits for it at most
    ``idempotency_wait_seconds``, then gets 409 with Retry-After, and runs once the holder gave up."""
    if not is_postgres(context.engine):
        pytest.skip("on SQLite a second writer waits for the database's own lock, not the key's")
    body = {
        "artisan_id": artisan,
        "amount": 15_000,
        "currency": "MAD",
        "application_fee": 1_500,
        "payment_method_type": "card",
    }
    key = str(uuid.uuid4())
    store = IdempotencyStore(context.session_factory, IdempotencyKey, dt.timedelta(hours=24))
    with context.session_factory() as holder:
        claimed = store.claim_in(
            holder, MARKETPLACE, key, "another request", method="POST", path="/v1/payments", wait_seconds=1
        )
        assert claimed is None
        started = time.monotonic()
        busy = impatient_app.test_client().post("/v1/payments", json=body, headers=marketplace_headers(key))
        waited = time.monotonic() - started
        assert (busy.status_code, busy.json["code"]) == (409, "idempotency_key_in_progress")
        assert busy.headers["Retry-After"] == "1"
        assert 0.3 <= waited < 5
        holder.rollback()  # the holder failed: its claim is gone

    created = impatient_app.test_client().post("/v1/payments", json=body, headers=marketplace_headers(key))
    assert created.status_code == 201, created.json
    assert count(context, Payment) == 1
