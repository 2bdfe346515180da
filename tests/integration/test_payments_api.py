"""Payments over HTTP against the in-memory gateway: creation rules, confirmation outcomes, capture,
cancel, refunds, disputes, callbacks, recovery and marketplace isolation.

The same flows run against the M2T sandbox process in tests/e2e/test_payments_path.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import uuid

import pytest
import sqlalchemy as sa

from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.orm import (
    GatewayAttempt,
    GatewayCallbackReceipt,
    OutboxMessage,
    Payee,
    PayeeMarketplace,
    Payment,
    Refund,
    WebhookEvent,
)
from services.payments.domain.gateway import (
    AuthoriseRequest,
    GatewayRegistry,
    PaymentMethod,
    RefundStatus,
    RequestToPay,
    TokeniseRequest,
    TransactionStatus,
    VoidRequest,
)
from services.payments.service_layer.backlogs import WorkerBacklogsCollector
from services.payments.service_layer.ownership import visible_payment
from services.payments.service_layer.projections import on_ledger_entry_posted
from services.payments.service_layer.recovery import recover_waiting
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import utcnow
from shared.events import make_event
from shared.ids import new_id
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.support import collected

CAP_TIER_3 = 2_000_000


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def payments_app(make_payments_app, gateway):
    return make_payments_app(gateways=GatewayRegistry({"fake": gateway}), default_gateway="fake")


@pytest.fixture
def service(payments_app):
    context = payments_app.extensions["hirfa"]
    return context, context.payments


@pytest.fixture
def client(payments_app, service):
    return payments_app.test_client()


@pytest.fixture
def payee(service):
    """add_payee(tier=3, cap=…, marketplace=…) -> artisan id, known to payments as onboarding would tell it."""
    context, _ = service

    def add(
        tier: int = 3, cap: int = CAP_TIER_3, marketplace: str = MARKETPLACE, status: str = "active"
    ) -> str:
        artisan_id = new_id("art")
        with context.uow_factory() as uow:
            uow.session.add(
                Payee(
                    artisan_id=artisan_id,
                    kyc_tier=tier,
                    tier_cap_amount=cap,
                    currency="MAD",
                    payout_eligible=tier >= 1,
                    kyc_status=status,
                    kyc_version=1,
                    as_of=utcnow(),
                )
            )
            uow.session.flush()
            uow.session.add(PayeeMarketplace(artisan_id=artisan_id, marketplace_id=marketplace))
            uow.commit()
        return artisan_id

    return add


@pytest.fixture
def api(client, marketplace_headers):
    class Api:
        def create(self, artisan_id, *, key=None, client_id=MARKETPLACE, **fields):
            body = {
                "artisan_id": artisan_id,
                "amount": 15000,
                "currency": "MAD",
                "application_fee": 1500,
                "payment_method_type": "card",
                **fields,
            }
            return client.post(
                "/v1/payments",
                json=body,
                headers=marketplace_headers(key or str(uuid.uuid4()), client_id=client_id),
            )

        def confirm(self, payment_id, client_id=MARKETPLACE, **body):
            return client.post(
                f"/v1/payments/{payment_id}/confirm",
                json=body,
                headers=marketplace_headers(client_id=client_id),
            )

        def get(self, payment_id, client_id=MARKETPLACE):
            return client.get(f"/v1/payments/{payment_id}", headers=marketplace_headers(client_id=client_id))

        def post(self, path, body=None, key=None, client_id=MARKETPLACE):
            return client.post(
                path,
                json=body if body is not None else {},
                headers=marketplace_headers(key, client_id=client_id),
            )

        def refund(self, payment_id, key=None, **fields):
            return client.post(
                "/v1/refunds",
                json={"payment_id": payment_id, **fields},
                headers=marketplace_headers(key or str(uuid.uuid4())),
            )

    return Api()


def token(gateway: FakeGateway, number: str) -> str:
    return gateway.tokenise(TokeniseRequest(number, 12, 2030, "123")).token


def events(context, event_type: str) -> list[dict]:
    with context.uow_factory() as uow:
        rows = uow.session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.seq)
        )
        return [json.loads(row.payload)["data"] for row in rows]


def webhook_types(context, payment_id: str) -> list[str]:
    """The webhook events recorded for a payment, in order."""
    with context.uow_factory() as uow:
        return list(
            uow.session.scalars(
                sa.select(WebhookEvent.type)
                .where(WebhookEvent.object_id == payment_id)
                .order_by(WebhookEvent.sequence)
            )
        )


def attempts_of(context, payment_id: str) -> list[GatewayAttempt]:
    with context.uow_factory() as uow:
        return list(
            uow.session.scalars(
                sa.select(GatewayAttempt)
                .where(GatewayAttempt.payment_id == payment_id)
                .order_by(GatewayAttempt.id)
            )
        )


def attempt_rows(context, payment_id: str, *, since: int = 0) -> list[tuple]:
    """``(operation, outcome, error_code, raw_status, amount)`` of the payment's attempts, from ``since`` on."""
    return [
        (a.operation, a.outcome, a.error_code, a.raw_status, a.amount)
        for a in attempts_of(context, payment_id)[since:]
    ]


