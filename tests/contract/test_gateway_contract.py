"""The contract every ``PaymentGateway`` passes: the FakeGateway and M2T (over HTTP, against the M2T
sandbox process). One set of tests, run once per harness (``conftest.py``); what differs between
the implementations (making a card token, the buyer's 3-D Secure answer, waiting for a wallet, a
refund or a dispute, where callbacks come from) is the harness's.

Test data (M2T's): cards by number, wallet phones. See ``/tmp/m2t_spec.md`` § Test data.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from services.payments.domain.gateway import (
    AuthoriseRequest,
    CallbackKind,
    CaptureRequest,
    DisputeStatus,
    GatewayOutcomeUnknown,
    GatewayRequestRefused,
    InvalidCallback,
    PaymentGateway,
    PaymentMethod,
    RefundRequest,
    RefundStatus,
    RequestToPay,
    TokeniseRequest,
    TransactionStatus,
    VoidRequest,
)
from tests.contract.conftest import new_reference

pytestmark = pytest.mark.integration

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
CMI = "6500000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
STOLEN = "4000000000009979"
THREE_DS = "4000000000003220"
SERVER_ERROR = "4000000000000119"
TIMEOUT = "4000000000000127"
DISPUTED = "4000000000000259"

WALLET_APPROVES = "+212600000001"
WALLET_DECLINES = "+212600000002"
WALLET_NEVER_ANSWERS = "+212600000003"
ANY_MOBILE = "+212712345678"

AMOUNT = 15000


def key() -> str:
    return uuid.uuid4().hex


def card_request(
    harness,
    number: str = VISA,
    *,
    amount: int = AMOUNT,
    capture: bool = True,
    reference: str | None = None,
    idempotency_key: str | None = None,
    token: str | None = None,
) -> AuthoriseRequest:
    return AuthoriseRequest(
        reference=reference or new_reference(),
        amount=amount,
        currency="MAD",
        method=PaymentMethod.CARD,
        capture=capture,
        callback_url=harness.callback_url,
        idempotency_key=idempotency_key or key(),
        card_token=token or harness.card_token(number),
        return_url=harness.return_url,
        description="Tapis Beni Ouarain",
    )


def wallet_request(harness, phone: str, *, capture: bool = True, amount: int = AMOUNT) -> RequestToPay:
    return RequestToPay(
        reference=new_reference(),
        amount=amount,
        currency="MAD",
        phone=phone,
        capture=capture,
        callback_url=harness.callback_url,
        idempotency_key=key(),
    )


def captured(harness, number: str = VISA, amount: int = AMOUNT):
    transaction = harness.gateway.authorise(card_request(harness, number, amount=amount))
    assert transaction.status is TransactionStatus.CAPTURED
    return transaction


def refund(
    harness, transaction, amount: int, *, reference: str | None = None, idempotency_key: str | None = None
):
    return harness.gateway.refund(
        RefundRequest(
            gateway_reference=transaction.gateway_reference,
            reference=reference or new_reference("re"),
            amount=amount,
            currency="MAD",
            idempotency_key=idempotency_key or key(),
        )
    )


def refused(call, code: str) -> GatewayRequestRefused:
    with pytest.raises(GatewayRequestRefused) as raised:
        call()
    assert raised.value.code == code, raised.value
    return raised.value


def test_the_gateway_implements_the_interface(gateway_harness):
    assert isinstance(gateway_harness.gateway, PaymentGateway)
    assert gateway_harness.gateway.name == gateway_harness.name


# -- cards ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "brand", "country"),
    [
        (VISA, "visa", "US"),
        (MASTERCARD, "mastercard", "FR"),
        (CMI, "cmi", "MA"),  # a Moroccan domestic card
    ],
)
def test_an_approved_card_is_captured(gateway_harness, number, brand, country):
    gateway = gateway_harness.gateway
    request = card_request(gateway_harness, number)
    transaction = gateway.authorise(request)
    assert (transaction.status, transaction.raw_status) == (TransactionStatus.CAPTURED, "captured")
    assert transaction.reference == request.reference and transaction.gateway_reference
    assert (transaction.amount, transaction.currency) == (AMOUNT, "MAD")
    assert (transaction.captured_amount, transaction.refunded_amount) == (AMOUNT, 0)
    assert transaction.decline_code is None and transaction.next_action is None
    assert (transaction.card.brand, transaction.card.last4, transaction.card.country) == (
        brand,
        number[-4:],
        country,
    )
    assert transaction.updated_at > 0
    assert gateway.transaction(transaction.gateway_reference) == transaction
    assert gateway.find_transaction(request.reference) == transaction


def test_an_approved_card_without_capture_is_authorised(gateway_harness):
    transaction = gateway_harness.gateway.authorise(card_request(gateway_harness, capture=False))
    assert (transaction.status, transaction.raw_status) == (TransactionStatus.AUTHORISED, "authorised")
    assert transaction.captured_amount == 0


@pytest.mark.parametrize(
    ("number", "code"), [(INSUFFICIENT_FUNDS, "insufficient_funds"), (STOLEN, "stolen_card")]
)
def test_a_declined_card_is_a_declined_transaction_not_an_error(gateway_harness, number, code):
    request = card_request(gateway_harness, number)
    transaction = gateway_harness.gateway.authorise(request)
    assert (transaction.status, transaction.raw_status) == (TransactionStatus.DECLINED, "declined")
    assert transaction.decline_code == code and transaction.decline_message
    assert transaction.captured_amount == 0
    assert gateway_harness.gateway.find_transaction(request.reference).status is TransactionStatus.DECLINED


@pytest.mark.parametrize(
    ("capture", "final"), [(True, TransactionStatus.CAPTURED), (False, TransactionStatus.AUTHORISED)]
)
def test_three_ds_then_the_buyer_authenticates(gateway_harness, capture, final):
    gateway = gateway_harness.gateway
    transaction = gateway.authorise(card_request(gateway_harness, THREE_DS, capture=capture))
    assert (transaction.status, transaction.raw_status) == (
        TransactionStatus.ACTION_REQUIRED,
        "three_ds_required",
    )
    assert transaction.next_action.type == "redirect_to_url" and transaction.next_action.redirect_url
    # Before the buyer has answered, finishing is refused and nothing changes.
    refused(lambda: gateway.complete_three_ds(transaction.gateway_reference, key()), "authentication_pending")
    assert gateway.transaction(transaction.gateway_reference).status is TransactionStatus.ACTION_REQUIRED

    gateway_harness.buyer_answers_three_ds(transaction, "authenticate")
    completion_key = key()
    done = gateway.complete_three_ds(transaction.gateway_reference, completion_key)
    assert done.status is final and done.gateway_reference == transaction.gateway_reference
    assert done.captured_amount == (AMOUNT if capture else 0)
    # Finishing again (a retry, or another key) answers the transaction as it is.
    assert gateway.complete_three_ds(transaction.gateway_reference, completion_key).status is final
    assert gateway.complete_three_ds(transaction.gateway_reference, key()).status is final


def test_three_ds_then_the_buyer_fails(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = gateway.authorise(card_request(gateway_harness, THREE_DS))
    gateway_harness.buyer_answers_three_ds(transaction, "fail")
    gateway_harness.buyer_answers_three_ds(transaction, "authenticate")  # the first answer stands
    done = gateway.complete_three_ds(transaction.gateway_reference, key())
    assert (done.status, done.decline_code) == (TransactionStatus.DECLINED, "authentication_failed")


def test_a_server_error_is_an_unknown_outcome_and_nothing_was_recorded(gateway_harness):
    request = card_request(gateway_harness, SERVER_ERROR)
    with pytest.raises(GatewayOutcomeUnknown):
        gateway_harness.gateway.authorise(request)
    assert gateway_harness.gateway.find_transaction(request.reference) is None
    assert gateway_harness.charges(request.reference) == 0


def test_a_timeout_is_an_unknown_outcome_though_the_charge_happened(gateway_harness):
    request = card_request(gateway_harness, TIMEOUT)
    with pytest.raises(GatewayOutcomeUnknown):
        gateway_harness.unretried().authorise(request)
    # The caller must never read a timeout as a failure: the card was charged.
    found = gateway_harness.gateway.find_transaction(request.reference)
    assert found is not None and found.status is TransactionStatus.CAPTURED
    assert found.captured_amount == AMOUNT
    # Retrying with the same idempotency key gets the stored answer: still one charge.
    assert gateway_harness.gateway.authorise(request).gateway_reference == found.gateway_reference
    assert gateway_harness.charges(request.reference) == 1


# -- tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "month", "year", "cvc", "code"),
    [
        ("4242424242424241", 12, 2030, "123", "invalid_card_number"),
        ("4242", 12, 2030, "123", "invalid_card_number"),
        (VISA, 1, 2020, "123", "expired_card"),
        (VISA, 13, 2030, "123", "invalid_expiry_month"),
        (VISA, 12, 2030, "12", "invalid_cvc"),
    ],
)
def test_a_bad_card_is_refused_at_tokenisation(gateway_harness, number, month, year, cvc, code):
    request = TokeniseRequest(card_number=number, exp_month=month, exp_year=year, cvc=cvc)
    refused(lambda: gateway_harness.gateway.tokenise(request), code)


def test_a_token_tells_the_brand_and_last4_only(gateway_harness):
    token = gateway_harness.gateway.tokenise(
        TokeniseRequest(card_number=CMI, exp_month=12, exp_year=2031, cvc="123")
    )
    assert (token.brand, token.last4, token.country) == ("cmi", "0002", "MA")
    assert token.token.startswith("tok_") and CMI not in token.token and token.token not in repr(token)


# -- wallets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "capture", "final"),
    [
        (WALLET_APPROVES, True, TransactionStatus.CAPTURED),
        (ANY_MOBILE, True, TransactionStatus.CAPTURED),
        (WALLET_APPROVES, False, TransactionStatus.AUTHORISED),
    ],
)
def test_a_wallet_buyer_approves(gateway_harness, phone, capture, final):
    request = wallet_request(gateway_harness, phone, capture=capture)
    transaction = gateway_harness.gateway.request_to_pay(request)
    assert (transaction.status, transaction.raw_status) == (
        TransactionStatus.ACTION_REQUIRED,
        "pending_approval",
    )
    assert transaction.next_action.type == "wallet_approval"
    assert transaction.next_action.expires_at >= int(time.time()) and transaction.card is None
    answered = gateway_harness.wallet_answered(transaction)
    assert answered.status is final and answered.reference == request.reference
    assert answered.captured_amount == (AMOUNT if capture else 0)


def test_a_wallet_buyer_declines(gateway_harness):
    transaction = gateway_harness.gateway.request_to_pay(wallet_request(gateway_harness, WALLET_DECLINES))
    answered = gateway_harness.wallet_answered(transaction)
    assert (answered.status, answered.decline_code) == (TransactionStatus.DECLINED, "wallet_declined")


def test_a_wallet_request_nobody_answers_expires(gateway_harness):
    transaction = gateway_harness.gateway.request_to_pay(
        wallet_request(gateway_harness, WALLET_NEVER_ANSWERS)
    )
    expired = gateway_harness.wallet_expired(transaction)
    assert (expired.status, expired.raw_status, expired.decline_code) == (
        TransactionStatus.EXPIRED,
        "expired",
        "expired",
    )
    assert (
        gateway_harness.gateway.transaction(transaction.gateway_reference).status is TransactionStatus.EXPIRED
    )


def test_a_wallet_request_can_be_voided_while_waiting(gateway_harness):
    transaction = gateway_harness.gateway.request_to_pay(
        wallet_request(gateway_harness, WALLET_NEVER_ANSWERS)
    )
    voided = gateway_harness.gateway.void(VoidRequest(transaction.gateway_reference, key()))
    assert voided.status is TransactionStatus.VOIDED


@pytest.mark.parametrize("phone", ["+33612345678", "0612345678", "+212512345678"])
def test_a_wallet_needs_a_moroccan_mobile(gateway_harness, phone):
    refused(
        lambda: gateway_harness.gateway.request_to_pay(wallet_request(gateway_harness, phone)),
        "invalid_field",
    )


def test_only_dirhams(gateway_harness):
    request = card_request(gateway_harness)
    request = AuthoriseRequest(**{**request.__dict__, "currency": "EUR"})
    refused(lambda: gateway_harness.gateway.authorise(request), "unsupported_currency")


# -- capture and void -------------------------------------------------------------------------------


def test_a_manual_capture_is_partial_at_most_once(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = gateway.authorise(card_request(gateway_harness, capture=False))
    refused(
        lambda: gateway.capture(CaptureRequest(transaction.gateway_reference, AMOUNT + 1, key())),
        "amount_too_large",
    )
    capture_key = key()
    done = gateway.capture(CaptureRequest(transaction.gateway_reference, 10000, capture_key))
    assert (done.status, done.captured_amount, done.amount) == (TransactionStatus.CAPTURED, 10000, AMOUNT)
    # A retry of the same capture is its replay; a second capture is refused.
    assert gateway.capture(CaptureRequest(transaction.gateway_reference, 10000, capture_key)) == done
    refused(
        lambda: gateway.capture(CaptureRequest(transaction.gateway_reference, 5000, key())),
        "already_captured",
    )
    assert gateway.transaction(transaction.gateway_reference).captured_amount == 10000


def test_only_an_authorised_transaction_is_captured(gateway_harness):
    declined = gateway_harness.gateway.authorise(card_request(gateway_harness, INSUFFICIENT_FUNDS))
    refused(
        lambda: gateway_harness.gateway.capture(CaptureRequest(declined.gateway_reference, 100, key())),
        "invalid_status",
    )


def test_void_an_authorisation(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = gateway.authorise(card_request(gateway_harness, capture=False))
    voided = gateway.void(VoidRequest(transaction.gateway_reference, key()))
    assert (voided.status, voided.raw_status, voided.captured_amount) == (
        TransactionStatus.VOIDED,
        "voided",
        0,
    )
    assert gateway.void(VoidRequest(transaction.gateway_reference, key())).status is TransactionStatus.VOIDED
    refused(
        lambda: gateway.capture(CaptureRequest(transaction.gateway_reference, 100, key())), "invalid_status"
    )


def test_void_a_three_ds_challenge(gateway_harness):
    transaction = gateway_harness.gateway.authorise(card_request(gateway_harness, THREE_DS))
    voided = gateway_harness.gateway.void(VoidRequest(transaction.gateway_reference, key()))
    assert voided.status is TransactionStatus.VOIDED


def test_a_captured_transaction_is_not_voided(gateway_harness):
    transaction = captured(gateway_harness)
    refused(
        lambda: gateway_harness.gateway.void(VoidRequest(transaction.gateway_reference, key())),
        "invalid_status",
    )


# -- refunds ----------------------------------------------------------------------------------------


def test_refund_partly_then_the_rest_then_nothing_more(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = captured(gateway_harness)
    first = refund(gateway_harness, transaction, 5000)
    assert (first.status, first.raw_status) == (RefundStatus.PENDING, "pending")
    assert (first.amount, first.currency, first.transaction_reference) == (
        5000,
        "MAD",
        transaction.gateway_reference,
    )
    # A pending refund counts: what is left is 10000.
    refused(lambda: refund(gateway_harness, transaction, 10001), "refund_exceeds_captured")

    settled = gateway_harness.refund_settled(first)
    assert (settled.status, settled.raw_status, settled.failure_code) == (
        RefundStatus.SUCCEEDED,
        "succeeded",
        None,
    )
    after = gateway.transaction(transaction.gateway_reference)
    assert (after.status, after.refunded_amount) == (TransactionStatus.CAPTURED, 5000)

    rest = gateway_harness.refund_settled(refund(gateway_harness, transaction, 10000))
    assert rest.status is RefundStatus.SUCCEEDED
    assert gateway.transaction(transaction.gateway_reference).refunded_amount == AMOUNT
    refused(lambda: refund(gateway_harness, transaction, 1), "refund_exceeds_captured")

    assert gateway.refund_status(first.gateway_reference) == settled
    assert gateway.find_refund(rest.reference) == rest
    assert gateway.find_refund(new_reference("re")) is None


def test_a_refund_ending_in_13_centimes_fails_and_does_not_count(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = captured(gateway_harness)
    failed = gateway_harness.refund_settled(refund(gateway_harness, transaction, 1013))
    assert (failed.status, failed.raw_status, failed.failure_code) == (
        RefundStatus.FAILED,
        "failed",
        "refund_declined",
    )
    assert gateway.transaction(transaction.gateway_reference).refunded_amount == 0
    full = gateway_harness.refund_settled(refund(gateway_harness, transaction, AMOUNT))
    assert full.status is RefundStatus.SUCCEEDED


def test_a_refund_is_idempotent_and_its_reference_unique(gateway_harness):
    transaction = captured(gateway_harness)
    refund_key, reference = key(), new_reference("re")
    first = refund(gateway_harness, transaction, 2000, reference=reference, idempotency_key=refund_key)
    again = refund(gateway_harness, transaction, 2000, reference=reference, idempotency_key=refund_key)
    assert again.gateway_reference == first.gateway_reference
    refused(lambda: refund(gateway_harness, transaction, 2000, reference=reference), "duplicate_reference")


def test_only_a_captured_transaction_is_refunded(gateway_harness):
    transaction = gateway_harness.gateway.authorise(card_request(gateway_harness, capture=False))
    refused(lambda: refund(gateway_harness, transaction, 100), "invalid_status")


# -- lookups and idempotency ------------------------------------------------------------------------


def test_lookups_of_unknown_objects(gateway_harness):
    gateway = gateway_harness.gateway
    refused(lambda: gateway.transaction("m2t_tx_does_not_exist"), "not_found")
    refused(lambda: gateway.refund_status("m2t_re_does_not_exist"), "not_found")
    assert gateway.find_transaction(new_reference()) is None
    assert gateway.find_refund(new_reference("re")) is None


def test_an_authorisation_retried_with_its_key_is_one_charge(gateway_harness):
    gateway = gateway_harness.gateway
    request = card_request(gateway_harness)
    first = gateway.authorise(request)
    again = gateway.authorise(request)
    assert again == first
    assert gateway_harness.charges(request.reference) == 1
    # The same key for another request, or another key for the same reference, is refused.
    other_amount = AuthoriseRequest(**{**request.__dict__, "amount": AMOUNT + 100})
    refused(lambda: gateway.authorise(other_amount), "idempotency_key_reuse")
    other_key = AuthoriseRequest(**{**request.__dict__, "idempotency_key": key()})
    refused(lambda: gateway.authorise(other_key), "duplicate_reference")
    assert gateway_harness.charges(request.reference) == 1


def test_concurrent_retries_of_one_authorisation_are_one_charge(gateway_harness):
    request = card_request(gateway_harness)
    answers, errors = [], []

    def confirm():
        try:
            answers.append(gateway_harness.gateway.authorise(request).gateway_reference)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=confirm) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and len(answers) == 20 and len(set(answers)) == 1
    assert gateway_harness.charges(request.reference) == 1


# -- callbacks --------------------------------------------------------------------------------------


def test_a_capture_calls_back(gateway_harness):
    transaction = captured(gateway_harness)
    headers, raw = gateway_harness.callback("transaction.captured", id=transaction.gateway_reference)
    callback = gateway_harness.gateway.parse_callback(headers, raw)
    assert callback.event_id.startswith("evt_") and callback.type == "transaction.captured"
    assert callback.kind is CallbackKind.TRANSACTION and callback.refund is None and callback.dispute is None
    assert callback.transaction.status is TransactionStatus.CAPTURED
    assert callback.transaction.gateway_reference == transaction.gateway_reference
    assert callback.transaction.reference == transaction.reference


def test_decline_void_and_wallet_callbacks(gateway_harness):
    gateway = gateway_harness.gateway
    declined = gateway.authorise(card_request(gateway_harness, STOLEN))
    authorised = gateway.authorise(card_request(gateway_harness, capture=False))
    gateway.void(VoidRequest(authorised.gateway_reference, key()))
    wallet = gateway.request_to_pay(wallet_request(gateway_harness, WALLET_DECLINES))
    gateway_harness.wallet_answered(wallet)
    expected = [
        ("transaction.declined", declined, TransactionStatus.DECLINED),
        ("transaction.authorised", authorised, TransactionStatus.AUTHORISED),
        ("transaction.voided", authorised, TransactionStatus.VOIDED),
        ("transaction.pending_approval", wallet, TransactionStatus.ACTION_REQUIRED),
        ("transaction.declined", wallet, TransactionStatus.DECLINED),
    ]
    for event_type, transaction, status in expected:
        callback = gateway.parse_callback(
            *gateway_harness.callback(event_type, id=transaction.gateway_reference)
        )
        assert (callback.kind, callback.transaction.status) == (CallbackKind.TRANSACTION, status), event_type


def test_refund_callbacks(gateway_harness):
    transaction = captured(gateway_harness)
    succeeded = gateway_harness.refund_settled(refund(gateway_harness, transaction, 4000))
    failed = gateway_harness.refund_settled(refund(gateway_harness, transaction, 2013))
    for event_type, refund_, status in (
        ("refund.succeeded", succeeded, RefundStatus.SUCCEEDED),
        ("refund.failed", failed, RefundStatus.FAILED),
    ):
        callback = gateway_harness.gateway.parse_callback(
            *gateway_harness.callback(event_type, id=refund_.gateway_reference)
        )
        assert (callback.kind, callback.refund.status) == (CallbackKind.REFUND, status)
        assert callback.refund.reference == refund_.reference
        assert callback.refund.transaction_reference == transaction.gateway_reference


def test_a_tampered_stale_or_unsigned_callback_is_invalid(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = captured(gateway_harness)
    headers, raw = gateway_harness.callback("transaction.captured", id=transaction.gateway_reference)
    body = json.loads(raw)
    body["data"]["amount"] += 1
    tampered = json.dumps(body).encode("utf-8")
    cases = [
        (headers, tampered, "mismatch"),
        (gateway_harness.sign(raw, timestamp=int(time.time()) - 3600), raw, "timestamp_outside_tolerance"),
        (gateway_harness.sign(raw, timestamp=int(time.time()) + 3600), raw, "timestamp_outside_tolerance"),
        ({}, raw, "missing"),
    ]
    for case_headers, case_body, reason in cases:
        with pytest.raises(InvalidCallback) as raised:
            gateway.parse_callback(case_headers, case_body)
        assert raised.value.reason == reason
    # Re-signed now, the same body reads again (a legitimate redelivery).
    assert (
        gateway.parse_callback(gateway_harness.sign(raw), raw).transaction.gateway_reference
        == transaction.gateway_reference
    )


def test_a_dispute_opens_and_closes_by_callback(gateway_harness):
    gateway = gateway_harness.gateway
    transaction = captured(gateway_harness)
    dispute = gateway_harness.open_dispute(transaction, amount=5000, reason="product_not_received")
    assert (dispute.status, dispute.raw_status, dispute.amount) == (DisputeStatus.OPEN, "open", 5000)

    opened = gateway.parse_callback(*gateway_harness.callback("dispute.opened", id=dispute.gateway_reference))
    assert opened.kind is CallbackKind.DISPUTE and opened.transaction is None
    assert (opened.dispute.status, opened.dispute.reason) == (DisputeStatus.OPEN, "product_not_received")
    assert opened.dispute.transaction_reference == transaction.gateway_reference
    assert opened.dispute.payment_reference == transaction.reference

    closed = gateway_harness.close_dispute(dispute, "lost")
    assert closed.status is DisputeStatus.LOST
    callback = gateway.parse_callback(
        *gateway_harness.callback("dispute.closed", id=dispute.gateway_reference)
    )
    assert (callback.kind, callback.dispute.status, callback.dispute.raw_status) == (
        CallbackKind.DISPUTE,
        DisputeStatus.LOST,
        "lost",
    )


def test_a_dispute_won(gateway_harness):
    transaction = captured(gateway_harness)
    dispute = gateway_harness.open_dispute(transaction)
    assert (dispute.amount, dispute.reason) == (AMOUNT, "fraudulent")
    assert gateway_harness.close_dispute(dispute, "won").status is DisputeStatus.WON
    callback = gateway_harness.gateway.parse_callback(
        *gateway_harness.callback("dispute.closed", id=dispute.gateway_reference)
    )
    assert callback.dispute.status is DisputeStatus.WON


def test_the_dispute_test_card_is_disputed_by_itself(gateway_harness):
    transaction = captured(gateway_harness, DISPUTED)
    callback = gateway_harness.gateway.parse_callback(
        *gateway_harness.callback("dispute.opened", transaction_id=transaction.gateway_reference)
    )
    assert (callback.kind, callback.dispute.status) == (CallbackKind.DISPUTE, DisputeStatus.OPEN)
    assert (callback.dispute.amount, callback.dispute.reason) == (AMOUNT, "fraudulent")
    assert callback.dispute.payment_reference == transaction.reference
