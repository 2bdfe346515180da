"""The FakeGateway's own promises, beyond the contract: its test hooks, injected failures, the
callbacks it would have sent, and one charge under 50 concurrent confirmations."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.payments.adapters.gateways import build_gateway_registry
from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CallbackKind,
    CaptureRequest,
    GatewayOutcomeUnknown,
    GatewayRequestRefused,
    InvalidCallback,
    PaymentMethod,
    RefundRequest,
    RefundStatus,
    RequestToPay,
    TokeniseRequest,
    TransactionStatus,
    UnsupportedOperation,
)
from shared.test_instruments import CMI_TEST_CARD

PAN = "4242424242424242"


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway(callback_secret="fake-secret")


def token(fake: FakeGateway, number: str = PAN) -> str:
    return fake.tokenise(TokeniseRequest(card_number=number, exp_month=12, exp_year=2030, cvc="123")).token


def request(
    fake: FakeGateway, number: str = PAN, *, reference: str = "pay_1", key: str = "k1", capture: bool = True
) -> AuthoriseRequest:
    return AuthoriseRequest(
        reference=reference,
        amount=15000,
        currency="MAD",
        method=PaymentMethod.CARD,
        capture=capture,
        callback_url="https://hirfa.test/cb",
        idempotency_key=key,
        card_token=token(fake, number),
    )


def test_fifty_concurrent_confirmations_are_one_charge(fake):
    same = request(fake)
    barrier = threading.Barrier(50)

    def confirm(_):
        barrier.wait()
        return fake.authorise(same).gateway_reference

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(confirm, range(50)))
    assert len(set(answers)) == 1 and fake.charge_count("pay_1") == 1


def test_fifty_concurrent_confirmations_with_different_keys_are_one_charge(fake):
    requests_ = [request(fake, key=f"k{i}") for i in range(50)]
    barrier = threading.Barrier(50)

    def confirm(one):
        barrier.wait()
        try:
            return fake.authorise(one).gateway_reference
        except GatewayRequestRefused as exc:
            return exc.code

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(confirm, requests_))
    assert answers.count("duplicate_reference") == 49 and fake.charge_count("pay_1") == 1


def test_an_injected_timeout_does_the_operation(fake):
    transaction = fake.authorise(request(fake, capture=False))
    fake.fail_next("timeout", operation="capture")
    with pytest.raises(GatewayOutcomeUnknown):
        fake.capture(CaptureRequest(transaction.gateway_reference, 15000, "cap-1"))
    assert fake.transaction(transaction.gateway_reference).status is TransactionStatus.CAPTURED
    # Its retry is the stored answer.
    assert (
        fake.capture(CaptureRequest(transaction.gateway_reference, 15000, "cap-1")).captured_amount == 15000
    )


def test_an_injected_server_error_does_nothing(fake):
    captured = fake.authorise(request(fake))
    fake.fail_next("server_error", operation="refund", times=2)
    refund = RefundRequest(captured.gateway_reference, "re_1", 100, "MAD", "rk")
    for _ in range(2):
        with pytest.raises(GatewayOutcomeUnknown):
            fake.refund(refund)
    assert fake.find_refund("re_1") is None
    assert fake.refund(refund).status is RefundStatus.PENDING


def test_an_injected_refusal_does_nothing_and_carries_the_code(fake):
    transaction = fake.authorise(request(fake, capture=False))
    fake.fail_next("refused", operation="capture", code="authorisation_expired")
    with pytest.raises(GatewayRequestRefused) as refused:
        fake.capture(CaptureRequest(transaction.gateway_reference, 15000, "cap-1"))
    assert refused.value.code == "authorisation_expired"
    assert fake.transaction(transaction.gateway_reference).status is TransactionStatus.AUTHORISED
    # Nothing was stored under the key: the retry captures.
    assert (
        fake.capture(CaptureRequest(transaction.gateway_reference, 15000, "cap-1")).captured_amount == 15000
    )


def test_any_call_can_be_failed(fake):
    fake.fail_next("server_error")
    with pytest.raises(GatewayOutcomeUnknown):
        fake.find_transaction("pay_x")
    assert fake.find_transaction("pay_x") is None


def test_the_callbacks_the_gateway_would_send_in_order(fake):
    transaction = fake.authorise(request(fake, capture=False))
    fake.capture(CaptureRequest(transaction.gateway_reference, 100, "c"))
    refund = fake.refund(RefundRequest(transaction.gateway_reference, "re_1", 100, "MAD", "r"))
    fake.settle_refund(refund.gateway_reference)
    callbacks = [fake.parse_callback(*signed) for signed in fake.drain_callbacks()]
    assert [c.type for c in callbacks] == [
        "transaction.authorised",
        "transaction.captured",
        "refund.succeeded",
    ]
    assert fake.drain_callbacks() == []


def test_a_signed_callback_for_any_object(fake):
    transaction = fake.authorise(request(fake))
    headers, raw = fake.signed_callback(transaction.gateway_reference)
    callback = fake.parse_callback(headers, raw)
    assert (callback.kind, callback.type, callback.transaction.status) == (
        CallbackKind.TRANSACTION,
        "transaction.captured",
        TransactionStatus.CAPTURED,
    )
    dispute = fake.open_dispute(transaction.gateway_reference)
    assert fake.parse_callback(*fake.signed_callback(dispute.gateway_reference)).type == "dispute.opened"
    stale_headers, _ = fake.signed_callback(transaction.gateway_reference, timestamp=int(time.time()) - 1000)
    with pytest.raises(InvalidCallback):
        fake.parse_callback(stale_headers, raw)


def test_a_wallet_that_never_answers_stays_pending_until_expired(fake):
    wallet = RequestToPay(
        reference="pay_w",
        amount=500,
        currency="MAD",
        phone="+212600000003",
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="w",
    )
    transaction = fake.request_to_pay(wallet)
    assert fake.answer_wallet(transaction.gateway_reference).status is TransactionStatus.ACTION_REQUIRED
    assert fake.expire(transaction.gateway_reference).status is TransactionStatus.EXPIRED
    assert [event["type"] for event in fake.events] == ["transaction.pending_approval"]  # no expiry callback


def test_no_card_number_or_phone_is_kept(fake):
    fake.authorise(request(fake, CMI_TEST_CARD))
    wallet = RequestToPay(
        reference="pay_w",
        amount=500,
        currency="MAD",
        phone="+212612345678",
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="w",
    )
    fake.request_to_pay(wallet)
    state = repr(vars(fake)) + repr(fake.events)
    assert CMI_TEST_CARD not in state and "612345678" not in state and "tok_" not in repr(fake)


def test_tokenise_can_be_off(fake):
    with pytest.raises(UnsupportedOperation):
        FakeGateway(allow_tokenise=False).tokenise(TokeniseRequest(PAN, 12, 2030, "123"))


def test_the_registry_by_name(fake):
    registry = build_gateway_registry(fake)
    assert registry.slugs() == ["fake"] and registry.get("fake") is fake
    with pytest.raises(ValueError):
        build_gateway_registry(fake, FakeGateway())


def test_a_wallet_request_expires_by_the_clock():
    now = [1_800_000_000.0]
    fake = FakeGateway(wallet_expiry_seconds=120, clock=lambda: now[0])
    wallet = RequestToPay(
        reference="pay_w",
        amount=500,
        currency="MAD",
        phone="+212600000001",
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="w",
    )
    transaction = fake.request_to_pay(wallet)
    assert transaction.next_action.expires_at == 1_800_000_120
    now[0] += 119
    assert fake.transaction(transaction.gateway_reference).status is TransactionStatus.ACTION_REQUIRED
    now[0] += 1
    expired = fake.find_transaction("pay_w")
    assert (expired.status, expired.decline_code, expired.updated_at) == (
        TransactionStatus.EXPIRED,
        "expired",
        1_800_000_120,
    )
    assert fake.answer_wallet(transaction.gateway_reference).status is TransactionStatus.EXPIRED  # too late