@contextlib.contextmanager
def logged(logger_name: str):
    """The records ``logger_name`` emits meanwhile (caplog-free: the suite may run with ``-p no:logging``)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def deliver_callbacks(client, gateway: FakeGateway) -> list:
    return [
        client.post("/v1/gateways/fake/callbacks", data=body, headers=headers)
        for headers, body in gateway.drain_callbacks()
    ]


def paid(api, gateway, payee, **fields) -> dict:
    payment = api.create(payee(), **fields).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    assert answer.json["status"] == "succeeded", answer.json
    return answer.json


# -- creating ----------------------------------------------------------------------------------------


def test_a_created_payment_waits_for_confirmation_and_a_replayed_key_returns_it(api, payee):
    artisan_id = payee()
    first = api.create(artisan_id, key="order-1", order_reference="ORD-1", metadata={"cart": "42"})
    assert first.status_code == 201, first.json
    assert first.json["status"] == "requires_confirmation"
    assert first.json["amount"] == {"amount": 15000, "currency": "MAD"}
    assert first.json["net"] == {"amount": 13500, "currency": "MAD"}
    assert first.json["metadata"] == {"cart": "42"}
    again = api.create(artisan_id, key="order-1", order_reference="ORD-1", metadata={"cart": "42"})
    assert again.json["id"] == first.json["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"amount": 50}, 422, "amount_out_of_range"),
        ({"amount": 10**9}, 422, "amount_out_of_range"),
        ({"currency": "EUR"}, 422, "unsupported_currency"),
        ({"application_fee": 20000}, 422, "application_fee_exceeds_amount"),
        ({"amount": 150.5}, 422, "validation_error"),
        ({"payment_method_type": "cash"}, 422, "validation_error"),
    ],
)
def test_bad_amounts_are_refused_with_a_stable_code(api, payee, change, status, code):
    answer = api.create(payee(), **change)
    assert answer.status_code == status, answer.json
    assert answer.json["code"] == code


def test_an_unknown_payee_or_another_marketplaces_artisan_is_refused(api, payee):
    assert api.create(new_id("art")).json["code"] == "payee_unknown"
    theirs = payee(marketplace=OTHER_MARKETPLACE)
    answer = api.create(theirs)
    assert answer.status_code == 422 and answer.json["code"] == "payee_unknown"


@pytest.mark.parametrize(("tier", "status"), [(0, "active"), (2, "rejected")])
def test_a_payee_at_tier_0_or_rejected_cannot_be_paid(api, payee, tier, status):
    answer = api.create(payee(tier=tier, cap=0 if tier == 0 else 500000, status=status))
    assert answer.status_code == 409 and answer.json["code"] == "payee_not_eligible"


def test_the_tier_cap_is_refused_before_any_gateway_call(api, payee, gateway, service):
    context, _ = service
    artisan_id = payee(tier=1, cap=20000)
    answer = api.create(artisan_id, amount=25000, application_fee=2000)
    assert answer.status_code == 409
    assert answer.json["code"] == "tier_limit_exceeded"
    assert answer.json["tier_cap"] == {"amount": 20000, "currency": "MAD"}
    with context.uow_factory() as uow:
        assert uow.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0
        assert uow.session.scalar(sa.select(sa.func.count()).select_from(GatewayAttempt)) == 0


def test_payments_on_their_way_and_the_ledger_balance_count_against_the_cap(api, payee, gateway, service):
    context, _ = service
    artisan_id = payee(tier=1, cap=20000)
    first = api.create(artisan_id, amount=15000, application_fee=0).json
    assert (
        api.confirm(first["id"], card_token=token(gateway, "4242424242424242")).json["status"] == "succeeded"
    )
    # 15000 succeeded but not yet in the ledger: only 5000 of headroom left.
    refused = api.create(artisan_id, amount=6000, application_fee=0)
    assert refused.json["code"] == "tier_limit_exceeded"
    assert refused.json["headroom"] == {"amount": 5000, "currency": "MAD"}
    # The ledger posts it (15000 pending) and then a refund of 10000 leaves 5000 held.
    for amount, cause, cause_id in ((-15000, "payment", first["id"]), (10000, "refund", new_id("re"))):
        with context.uow_factory() as uow:
            on_ledger_entry_posted(uow, ledger_entry(artisan_id, amount, cause, cause_id))
            uow.commit()
    assert api.create(artisan_id, amount=15000, application_fee=0).status_code == 201
    assert api.create(artisan_id, amount=15001, application_fee=0).json["code"] == "tier_limit_exceeded"


def test_a_partial_capture_counts_against_the_cap_by_what_was_captured(api, payee, gateway):
    artisan_id = payee(tier=1, cap=20000)
    payment = api.create(artisan_id, capture_method="manual", amount=20000, application_fee=2000).json
    api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    # Authorised: all 18000 may yet be captured.
    assert api.create(artisan_id, amount=2001, application_fee=0).json["code"] == "tier_limit_exceeded"
    captured = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 12000}).json
    assert captured["status"] == "succeeded" and captured["net"]["amount"] == 10000
    # Not in the ledger yet: it counts 12000 captured less the whole 2000 commission (as the ledger
    # will be told), not the 18000 it was authorised for.
    refused = api.create(artisan_id, amount=10001, application_fee=0)
    assert refused.json["code"] == "tier_limit_exceeded"
    assert refused.json["headroom"] == {"amount": 10000, "currency": "MAD"}
    assert api.create(artisan_id, amount=10000, application_fee=0).status_code == 201


def ledger_entry(artisan_id: str, artisan_line: int, cause: str, cause_id: str):
    """accounts.ledger.entry_posted moving the artisan's pending balance by ``-artisan_line`` (credit < 0)."""
    return make_event(
        "accounts.ledger.entry_posted",
        subject=new_id("je"),
        key=artisan_id,
        data={
            "entry_id": new_id("je"),
            "cause": cause,
            "cause_id": cause_id,
            "event_id": None,
            "artisan_id": artisan_id,
            "description": "test",
            "posted_at": utcnow().isoformat(),
            "lines": [
                {
                    "account": f"artisan:{artisan_id}:pending",
                    "owner_type": "artisan",
                    "owner_id": artisan_id,
                    "kind": "pending",
                    "amount": artisan_line,
                    "currency": "MAD",
                },
                {
                    "account": "platform:gateway_receivable:fake",
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable",
                    "amount": -artisan_line,
                    "currency": "MAD",
                },
            ],
        },
    )


def test_ledger_news_before_the_artisans_registration_is_kept(service):
    context, _ = service
    artisan_id = new_id("art")
    with context.uow_factory() as uow:
        on_ledger_entry_posted(uow, ledger_entry(artisan_id, -5000, "payment", new_id("pay")))
        uow.commit()
    with context.uow_factory() as uow:
        payee = uow.session.get(Payee, artisan_id)
        assert (payee.kyc_tier, payee.tier_cap_amount, payee.ledger_balance) == (0, 0, 5000)


# -- confirming with a card ------------------------------------------------------------------------------


def test_an_approved_card_succeeds_and_leaves_one_event_with_amount_fee_and_net(api, payee, gateway, service):
    context, _ = service
    payment = api.create(payee(), amount=15000, application_fee=1500).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "succeeded"
    assert answer.json["card"] == {"brand": "visa", "last4": "4242", "country": "US"}
    [event] = events(context, "payments.payment.succeeded")
    assert event["payment_id"] == payment["id"]
    assert event["amount"] == {"amount": 15000, "currency": "MAD"}
    assert event["application_fee"] == {"amount": 1500, "currency": "MAD"}
    assert event["net"] == {"amount": 13500, "currency": "MAD"}
    assert event["method"] == "card" and event["gateway"] == "fake"
    assert event["gateway_reference"] == answer.json["gateway_reference"]
    with context.uow_factory() as uow:
        attempts = uow.session.scalars(
            sa.select(GatewayAttempt).where(GatewayAttempt.payment_id == payment["id"])
        )
        [attempt] = list(attempts)
        assert (attempt.operation, attempt.outcome, attempt.raw_status) == ("authorise", "ok", "captured")
        assert attempt.idempotency_key == f"{payment['id']}:authorise"


def test_the_moroccan_cmi_card_is_approved(api, payee, gateway):
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "6500000000000002"))
    assert answer.json["status"] == "succeeded"
    assert answer.json["card"]["brand"] == "cmi" and answer.json["card"]["country"] == "MA"


@pytest.mark.parametrize(
    ("number", "failure_code"),
    [("4000000000009995", "insufficient_funds"), ("4000000000009979", "stolen_card")],
)
def test_a_declined_card_fails_with_the_reason_and_an_event(
    api, payee, gateway, service, number, failure_code
):
    context, _ = service
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, number))
    assert answer.json["status"] == "failed"
    assert answer.json["failure_code"] == failure_code
    assert answer.json["failure_message"]
    [event] = events(context, "payments.payment.failed")
    assert event["failure_code"] == failure_code
    assert events(context, "payments.payment.succeeded") == []


def test_confirming_twice_is_an_invalid_state_and_the_method_must_match(api, payee, gateway):
    payment = api.create(payee()).json
    wrong = api.confirm(payment["id"], phone="+212612345678")
    assert wrong.status_code == 422 and wrong.json["code"] == "payment_method_mismatch"
    api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    again = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    assert again.status_code == 409
    assert again.json["code"] == "invalid_state" and again.json["payment_status"] == "succeeded"


def test_three_d_secure_round_trip_back_to_the_marketplace(api, payee, gateway, client):
    payment = api.create(payee()).json
    answer = api.confirm(
        payment["id"],
        card_token=token(gateway, "4000000000003220"),
        return_url="https://shop.example/orders/1",
    )
    assert answer.json["status"] == "requires_action"
    assert answer.json["next_action"]["type"] == "redirect_to_url"
    assert answer.json["next_action"]["redirect_url"]
    back = client.get(f"/v1/payments/{payment['id']}/three-ds-return")
    assert api.get(payment["id"]).json["status"] == "requires_action"  # the buyer has not answered yet
    gateway.complete_challenge(answer.json["gateway_reference"], "authenticate")
    back = client.get(f"/v1/payments/{payment['id']}/three-ds-return")
    assert back.status_code == 303
    assert (
        back.headers["Location"]
        == f"https://shop.example/orders/1?payment_id={payment['id']}&status=succeeded"
    )
    assert api.get(payment["id"]).json["status"] == "succeeded"


def test_failing_three_d_secure_fails_the_payment(api, payee, gateway, client):
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4000000000003220"))
    gateway.complete_challenge(answer.json["gateway_reference"], "fail")
    back = client.get(f"/v1/payments/{payment['id']}/three-ds-return")
    assert back.status_code == 200 and back.json["status"] == "failed"
    assert api.get(payment["id"]).json["failure_code"] == "authentication_failed"


# -- wallets -------------------------------------------------------------------------------------------


def test_a_wallet_approval_arrives_by_callback(api, payee, gateway, client, service):
    context, _ = service
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    answer = api.confirm(payment["id"], phone="0600000001")
    assert answer.json["status"] == "requires_action"
    assert answer.json["next_action"]["type"] == "wallet_approval"
    assert answer.json["next_action"]["expires_at"]
    assert answer.json["wallet_phone_last4"] == "0001"
    gateway.answer_wallet(answer.json["gateway_reference"])
    acks = deliver_callbacks(client, gateway)
    assert all(ack.status_code == 200 for ack in acks)
    assert api.get(payment["id"]).json["status"] == "succeeded"
    assert len(events(context, "payments.payment.succeeded")) == 1


def test_a_declined_wallet_fails(api, payee, gateway, client):
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    answer = api.confirm(payment["id"], phone="+212600000002")
    gateway.answer_wallet(answer.json["gateway_reference"])
    deliver_callbacks(client, gateway)
    got = api.get(payment["id"]).json
    assert got["status"] == "failed" and got["failure_code"] == "wallet_declined"


def test_an_unanswered_wallet_request_expires_through_recovery(api, payee, gateway, service):
    context, settings = service
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    answer = api.confirm(payment["id"], phone="+212600000003")
    gateway.expire(answer.json["gateway_reference"])  # no callback: the wallet never answers
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    counts = recover_waiting(context.uow_factory, settings, now=later)
    assert counts["payments_settled"] == 1
    got = api.get(payment["id"]).json
    assert got["status"] == "failed" and got["failure_code"] == "wallet_request_expired"


def test_an_abandoned_three_d_secure_challenge_is_voided_and_canceled(api, payee, gateway, service):
    context, settings = service
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4000000000003220"))
    assert answer.json["status"] == "requires_action"
    before = utcnow() + settings.action_expiry - dt.timedelta(seconds=5)
    assert recover_waiting(context.uow_factory, settings, now=before)["payments_expired"] == 0
    later = utcnow() + settings.action_expiry + dt.timedelta(seconds=1)
    assert recover_waiting(context.uow_factory, settings, now=later)["payments_expired"] == 1
    got = api.get(payment["id"]).json
    assert (got["status"], got["cancellation_reason"]) == ("canceled", "abandoned")
    assert gateway.transaction(got["gateway_reference"]).status is TransactionStatus.VOIDED


def test_an_authorisation_never_captured_expires(api, payee, gateway, service):
    context, settings = service
    payment = api.create(payee(), capture_method="manual").json
    api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    later = utcnow() + settings.authorisation_expiry + dt.timedelta(seconds=1)
    recover_waiting(context.uow_factory, settings, now=later)
    got = api.get(payment["id"]).json
    assert (got["status"], got["cancellation_reason"]) == ("canceled", "authorisation_expired")
    assert events(context, "payments.payment.succeeded") == []


# -- callbacks ---------------------------------------------------------------------------------------


def test_callbacks_duplicate_out_of_order_and_badly_signed(api, payee, gateway, client, service):
    context, _ = service
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    reference = api.confirm(payment["id"], phone="+212600000001").json["gateway_reference"]
    stale_headers, stale_body = gateway.signed_callback(reference)  # pending_approval, taken now
    gateway.answer_wallet(reference)
    headers, body = gateway.signed_callback(reference)

    tampered = body.replace(b'"captured"', b'"declined"')
    refused = client.post("/v1/gateways/fake/callbacks", data=tampered, headers=headers)
    assert refused.status_code == 401 and refused.json["code"] == "invalid_signature"
    assert api.get(payment["id"]).json["status"] == "requires_action"

    first = client.post("/v1/gateways/fake/callbacks", data=body, headers=headers)
    assert first.json == {"received": True, "applied": True}
    duplicate = client.post("/v1/gateways/fake/callbacks", data=body, headers=headers)
    assert duplicate.status_code == 200 and duplicate.json["duplicate"] is True
    late = client.post("/v1/gateways/fake/callbacks", data=stale_body, headers=stale_headers)
    assert late.status_code == 200 and late.json["applied"] is False
    assert api.get(payment["id"]).json["status"] == "succeeded"
    assert len(events(context, "payments.payment.succeeded")) == 1

    unknown = client.post("/v1/gateways/nope/callbacks", data=body, headers=headers)
    assert unknown.status_code == 404


def test_a_genuine_callback_of_an_unmapped_type_or_status_is_acknowledged_recorded_and_applied_to_nothing(
    api, payee, gateway, client, service
):
    context, _ = service
    payment = paid(api, gateway, payee)
    refund = api.refund(payment["id"], amount=1000).json
    _, body = gateway.signed_callback(payment["gateway_reference"])  # transaction.captured
    event = json.loads(body)
    unmapped = [
        {**event, "id": "evt_unmapped_status", "data": {**event["data"], "status": "partially_refunded"}},
        {**event, "id": "evt_unmapped_type", "type": "transaction.settled"},
    ]
    before = len(attempts_of(context, payment["id"]))
    webhooks_before = webhook_types(context, payment["id"])
    with logged("services.payments.service_layer.gateway_callbacks") as records:
        for news in unmapped:
            raw = json.dumps(news).encode()
            answer = client.post("/v1/gateways/fake/callbacks", data=raw, headers=gateway.sign(raw))
            assert answer.status_code == 200, answer.json
            assert answer.json == {"received": True, "applied": False}
        # A refund's snapshot while pending: M2T announces no such event, so its type is not mapped.
        headers, raw = gateway.signed_callback(refund["gateway_reference"])
        assert json.loads(raw)["type"] == "refund.pending"
        assert client.post("/v1/gateways/fake/callbacks", data=raw, headers=headers).json == {
            "received": True,
            "applied": False,
        }
    assert [record.levelname for record in records] == ["WARNING"] * 3
    assert [getattr(record, "raw_status", None) for record in records] == [
        "partially_refunded",
        "captured",
        "pending",
    ]

    rows = [
        (a.operation, a.outcome, a.raw_status, a.gateway_reference, a.refund_id)
        for a in attempts_of(context, payment["id"])[before:]
    ]
    assert rows == [
        (
            "callback:transaction.captured",
            "unmapped",
            "partially_refunded",
            payment["gateway_reference"],
            None,
        ),
        ("callback:transaction.settled", "unmapped", "captured", payment["gateway_reference"], None),
        ("callback:refund.pending", "unmapped", "pending", refund["gateway_reference"], refund["id"]),
    ]
    got = api.get(payment["id"]).json
    assert (got["status"], got["amount_refunded"]["amount"]) == ("succeeded", 0)
    assert webhook_types(context, payment["id"]) == webhooks_before
    with context.uow_factory() as uow:
        assert (
            uow.session.scalar(
                sa.select(sa.func.count())
                .select_from(GatewayCallbackReceipt)
                .where(GatewayCallbackReceipt.event_id.like("evt_unmapped%"))
            )
            == 0
        )

    # The signature still comes first: a forged one is refused and leaves no trace.
    raw = json.dumps(unmapped[0]).encode()
    forged = client.post("/v1/gateways/fake/callbacks", data=raw, headers=gateway.sign(raw + b" "))
    assert forged.status_code == 401 and forged.json["code"] == "invalid_signature"
    assert forged.headers["Content-Type"].startswith("application/problem+json")
    assert len(attempts_of(context, payment["id"])) == before + 3


def test_a_genuine_callback_about_nothing_we_know_is_acknowledged(gateway, client):
    raw = json.dumps({"id": "evt_x", "type": "payout.created", "created": 1, "data": {"id": "po_1"}}).encode()
    answer = client.post("/v1/gateways/fake/callbacks", data=raw, headers=gateway.sign(raw))
    assert answer.status_code == 200 and answer.json == {"received": True, "applied": False}


# -- unknown outcomes --------------------------------------------------------------------------------


def test_a_timeout_leaves_the_payment_processing_until_recovery_finds_the_charge(
    api, payee, gateway, service
):
    context, settings = service
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4000000000000127"))
    assert answer.json["status"] == "processing"
    assert events(context, "payments.payment.failed") == []
    soon = utcnow() + dt.timedelta(seconds=1)
    assert (
        recover_waiting(context.uow_factory, settings, now=soon)["payments_polled"] == 0
    )  # not idle long enough
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    recover_waiting(context.uow_factory, settings, now=later)
    assert api.get(payment["id"]).json["status"] == "succeeded"
    assert gateway.charge_count(payment["id"]) == 1
    assert len(events(context, "payments.payment.succeeded")) == 1


def test_the_workers_metrics_show_a_payment_left_waiting_on_the_gateway_until_recovery_settles_it(
    api, payee, gateway, service
):
    context, settings = service
    metrics = WorkerBacklogsCollector(context.uow_factory, settings)

    def backlog(kind: str) -> tuple[float, float]:
        shown = collected(metrics)
        return (
            shown[("hirfa_payments_recovery_backlog", (("kind", kind),))],
            shown[("hirfa_payments_recovery_oldest_seconds", (("kind", kind),))],
        )

    payment = api.create(payee()).json
    assert (
        api.confirm(payment["id"], card_token=token(gateway, "4000000000000127")).json["status"]
        == "processing"
    )
    assert backlog("payment") == (0, 0)  # heard of a moment ago: not the worker's yet

    silent_for = settings.recovery_after + dt.timedelta(minutes=5)
    with context.uow_factory() as uow:
        uow.session.execute(
            sa.update(Payment)
            .where(Payment.id == payment["id"])
            .values(created_at=utcnow() - silent_for, gateway_checked_at=utcnow() - silent_for)
        )
        uow.commit()
    count, oldest = backlog("payment")
    assert count == 1 and silent_for.total_seconds() <= oldest < silent_for.total_seconds() + 60
    assert backlog("refund") == (0, 0)

    recover_waiting(context.uow_factory, settings)
    assert api.get(payment["id"]).json["status"] == "succeeded"
    assert backlog("payment") == (0, 0)


def test_a_gateway_error_that_charged_nothing_fails_after_recovery(api, payee, gateway, service):
    context, settings = service
    payment = api.create(payee()).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4000000000000119"))
    assert answer.json["status"] == "processing"
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    recover_waiting(context.uow_factory, settings, now=later)
    got = api.get(payment["id"]).json
    assert got["status"] == "failed" and got["failure_code"] == "processing_error"
    assert gateway.charge_count(payment["id"]) == 0


def test_fifty_concurrent_confirms_charge_once(payments_app, api, payee, gateway, marketplace_headers):
    payment = api.create(payee()).json
    card = token(gateway, "4242424242424242")
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def confirm() -> None:
        local = payments_app.test_client()
        start.wait()
        answer = local.post(
            f"/v1/payments/{payment['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
        )
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=confirm) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gateway.charge_count(payment["id"]) == 1
    assert statuses.count(200) == 1 and statuses.count(409) == 49
    assert api.get(payment["id"]).json["status"] == "succeeded"


# -- capture and cancel ------------------------------------------------------------------------------


def test_manual_capture_in_part_once(api, payee, gateway, service):
    context, _ = service
    payment = api.create(payee(), capture_method="manual", amount=20000, application_fee=2000).json
    answer = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    assert answer.json["status"] == "requires_capture"
    below_fee = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 1000})
    assert below_fee.status_code == 422 and below_fee.json["code"] == "capture_below_application_fee"
    captured = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 12000})
    assert captured.status_code == 200, captured.json
    assert captured.json["status"] == "succeeded"
    assert captured.json["amount_captured"] == {"amount": 12000, "currency": "MAD"}
    again = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 1000})
    assert again.status_code == 409 and again.json["code"] == "invalid_state"
    [event] = events(context, "payments.payment.succeeded")
    assert event["amount"]["amount"] == 12000 and event["net"]["amount"] == 10000


def forget_stored_answer(payments_app, key: str) -> None:
    """The effect committed, then its answer never reached the key's row (the process was killed,
    or the database went away, before it was stored)."""
    model = payments_app.extensions["hirfa"].models.idempotency_key
    with payments_app.extensions["hirfa"].session_factory() as session:
        session.execute(sa.delete(model).where(model.key == key))
        session.commit()


def test_a_capture_or_cancel_whose_stored_answer_was_lost_answers_the_payment_when_retried_with_its_key(
    api, payee, gateway, client, marketplace_headers, payments_app
):
    def act(payment_id: str, action: str, key: str, body: dict | None = None):
        return client.post(
            f"/v1/payments/{payment_id}/{action}", json=body or {}, headers=marketplace_headers(key)
        )

    captured = api.create(payee(), capture_method="manual", amount=20000, application_fee=2000).json
    assert api.confirm(captured["id"], card_token=token(gateway, "4242424242424242")).json["status"] == (
        "requires_capture"
    )
    assert act(captured["id"], "capture", "capture-1", {"amount_to_capture": 12000}).status_code == 200
    forget_stored_answer(payments_app, "capture-1")
    again = act(captured["id"], "capture", "capture-1", {"amount_to_capture": 12000})
    assert again.status_code == 200, again.json
    assert (again.json["status"], again.json["amount_captured"]["amount"]) == ("succeeded", 12000)
    another_key = act(captured["id"], "capture", "capture-2", {"amount_to_capture": 12000})
    assert another_key.status_code == 409 and another_key.json["code"] == "invalid_state"

    # A cancel before confirmation (nothing to tell the gateway), and a void of an authorisation.
    unconfirmed = api.create(payee()).json
    authorised = api.create(payee(), capture_method="manual").json
    api.confirm(authorised["id"], card_token=token(gateway, "4242424242424242"))
    for payment, key in ((unconfirmed, "cancel-1"), (authorised, "cancel-2")):
        assert act(payment["id"], "cancel", key).json["status"] == "canceled"
        forget_stored_answer(payments_app, key)
        again = act(payment["id"], "cancel", key)
        assert again.status_code == 200 and again.json["status"] == "canceled", again.json
        another_key = act(payment["id"], "cancel", key + "-other")
        assert another_key.status_code == 409 and another_key.json["code"] == "invalid_state"


def test_a_refused_capture_or_cancel_retried_with_its_key_is_refused_again(
    api, payee, gateway, client, marketplace_headers, payments_app
):
    """Only what the action made is answered with 200: a capture the gateway refused (the payment
    canceled there) or a cancel it refused (the wallet buyer approved) stays a 409 when retried."""

    def act(payment_id: str, action: str, key: str):
        return client.post(f"/v1/payments/{payment_id}/{action}", json={}, headers=marketplace_headers(key))

    voided = api.create(payee(), capture_method="manual").json
    reference = api.confirm(voided["id"], card_token=token(gateway, "4242424242424242")).json[
        "gateway_reference"
    ]
    gateway.void(VoidRequest(reference, "voided-at-m2t"))
    first = act(voided["id"], "capture", "capture-refused")
    assert first.status_code == 409 and first.json["code"] == "capture_refused"
    forget_stored_answer(payments_app, "capture-refused")
    again = act(voided["id"], "capture", "capture-refused")
    assert again.status_code == 409 and again.json["code"] == "invalid_state", again.json

    approved = api.create(payee(), payment_method_type="mobile_wallet").json
    reference = api.confirm(approved["id"], phone="+212600000001").json["gateway_reference"]
    gateway.answer_wallet(reference)
    first = act(approved["id"], "cancel", "cancel-refused")
    assert first.status_code == 409 and first.json["code"] == "cancel_refused"
    forget_stored_answer(payments_app, "cancel-refused")
    again = act(approved["id"], "cancel", "cancel-refused")
    assert again.status_code == 409 and again.json["payment_status"] == "succeeded", again.json


def test_a_refused_capture_is_an_attempt_row_and_a_409_and_the_authorisation_stays_capturable(
    api, payee, gateway, service
):
    context, _ = service
    payment = api.create(payee(), capture_method="manual").json
    api.confirm(payment["id"], card_token=token(gateway, "4242424242424242"))
    gateway.fail_next("refused", operation="capture", code="capture_window_closed")
    refused = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 10000})
    assert refused.status_code == 409, refused.json
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert (refused.json["code"], refused.json["gateway_code"], refused.json["payment_status"]) == (
        "capture_refused",
        "capture_window_closed",
        "requires_capture",
    )
    assert api.get(payment["id"]).json["status"] == "requires_capture"
    # The refusal is its own row, before the read of the gateway's record that followed it.
    assert attempt_rows(context, payment["id"], since=1) == [
        ("capture", "refused", "capture_window_closed", None, 10000),
        ("status", "ok", None, "authorised", None),
    ]
    assert events(context, "payments.payment.succeeded") == []
    again = api.post(f"/v1/payments/{payment['id']}/capture", {"amount_to_capture": 10000})
    assert again.status_code == 200 and again.json["status"] == "succeeded"


def test_a_capture_refused_because_the_gateway_voided_the_authorisation_cancels_the_payment(
    api, payee, gateway, service
):
    context, _ = service
    payment = api.create(payee(), capture_method="manual").json
    reference = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242")).json[
        "gateway_reference"
    ]
    gateway.void(VoidRequest(reference, "voided-at-m2t"))  # M2T let the authorisation go (no callback)
    refused = api.post(f"/v1/payments/{payment['id']}/capture")
    assert refused.status_code == 409
    assert (refused.json["code"], refused.json["gateway_code"], refused.json["payment_status"]) == (
        "capture_refused",
        "invalid_status",
        "canceled",
    )
    got = api.get(payment["id"]).json
    assert (got["status"], got["cancellation_reason"]) == ("canceled", "voided_at_gateway")
    assert attempt_rows(context, payment["id"], since=1) == [
        ("capture", "refused", "invalid_status", None, 15000),
        ("status", "ok", None, "voided", None),
    ]


@pytest.mark.parametrize(
    ("at_the_gateway", "raw_status", "decline_code", "status"),
    [
        ("answer_wallet", "captured", None, "succeeded"),  # the buyer approved in their wallet meanwhile
        ("expire", "expired", "expired", "failed"),  # nobody answered in time
    ],
)
def test_a_refused_void_is_an_attempt_row_and_a_409_and_the_payment_takes_the_gateways_word(
    api, payee, gateway, service, at_the_gateway, raw_status, decline_code, status
):
    context, _ = service
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    reference = api.confirm(payment["id"], phone="+212600000001").json["gateway_reference"]
    getattr(gateway, at_the_gateway)(reference)
    refused = api.post(f"/v1/payments/{payment['id']}/cancel")
    assert refused.status_code == 409, refused.json
    assert (refused.json["code"], refused.json["gateway_code"], refused.json["payment_status"]) == (
        "cancel_refused",
        "invalid_status",
        status,
    )
    assert api.get(payment["id"]).json["status"] == status
    assert attempt_rows(context, payment["id"], since=1) == [
        ("void", "refused", "invalid_status", None, None),
        ("status", "ok", decline_code, raw_status, None),
    ]


def test_a_stale_authorised_callback_never_undoes_a_capture_that_timed_out(
    api, payee, gateway, client, service
):
    context, settings = service
    payment = api.create(payee(), capture_method="manual").json
    reference = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242")).json[
        "gateway_reference"
    ]
    stale_headers, stale_body = gateway.signed_callback(reference)  # transaction.authorised, delivered late
    gateway.fail_next("timeout", operation="capture")  # captured at the gateway; we never hear the answer
    assert api.post(f"/v1/payments/{payment['id']}/capture").json["status"] == "processing"

    late = client.post("/v1/gateways/fake/callbacks", data=stale_body, headers=stale_headers)
    assert late.status_code == 200 and late.json["applied"] is False
    assert api.get(payment["id"]).json["status"] == "processing"
    assert webhook_types(context, payment["id"]).count("payment.requires_capture") == 1  # the confirm's only

    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    assert recover_waiting(context.uow_factory, settings, now=later)["payments_settled"] == 1
    got = api.get(payment["id"]).json
    assert got["status"] == "succeeded" and got["amount_captured"]["amount"] == 15000
    assert len(events(context, "payments.payment.succeeded")) == 1


def test_a_capture_that_never_reached_the_gateway_goes_back_to_requires_capture_only_on_its_word(
    api, payee, gateway, client, service
):
    context, settings = service
    payment = api.create(payee(), capture_method="manual").json
    reference = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242")).json[
        "gateway_reference"
    ]
    stale_headers, stale_body = gateway.signed_callback(reference)
    gateway.fail_next("server_error", operation="capture")  # 5xx: nothing captured
    assert api.post(f"/v1/payments/{payment['id']}/capture").json["status"] == "processing"
    client.post("/v1/gateways/fake/callbacks", data=stale_body, headers=stale_headers)
    assert api.get(payment["id"]).json["status"] == "processing"  # a callback is no proof
    # Recovery reads the gateway's record once the capture call is long over: still authorised.
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    recover_waiting(context.uow_factory, settings, now=later)
    assert api.get(payment["id"]).json["status"] == "requires_capture"
    assert api.post(f"/v1/payments/{payment['id']}/capture").json["status"] == "succeeded"
    assert gateway.charge_count(payment["id"]) == 1


def _charge_lands_after_recovery_failed_it(api, payee, gateway, service, *, capture_method: str) -> dict:
    """A confirm whose outcome is unknown, failed by recovery (no record), then charged after all."""
    context, settings = service
    payment = api.create(payee(), capture_method=capture_method).json
    card = token(gateway, "4242424242424242")
    gateway.fail_next("server_error", operation="authorise")
    assert api.confirm(payment["id"], card_token=card).json["status"] == "processing"
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    recover_waiting(context.uow_factory, settings, now=later)
    assert api.get(payment["id"]).json["failure_code"] == "processing_error"
    # The request was still on its way (queued at the gateway, say) and goes through now.
    gateway.authorise(
        AuthoriseRequest(
            reference=payment["id"],
            amount=15000,
            currency="MAD",
            method=PaymentMethod.CARD,
            capture=capture_method == "automatic",
            callback_url="https://hirfa.invalid/cb",
            idempotency_key=f"{payment['id']}:authorise",
            card_token=card,
        )
    )
    return payment


def test_a_charge_that_lands_after_the_payment_failed_is_refunded(
    api, payee, gateway, client, service, caplog
):
    context, settings = service
    payment = _charge_lands_after_recovery_failed_it(api, payee, gateway, service, capture_method="automatic")
    acks = deliver_callbacks(client, gateway)  # transaction.captured
    assert all(ack.status_code == 200 for ack in acks)
    assert any(
        record.levelname == "ERROR" and payment["id"] in str(getattr(record, "payment_id", ""))
        for record in caplog.records
    )
    got = api.get(payment["id"]).json
    assert (got["status"], got["reversal_status"], got["requires_review"]) == ("failed", "required", False)
    assert events(context, "payments.payment.succeeded") == []

    assert recover_waiting(context.uow_factory, settings)["payments_reversed"] == 0  # refund pending
    assert api.get(payment["id"]).json["reversal_status"] == "refund_pending"
    refund = gateway.find_refund(f"{payment['id']}:reversal")
    assert refund.amount == 15000 and refund.status == RefundStatus.PENDING
    [attempt] = [a for a in attempts_of(context, payment["id"]) if a.operation == "reversal_refund"]
    assert (attempt.outcome, attempt.amount, attempt.idempotency_key) == (
        "ok",
        15000,
        f"{payment['id']}:reversal_refund",
    )
    gateway.settle_refunds()
    deliver_callbacks(client, gateway)  # refund.succeeded: not one of the marketplace's refunds
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    assert recover_waiting(context.uow_factory, settings, now=later)["payments_reversed"] == 1
    got = api.get(payment["id"]).json
    assert (got["status"], got["reversal_status"]) == ("failed", "refunded")
    assert gateway.transaction(got["gateway_reference"]).refunded_amount == 15000
    assert events(context, "payments.refund.succeeded") == []  # never in the ledger, nothing to take out


def test_an_authorisation_that_lands_after_the_payment_failed_is_voided(api, payee, gateway, client, service):
    context, settings = service
    payment = _charge_lands_after_recovery_failed_it(api, payee, gateway, service, capture_method="manual")
    deliver_callbacks(client, gateway)  # transaction.authorised
    assert api.get(payment["id"]).json["reversal_status"] == "required"
    assert recover_waiting(context.uow_factory, settings)["payments_reversed"] == 1
    got = api.get(payment["id"]).json
    assert (got["status"], got["reversal_status"], got["requires_review"]) == ("failed", "voided", False)
    assert gateway.transaction(got["gateway_reference"]).status is TransactionStatus.VOIDED
    void = attempts_of(context, payment["id"])[-1]
    assert (void.operation, void.outcome, void.raw_status) == ("reversal_void", "ok", "voided")
    assert void.idempotency_key == f"{payment['id']}:reversal_void"
    deliver_callbacks(client, gateway)  # transaction.voided: nothing more to do
    assert api.get(payment["id"]).json["reversal_status"] == "voided"
    # The marketplace is told of each step: money found held, then given back.
    with context.session_factory() as session:
        bodies = session.scalars(
            sa.select(WebhookEvent.body)
            .where(
                WebhookEvent.object_id == payment["id"],
                WebhookEvent.type == "payment.reversal_updated",
            )
            .order_by(WebhookEvent.sequence)
        ).all()
    assert [json.loads(body)["data"]["object"]["reversal_status"] for body in bodies] == [
        "required",
        "voided",
    ]


def test_a_reversal_void_whose_answer_was_lost_is_recorded_as_voided(api, payee, gateway, client, service):
    context, settings = service
    payment = _charge_lands_after_recovery_failed_it(api, payee, gateway, service, capture_method="manual")
    deliver_callbacks(client, gateway)  # transaction.authorised: money held for a failed payment
    gateway.fail_next("timeout", operation="void")  # the void is done, its answer lost
    recover_waiting(context.uow_factory, settings)
    assert api.get(payment["id"]).json["reversal_status"] == "required"
    # The next run reads the gateway's record: voided, by our own reversal. That is the record kept.
    recover_waiting(context.uow_factory, settings)
    got = api.get(payment["id"]).json
    assert (got["status"], got["reversal_status"], got["requires_review"]) == ("failed", "voided", False)
    assert gateway.transaction(got["gateway_reference"]).status is TransactionStatus.VOIDED


def stray_charge_check_at(context, payment_id: str) -> dt.datetime | None:
    with context.uow_factory() as uow:
        return uow.session.get(Payment, payment_id).stray_charge_check_at


def after_the_stray_charge_check(settings) -> dt.datetime:
    return utcnow() + settings.stray_charge_check_after + dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("capture_method", "given_back"),
    [
        (
            "automatic",
            [
                ("status", "ok", None, "captured", None),
                ("find_refund", "ok", None, None, None),
                ("reversal_refund", "ok", None, "pending", 15000),
            ],
        ),
        (
            "manual",
            [("status", "ok", None, "authorised", None), ("reversal_void", "ok", None, "voided", None)],
        ),
    ],
)
def test_a_charge_that_lands_after_the_payment_failed_with_its_callback_lost_is_found_and_given_back(
    api, payee, gateway, service, capture_method, given_back
):
    context, settings = service
    payment = _charge_lands_after_recovery_failed_it(
        api, payee, gateway, service, capture_method=capture_method
    )
    gateway.drain_callbacks()  # lost: nobody tells us of the charge
    assert stray_charge_check_at(context, payment["id"]) is not None
    before = len(attempts_of(context, payment["id"]))
    soon = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    assert (
        recover_waiting(context.uow_factory, settings, now=soon)["stray_charges_checked"] == 0
    )  # not due yet

    counts = recover_waiting(context.uow_factory, settings, now=after_the_stray_charge_check(settings))
    assert (counts["stray_charges_checked"], counts["stray_charges_found"]) == (1, 1)
    raw_status = "captured" if capture_method == "automatic" else "authorised"
    assert attempt_rows(context, payment["id"], since=before) == [
        ("find", "ok", None, raw_status, None),  # the second look, by our reference
        *given_back,  # then the reversal, in the same run
    ]
    got = api.get(payment["id"]).json
    assert (got["status"], got["failure_code"]) == ("failed", "processing_error")
    assert got["reversal_status"] == ("refund_pending" if capture_method == "automatic" else "voided")
    assert stray_charge_check_at(context, payment["id"]) is None
    assert events(context, "payments.payment.succeeded") == []


def test_a_wallet_request_that_lands_after_the_payment_failed_is_voided_before_the_buyer_approves_it(
    api, payee, gateway, service
):
    context, settings = service
    payment = api.create(payee(), payment_method_type="mobile_wallet").json
    gateway.fail_next("server_error", operation="request_to_pay")
    assert api.confirm(payment["id"], phone="+212600000003").json["status"] == "processing"
    recover_waiting(
        context.uow_factory, settings, now=utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    )
    assert api.get(payment["id"]).json["failure_code"] == "processing_error"
    gateway.request_to_pay(
        RequestToPay(  # queued at the gateway, it reaches the buyer's wallet now
            reference=payment["id"],
            amount=15000,
            currency="MAD",
            phone="+212600000003",
            capture=True,
            callback_url="https://hirfa.invalid/cb",
            idempotency_key=f"{payment['id']}:authorise",
        )
    )
    gateway.drain_callbacks()

    counts = recover_waiting(context.uow_factory, settings, now=after_the_stray_charge_check(settings))
    assert (counts["stray_charges_found"], counts["payments_reversed"]) == (1, 1)
    got = api.get(payment["id"]).json
    assert (got["status"], got["reversal_status"]) == ("failed", "voided")
    assert gateway.transaction(got["gateway_reference"]).status is TransactionStatus.VOIDED


def test_a_payment_still_unknown_to_the_gateway_at_the_second_look_stays_failed_and_is_not_looked_at_again(
    api, payee, gateway, service
):
    context, settings = service
    payment = api.create(payee()).json
    api.confirm(payment["id"], card_token=token(gateway, "4000000000000119"))  # 500, nothing recorded
    recover_waiting(
        context.uow_factory, settings, now=utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    )
    assert api.get(payment["id"]).json["failure_code"] == "processing_error"
    before = len(attempts_of(context, payment["id"]))

    # An unanswered lookup tells nothing: the check stays due, and is made again a while later.
    gateway.fail_next("server_error", operation="find_transaction")
    counts = recover_waiting(context.uow_factory, settings, now=after_the_stray_charge_check(settings))
    assert (counts["stray_charges_checked"], counts["stray_charges_found"]) == (1, 0)
    assert stray_charge_check_at(context, payment["id"]) is not None
    again = after_the_stray_charge_check(settings) + settings.recovery_after
    counts = recover_waiting(context.uow_factory, settings, now=again)
    assert (counts["stray_charges_checked"], counts["stray_charges_found"]) == (1, 0)
    assert attempt_rows(context, payment["id"], since=before) == [
        ("find", "unknown", "processing_error", None, None),
        ("find", "ok", None, None, None),  # still no record: nothing was ever charged
    ]
    assert stray_charge_check_at(context, payment["id"]) is None
    much_later = again + settings.stray_charge_check_after * 2
    assert recover_waiting(context.uow_factory, settings, now=much_later)["stray_charges_checked"] == 0
    assert len(attempts_of(context, payment["id"])) == before + 2
    got = api.get(payment["id"]).json
    assert (got["status"], got["failure_code"], got["reversal_status"]) == (
        "failed",
        "processing_error",
        None,
    )
    assert gateway.charge_count(payment["id"]) == 0


def test_a_declined_payment_gets_no_second_look(api, payee, gateway, service):
    context, settings = service
    payment = api.create(payee()).json
    declined = api.confirm(payment["id"], card_token=token(gateway, "4000000000009995")).json
    assert (declined["status"], declined["failure_code"]) == ("failed", "insufficient_funds")
    assert stray_charge_check_at(context, payment["id"]) is None
    before = len(attempts_of(context, payment["id"]))
    counts = recover_waiting(context.uow_factory, settings, now=after_the_stray_charge_check(settings))
    assert counts["stray_charges_checked"] == 0
    assert len(attempts_of(context, payment["id"])) == before


def test_a_stale_authorised_callback_for_a_voided_payment_reverses_nothing(
    api, payee, gateway, client, service
):
    context, settings = service
    payment = api.create(payee(), capture_method="manual").json
    reference = api.confirm(payment["id"], card_token=token(gateway, "4242424242424242")).json[
        "gateway_reference"
    ]
    stale_headers, stale_body = gateway.signed_callback(reference)
    assert api.post(f"/v1/payments/{payment['id']}/cancel").json["status"] == "canceled"
    late = client.post("/v1/gateways/fake/callbacks", data=stale_body, headers=stale_headers)
    assert late.status_code == 200 and late.json["applied"] is False
    assert api.get(payment["id"]).json["reversal_status"] is None
    assert recover_waiting(context.uow_factory, settings)["payments_reversed"] == 0


def test_the_locked_read_of_a_payment_is_fresh_even_if_the_session_holds_it(api, payee, service):
    context, _ = service
    payment = api.create(payee()).json
    principal = Principal(client_id=MARKETPLACE, role=Role.MARKETPLACE, scopes=frozenset(), token_id="t")
    with context.uow_factory() as uow:
        held = visible_payment(uow.session, payment["id"], principal)  # kept in the identity map
        # The row changes behind the object's back (on PostgreSQL: another request commits before
        # our lock; here, a statement that bypasses the identity map, so any database can show it).
        uow.session.execute(
            sa.update(Payment)
            .where(Payment.id == payment["id"])
            .values(status="canceled")
            .execution_options(synchronize_session=False)
        )
        assert held.status == "requires_confirmation"  # what the session still believes
        locked = visible_payment(uow.session, payment["id"], principal, lock=True)
        assert locked is held and locked.status == "canceled"


def test_cancel_before_confirmation_and_void_of_an_authorisation(api, payee, gateway):
    fresh = api.create(payee()).json
    canceled = api.post(f"/v1/payments/{fresh['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json["status"] == "canceled"
    assert canceled.json["cancellation_reason"] == "requested"
    authorised = api.create(payee(), capture_method="manual").json
    api.confirm(authorised["id"], card_token=token(gateway, "4242424242424242"))
    voided = api.post(f"/v1/payments/{authorised['id']}/cancel")
    assert voided.status_code == 200 and voided.json["status"] == "canceled"
    done = paid(api, gateway, payee)
    refused = api.post(f"/v1/payments/{done['id']}/cancel")
    assert refused.status_code == 409 and refused.json["code"] == "invalid_state"


# -- refunds -----------------------------------------------------------------------------------------


def test_partial_then_full_refund_and_an_over_refund_refused(api, payee, gateway, client, service):
    context, _ = service
    payment = paid(api, gateway, payee, amount=10000, application_fee=1000)
    partial = api.refund(payment["id"], amount=3000)
    assert partial.status_code == 201, partial.json
    assert partial.json["status"] == "pending"
    assert partial.json["application_fee_refunded"] == {"amount": 300, "currency": "MAD"}
    over = api.refund(payment["id"], amount=7001)
    assert over.status_code == 409 and over.json["code"] == "refund_exceeds_captured"
    assert over.json["refundable"] == {"amount": 7000, "currency": "MAD"}
    rest = api.refund(payment["id"])
    assert rest.json["amount"] == {"amount": 7000, "currency": "MAD"}
    assert rest.json["application_fee_refunded"] == {"amount": 700, "currency": "MAD"}
    gateway.settle_refunds()
    deliver_callbacks(client, gateway)
    got = api.get(payment["id"]).json
    assert got["amount_refunded"] == {"amount": 10000, "currency": "MAD"}
    assert got["application_fee_refunded"] == {"amount": 1000, "currency": "MAD"}
    refunded = events(context, "payments.refund.succeeded")
    assert sorted(event["amount"]["amount"] for event in refunded) == [3000, 7000]
    assert api.refund(payment["id"], amount=1).json["code"] == "refund_exceeds_captured"


def test_a_refund_the_gateway_declines_fails_and_frees_the_amount(
    api, payee, gateway, client, service, marketplace_headers
):
    context, _ = service
    payment = paid(api, gateway, payee, amount=10000, application_fee=0)
    refund = api.refund(payment["id"], amount=1013).json  # the test rule: ends in 13 centimes
    gateway.settle_refunds()
    deliver_callbacks(client, gateway)
    got = client.get(f"/v1/refunds/{refund['id']}", headers=marketplace_headers()).json
    assert got["status"] == "failed" and got["failure_code"] == "refund_declined"
    assert events(context, "payments.refund.succeeded") == []
    assert api.refund(payment["id"], amount=10000).status_code == 201


def test_a_refund_replayed_with_its_key_is_one_refund(api, payee, gateway):
    payment = paid(api, gateway, payee)
    first = api.refund(payment["id"], key="refund-1", amount=1000)
    again = api.refund(payment["id"], key="refund-1", amount=1000)
    assert again.json["id"] == first.json["id"]


def test_a_refund_the_gateway_never_recorded_is_looked_up_then_sent_again_and_both_calls_are_rows(
    api, payee, gateway, service
):
    context, settings = service
    payment = paid(api, gateway, payee)
    gateway.fail_next("server_error", operation="refund")  # 5xx: nothing recorded at the gateway
    refund = api.refund(payment["id"], amount=1000).json
    assert refund["status"] == "pending"
    later = utcnow() + settings.recovery_after + dt.timedelta(seconds=1)
    assert recover_waiting(context.uow_factory, settings, now=later)["refunds_polled"] == 1
    rows = [
        (a.operation, a.outcome, a.raw_status, a.idempotency_key)
        for a in attempts_of(context, payment["id"])
        if a.refund_id == refund["id"]
    ]
    assert rows == [
        ("refund", "unknown", None, refund["id"]),
        ("find_refund", "ok", None, None),  # found nothing: the reason it was sent again
        ("refund", "ok", "pending", refund["id"]),
    ]
    assert gateway.find_refund(refund["id"]).amount == 1000


def test_a_payment_with_an_open_or_lost_dispute_is_not_refunded(api, payee, gateway, client, service):
    context, _ = service
    payment = paid(api, gateway, payee, amount=10000, application_fee=1000)
    dispute = gateway.open_dispute(payment["gateway_reference"])
    deliver_callbacks(client, gateway)
    for outcome in ("open", "lost"):
        if outcome == "lost":
            gateway.close_dispute(dispute.gateway_reference, "lost")
            deliver_callbacks(client, gateway)
        refused = api.refund(payment["id"], amount=1000)
        assert refused.status_code == 409, refused.json
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert (refused.json["code"], refused.json["dispute_status"]) == ("charge_disputed", outcome)
        assert refused.json["dispute_id"].startswith("dp_")
    with context.uow_factory() as uow:
        assert uow.session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0
    assert gateway.find_refund(payment["id"]) is None and events(context, "payments.refund.succeeded") == []


def test_a_payment_whose_dispute_was_won_is_refundable_up_to_what_is_left(api, payee, gateway, client):
    payment = paid(api, gateway, payee, amount=10000, application_fee=1000)
    assert api.refund(payment["id"], amount=3000).status_code == 201
    dispute = gateway.open_dispute(payment["gateway_reference"], amount=7000)
    gateway.close_dispute(dispute.gateway_reference, "won")
    deliver_callbacks(client, gateway)
    over = api.refund(payment["id"], amount=7001)
    assert over.status_code == 409 and over.json["code"] == "refund_exceeds_captured"
    rest = api.refund(payment["id"])
    assert rest.status_code == 201 and rest.json["amount"] == {"amount": 7000, "currency": "MAD"}


# -- disputes ----------------------------------------------------------------------------------------


def test_disputes_open_and_close_from_gateway_notifications(
    api, payee, gateway, client, service, marketplace_headers
):
    context, _ = service
    payment = paid(api, gateway, payee)
    dispute = gateway.open_dispute(payment["gateway_reference"], reason="product_not_received")
    deliver_callbacks(client, gateway)
    listed = client.get("/v1/disputes", headers=marketplace_headers()).json["data"]
    assert [(d["payment_id"], d["status"], d["reason"]) for d in listed] == [
        (payment["id"], "open", "product_not_received")
    ]
    gateway.close_dispute(dispute.gateway_reference, "lost")
    deliver_callbacks(client, gateway)
    deliver_callbacks(client, gateway)
    [closed] = client.get("/v1/disputes", headers=marketplace_headers()).json["data"]
    assert closed["status"] == "lost"
    assert [e["dispute_id"] for e in events(context, "payments.dispute.opened")] == [closed["id"]]
    assert [e["outcome"] for e in events(context, "payments.dispute.closed")] == ["lost"]
    other = client.get("/v1/disputes", headers=marketplace_headers(client_id=OTHER_MARKETPLACE)).json["data"]
    assert other == []


# -- isolation and listing ---------------------------------------------------------------------------


def test_another_marketplace_cannot_see_or_act_on_a_payment(api, payee, gateway, client, marketplace_headers):
    payment = paid(api, gateway, payee)
    other = {"client_id": OTHER_MARKETPLACE}
    assert api.get(payment["id"], **other).status_code == 404
    assert api.confirm(payment["id"], card_token="tok_abcdefgh", **other).status_code == 404
    assert api.post(f"/v1/payments/{payment['id']}/capture", **other).status_code == 404
    assert api.post(f"/v1/payments/{payment['id']}/cancel", **other).status_code == 404
    refund = client.post(
        "/v1/refunds",
        json={"payment_id": payment["id"]},
        headers=marketplace_headers("k-other", client_id=OTHER_MARKETPLACE),
    )
    assert refund.status_code == 404
    listed = client.get("/v1/payments", headers=marketplace_headers(client_id=OTHER_MARKETPLACE)).json
    assert listed["data"] == []


def test_another_marketplace_gets_404_on_every_refund_dispute_attempt_and_action_of_a_payment(
    api, payee, gateway, client, service, marketplace_headers
):
    context, _ = service
    ours = paid(api, gateway, payee)
    refund = api.refund(ours["id"], amount=1000).json
    gateway.open_dispute(ours["gateway_reference"], amount=2000)
    deliver_callbacks(client, gateway)
    [dispute] = client.get("/v1/disputes", headers=marketplace_headers()).json["data"]
    authorised = api.create(payee(), capture_method="manual").json
    api.confirm(authorised["id"], card_token=token(gateway, "4242424242424242"))
    theirs = marketplace_headers(client_id=OTHER_MARKETPLACE)

    def theirs_keyed():
        return marketplace_headers(str(uuid.uuid4()), client_id=OTHER_MARKETPLACE)

    answers = {
        "refund": client.get(f"/v1/refunds/{refund['id']}", headers=theirs),
        "dispute": client.get(f"/v1/disputes/{dispute['id']}", headers=theirs),
        "attempts": client.get(f"/v1/payments/{ours['id']}/attempts", headers=theirs),
        "capture": client.post(f"/v1/payments/{authorised['id']}/capture", json={}, headers=theirs),
        "cancel": client.post(f"/v1/payments/{authorised['id']}/cancel", headers=theirs),
        "keyed capture": client.post(
            f"/v1/payments/{authorised['id']}/capture", json={}, headers=theirs_keyed()
        ),
        "keyed cancel": client.post(f"/v1/payments/{authorised['id']}/cancel", headers=theirs_keyed()),
        "create refund": client.post(
            "/v1/refunds", json={"payment_id": ours["id"], "amount": 500}, headers=theirs_keyed()
        ),
    }
    codes = {name: (answer.status_code, answer.json["code"]) for name, answer in answers.items()}
    assert codes == {
        "refund": (404, "refund_not_found"),
        "dispute": (404, "dispute_not_found"),
        "attempts": (404, "payment_not_found"),
        "capture": (404, "payment_not_found"),
        "cancel": (404, "payment_not_found"),
        "keyed capture": (404, "payment_not_found"),
        "keyed cancel": (404, "payment_not_found"),
        "create refund": (404, "payment_not_found"),
    }
    # Nothing leaked in lists, and nothing moved.
    for path in (f"/v1/refunds?payment_id={ours['id']}", f"/v1/disputes?payment_id={ours['id']}"):
        assert client.get(path, headers=theirs).json["data"] == []
    assert api.get(authorised["id"]).json["status"] == "requires_capture"
    with context.uow_factory() as uow:
        assert uow.session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 1
    # The owner still sees all of it.
    mine = marketplace_headers()
    assert client.get(f"/v1/refunds/{refund['id']}", headers=mine).status_code == 200
    assert client.get(f"/v1/disputes/{dispute['id']}", headers=mine).status_code == 200
    assert client.get(f"/v1/payments/{ours['id']}/attempts", headers=mine).json["data"]


def test_listing_filters_and_pages(api, payee, gateway, client, marketplace_headers):
    artisan_id = payee()
    ids = [api.create(artisan_id).json["id"] for _ in range(3)]
    api.confirm(ids[0], card_token=token(gateway, "4242424242424242"))
    page = client.get("/v1/payments?limit=2", headers=marketplace_headers()).json
    assert [p["id"] for p in page["data"]] == ids[:2] and page["has_more"] is True
    rest = client.get(
        f"/v1/payments?limit=2&starting_after={page['next_cursor']}", headers=marketplace_headers()
    ).json
    assert [p["id"] for p in rest["data"]] == ids[2:]
    succeeded = client.get("/v1/payments?status=succeeded", headers=marketplace_headers()).json["data"]
    assert [p["id"] for p in succeeded] == ids[:1]
    future = (utcnow() + dt.timedelta(hours=1)).isoformat()
    assert (
        client.get("/v1/payments", query_string={"created_gte": future}, headers=marketplace_headers()).json[
            "data"
        ]
        == []
    )


def test_gateway_attempts_are_append_only_in_the_database(api, payee, gateway, service):
    context, _ = service
    paid(api, gateway, payee)
    with context.uow_factory() as uow:
        statements = [sa.update(GatewayAttempt).values(raw_status="declined"), sa.delete(GatewayAttempt)]
        if uow.session.get_bind().dialect.name == "postgresql":  # TRUNCATE fires no row trigger
            statements.append(sa.text("TRUNCATE gateway_attempts"))
        for statement in statements:
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with uow.session.begin_nested():
                    uow.session.execute(statement)


def test_a_confirm_retried_with_its_key_replays_the_answer(api, payee, gateway, client, marketplace_headers):
    payment = api.create(payee()).json
    card = token(gateway, "4242424242424242")
    first = client.post(
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card},
        headers=marketplace_headers("confirm-1"),
    )
    again = client.post(
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card},
        headers=marketplace_headers("confirm-1"),
    )
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json and first.json["status"] == "succeeded"
    without_key = api.confirm(payment["id"], card_token=card)
    assert without_key.status_code == 409 and without_key.json["code"] == "invalid_state"
    assert gateway.charge_count(payment["id"]) == 1


def test_a_confirm_whose_stored_answer_was_lost_answers_the_payment_when_retried_with_its_key(
    api, payee, gateway, client, marketplace_headers, payments_app
):
    """The confirmation went through, then its answer never reached the key's row (the process was
    killed, or the database went away, before it was stored): the retry gets the payment."""
    payment = api.create(payee()).json
    card = token(gateway, "4242424242424242")
    first = client.post(
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card},
        headers=marketplace_headers("confirm-2"),
    )
    assert first.json["status"] == "succeeded"
    model = payments_app.extensions["hirfa"].models.idempotency_key
    with payments_app.extensions["hirfa"].session_factory() as session:
        session.execute(sa.delete(model).where(model.key == "confirm-2"))
        session.commit()
    again = client.post(
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card},
        headers=marketplace_headers("confirm-2"),
    )
    assert again.status_code == 200, again.json
    assert (again.json["id"], again.json["status"]) == (payment["id"], "succeeded")
    another_key = client.post(
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card},
        headers=marketplace_headers("confirm-3"),
    )
    assert another_key.status_code == 409 and another_key.json["code"] == "invalid_state"
    assert gateway.charge_count(payment["id"]) == 1
