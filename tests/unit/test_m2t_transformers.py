"""M2T's wire JSON ↔ the gateway interface: every status of the spec maps (and nothing else does),
malformed payloads are refused, callbacks read to the right kind, and no card data reaches a repr."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from services.payments.adapters.gateways.m2t import SIGNATURE_HEADER, M2TGateway
from services.payments.adapters.gateways.m2t import transformers as wire
from services.payments.adapters.gateways.m2t.gateway import read_answer
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CallbackKind,
    CardToken,
    DisputeStatus,
    GatewayOutcomeUnknown,
    InvalidCallback,
    PaymentMethod,
    RefundStatus,
    TokeniseRequest,
    TransactionStatus,
)
from shared.signatures import sign

PAN = "4242424242424242"
PHONE = "+212612345678"
TOKEN = "tok_0123456789abcdef01234567"
SECRET = "unit-test-m2t-secret"

# The spec's complete lists, written out again here so a change to either side is noticed.
SPEC_TRANSACTION_STATUSES = {
    "three_ds_required": TransactionStatus.ACTION_REQUIRED,
    "pending_approval": TransactionStatus.ACTION_REQUIRED,
    "authorised": TransactionStatus.AUTHORISED,
    "captured": TransactionStatus.CAPTURED,
    "declined": TransactionStatus.DECLINED,
    "voided": TransactionStatus.VOIDED,
    "expired": TransactionStatus.EXPIRED,
}
SPEC_REFUND_STATUSES = {
    "pending": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
}
SPEC_DISPUTE_STATUSES = {"open": DisputeStatus.OPEN, "won": DisputeStatus.WON, "lost": DisputeStatus.LOST}


def transaction_json(status: str = "captured", **overrides) -> dict:
    payload = {
        "id": "m2t_tx_1",
        "reference": "pay_1",
        "method": "card",
        "status": status,
        "amount": 15000,
        "currency": "MAD",
        "captured_amount": 15000 if status == "captured" else 0,
        "refunded_amount": 0,
        "card": {"brand": "visa", "last4": "4242", "country": "US"},
        "phone_last4": None,
        "decline_code": None,
        "decline_message": None,
        "three_ds": None,
        "wallet": None,
        "created": 1_700_000_000,
        "updated": 1_700_000_005,
    }
    if status == "three_ds_required":
        payload["three_ds"] = {"redirect_url": "http://m2t.test/3ds/m2t_tx_1"}
    if status == "pending_approval":
        payload.update(
            method="mobile_wallet", card=None, phone_last4="5678", wallet={"expires_at": 1_700_000_120}
        )
    payload.update(overrides)
    return payload


def refund_json(status: str = "pending", **overrides) -> dict:
    payload = {
        "id": "m2t_re_1",
        "reference": "re_1",
        "transaction_id": "m2t_tx_1",
        "amount": 5000,
        "currency": "MAD",
        "status": status,
        "failure_code": None,
        "created": 1_700_000_010,
        "updated": 1_700_000_011,
    }
    payload.update(overrides)
    return payload


def dispute_json(status: str = "open", **overrides) -> dict:
    payload = {
        "id": "m2t_dp_1",
        "transaction_id": "m2t_tx_1",
        "transaction_reference": "pay_1",
        "amount": 15000,
        "currency": "MAD",
        "reason": "fraudulent",
        "status": status,
        "created": 1_700_000_020,
        "updated": 1_700_000_021,
    }
    payload.update(overrides)
    return payload


# -- status tables -----------------------------------------------------------------------------------


def test_the_status_tables_are_exactly_the_specs():
    assert dict(wire.TRANSACTION_STATUSES) == SPEC_TRANSACTION_STATUSES
    assert dict(wire.REFUND_STATUSES) == SPEC_REFUND_STATUSES
    assert dict(wire.DISPUTE_STATUSES) == SPEC_DISPUTE_STATUSES


def test_every_normalised_status_is_reachable():
    assert set(wire.TRANSACTION_STATUSES.values()) == set(TransactionStatus)
    assert set(wire.REFUND_STATUSES.values()) == set(RefundStatus)
    assert set(wire.DISPUTE_STATUSES.values()) == set(DisputeStatus)


@pytest.mark.parametrize(("raw", "expected"), sorted(SPEC_TRANSACTION_STATUSES.items()))
def test_transaction_status(raw, expected):
    transaction = wire.transaction_from(transaction_json(raw))
    assert (transaction.status, transaction.raw_status) == (expected, raw)


@pytest.mark.parametrize(("raw", "expected"), sorted(SPEC_REFUND_STATUSES.items()))
def test_refund_status(raw, expected):
    refund = wire.refund_from(refund_json(raw))
    assert (refund.status, refund.raw_status) == (expected, raw)


@pytest.mark.parametrize(("raw", "expected"), sorted(SPEC_DISPUTE_STATUSES.items()))
def test_dispute_status(raw, expected):
    dispute = wire.dispute_from(dispute_json(raw))
    assert (dispute.status, dispute.raw_status) == (expected, raw)


@pytest.mark.parametrize(
    ("reader", "payload"),
    [
        (wire.transaction_from, transaction_json("refunded")),
        (wire.transaction_from, transaction_json("CAPTURED")),
        (wire.transaction_from, transaction_json("succeeded")),
        (wire.refund_from, refund_json("captured")),
        (wire.refund_from, refund_json("refunded")),
        (wire.dispute_from, dispute_json("under_review")),
        (wire.dispute_from, dispute_json("closed")),
    ],
)
def test_an_unknown_status_is_refused_never_guessed(reader, payload):
    with pytest.raises(wire.UnknownM2TStatus) as raised:
        reader(payload)
    assert raised.value.raw_status == payload["status"]
    assert repr(payload["status"]) in str(raised.value) and "not mapped" in str(raised.value)


def test_an_unknown_status_in_an_api_answer_is_an_unknown_outcome():
    with pytest.raises(GatewayOutcomeUnknown) as raised:
        read_answer(wire.transaction_from, transaction_json("partially_captured"))
    assert (raised.value.code, raised.value.raw_status) == ("unknown_status", "partially_captured")


# -- the objects --------------------------------------------------------------------------------------


def test_a_captured_card_transaction():
    transaction = wire.transaction_from(transaction_json("captured", refunded_amount=2000))
    assert transaction.gateway_reference == "m2t_tx_1" and transaction.reference == "pay_1"
    assert (transaction.amount, transaction.captured_amount, transaction.refunded_amount) == (
        15000,
        15000,
        2000,
    )
    assert transaction.currency == "MAD" and transaction.next_action is None
    assert (transaction.card.brand, transaction.card.last4, transaction.card.country) == (
        "visa",
        "4242",
        "US",
    )
    assert transaction.updated_at == 1_700_000_005


def test_three_ds_required_asks_for_a_redirect():
    transaction = wire.transaction_from(transaction_json("three_ds_required"))
    assert transaction.next_action.type == wire.REDIRECT_TO_URL
    assert transaction.next_action.redirect_url == "http://m2t.test/3ds/m2t_tx_1"


def test_pending_approval_asks_for_the_wallet_until_it_expires():
    transaction = wire.transaction_from(transaction_json("pending_approval"))
    assert transaction.next_action.type == wire.WALLET_APPROVAL
    assert transaction.next_action.expires_at == 1_700_000_120
    assert transaction.card is None


def test_a_decline_keeps_m2ts_code_and_message():
    transaction = wire.transaction_from(
        transaction_json("declined", decline_code="insufficient_funds", decline_message="Not enough money.")
    )
    assert (transaction.decline_code, transaction.decline_message) == (
        "insufficient_funds",
        "Not enough money.",
    )


def test_a_failed_refund_keeps_its_failure_code():
    refund = wire.refund_from(refund_json("failed", failure_code="refund_declined"))
    assert (refund.transaction_reference, refund.failure_code) == ("m2t_tx_1", "refund_declined")


def test_a_dispute_names_m2ts_transaction_and_our_payment():
    dispute = wire.dispute_from(dispute_json())
    assert (dispute.transaction_reference, dispute.payment_reference) == ("m2t_tx_1", "pay_1")
    assert dispute.reason == "fraudulent"


def test_lists():
    assert wire.transactions_from_list({"data": []}) == []
    (transaction,) = wire.transactions_from_list({"data": [transaction_json()]})
    assert transaction.reference == "pay_1"
    (refund,) = wire.refunds_from_list({"data": [refund_json()]})
    assert refund.reference == "re_1"


def test_card_token():
    token = wire.card_token_from(
        {"token": TOKEN, "brand": "cmi", "last4": "0002", "exp_month": 12, "exp_year": 2030, "country": "MA"}
    )
    assert (token.token, token.brand, token.last4, token.country) == (TOKEN, "cmi", "0002", "MA")


# -- malformed payloads --------------------------------------------------------------------------------


def _without(payload: dict, key: str) -> dict:
    payload = copy.deepcopy(payload)
    del payload[key]
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "captured",
        42,
        _without(transaction_json(), "id"),
        _without(transaction_json(), "reference"),
        _without(transaction_json(), "status"),
        _without(transaction_json(), "amount"),
        _without(transaction_json(), "currency"),
        _without(transaction_json(), "updated"),
        transaction_json(amount="15000"),
        transaction_json(amount=150.0),
        transaction_json(amount=True),
        transaction_json(amount=-1),
        transaction_json(captured_amount=None),
        transaction_json(status=None),
        transaction_json(status=7),
        transaction_json(id=""),
        transaction_json(card="visa"),
        transaction_json(card={"brand": "visa"}),
        transaction_json(decline_code=12),
        transaction_json("three_ds_required", three_ds=None),
        transaction_json("three_ds_required", three_ds={}),
        transaction_json("pending_approval", wallet=None),
        transaction_json("pending_approval", wallet={"expires_at": "soon"}),
    ],
)
def test_a_malformed_transaction_is_refused(payload):
    with pytest.raises(wire.M2TPayloadError):
        wire.transaction_from(payload)


@pytest.mark.parametrize(
    ("reader", "payload"),
    [
        (wire.refund_from, _without(refund_json(), "transaction_id")),
        (wire.refund_from, refund_json(amount="5000")),
        (wire.refund_from, refund_json(failure_code=["x"])),
        (wire.dispute_from, _without(dispute_json(), "reason")),
        (wire.dispute_from, dispute_json(amount=None)),
        (wire.card_token_from, {"brand": "visa", "last4": "4242"}),
        (wire.transactions_from_list, {"data": {"id": "m2t_tx_1"}}),
        (wire.transactions_from_list, {}),
        (wire.transactions_from_list, {"data": [transaction_json(amount="1")]}),
        (wire.refunds_from_list, []),
    ],
)
def test_other_malformed_payloads_are_refused(reader, payload):
    with pytest.raises(wire.M2TPayloadError):
        reader(payload)


def test_an_unreadable_api_answer_is_an_unknown_outcome():
    with pytest.raises(GatewayOutcomeUnknown) as raised:
        read_answer(wire.transaction_from, {"status": "captured"})
    assert raised.value.code == "unreadable_answer"


# -- callbacks ------------------------------------------------------------------------------------------


CALLBACK_CASES = [
    ("transaction.captured", transaction_json("captured"), CallbackKind.TRANSACTION),
    ("transaction.authorised", transaction_json("authorised"), CallbackKind.TRANSACTION),
    (
        "transaction.declined",
        transaction_json("declined", decline_code="wallet_declined"),
        CallbackKind.TRANSACTION,
    ),
    ("transaction.voided", transaction_json("voided"), CallbackKind.TRANSACTION),
    ("transaction.pending_approval", transaction_json("pending_approval"), CallbackKind.TRANSACTION),
    ("transaction.expired", transaction_json("expired", decline_code="expired"), CallbackKind.TRANSACTION),
    ("refund.succeeded", refund_json("succeeded"), CallbackKind.REFUND),
    ("refund.failed", refund_json("failed", failure_code="refund_declined"), CallbackKind.REFUND),
    ("dispute.opened", dispute_json("open"), CallbackKind.DISPUTE),
    ("dispute.closed", dispute_json("lost"), CallbackKind.DISPUTE),
]


def test_every_callback_type_of_the_spec_is_mapped():
    assert set(wire.CALLBACK_KINDS) == {case[0] for case in CALLBACK_CASES}


@pytest.mark.parametrize(("event_type", "data", "kind"), CALLBACK_CASES)
def test_callback_kinds(event_type, data, kind):
    callback = wire.callback_from({"id": "evt_1", "type": event_type, "created": 1_700_000_030, "data": data})
    assert (callback.event_id, callback.type, callback.kind) == ("evt_1", event_type, kind)
    objects = {
        CallbackKind.TRANSACTION: callback.transaction,
        CallbackKind.REFUND: callback.refund,
        CallbackKind.DISPUTE: callback.dispute,
    }
    assert objects.pop(kind).raw_status == data["status"]
    assert list(objects.values()) == [None, None]


def gateway(**overrides) -> M2TGateway:
    return M2TGateway(
        "http://m2t.invalid", api_key="unused", callback_secret=SECRET, timeout=1.0, **overrides
    )


def signed(body: dict | bytes, *, timestamp: int | None = None, secret: str = SECRET) -> tuple[dict, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {SIGNATURE_HEADER: sign(secret, raw, timestamp)}, raw


def test_parse_callback_reads_a_signed_body():
    headers, raw = signed(
        {"id": "evt_9", "type": "refund.succeeded", "created": 1, "data": refund_json("succeeded")}
    )
    callback = gateway().parse_callback({"m2t-signature": headers[SIGNATURE_HEADER]}, raw)  # any header case
    assert (callback.kind, callback.refund.status) == (CallbackKind.REFUND, RefundStatus.SUCCEEDED)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"id": "evt_1", "type": "transaction.refunded", "data": transaction_json()}, "unknown_type"),
        (
            {"id": "evt_1", "type": "transaction.captured", "data": transaction_json("settled")},
            "unknown_status",
        ),
        ({"id": "evt_1", "type": "refund.failed", "data": refund_json("cancelled")}, "unknown_status"),
        ({"id": "evt_1", "type": "transaction.captured"}, "malformed"),
        ({"id": "evt_1", "type": "transaction.captured", "data": transaction_json(amount="1")}, "malformed"),
        ({"id": "evt_1", "type": "dispute.opened", "data": dispute_json(reason=None)}, "malformed"),
        ({"type": "transaction.captured", "data": transaction_json()}, "malformed"),
        ({"id": "evt_1", "data": transaction_json()}, "malformed"),
        (b"[1, 2]", "malformed"),
        (b"not json", "malformed"),
    ],
)
def test_a_genuine_but_unreadable_callback_is_invalid(body, reason):
    headers, raw = signed(body)
    with pytest.raises(InvalidCallback) as raised:
        gateway().parse_callback(headers, raw)
    assert raised.value.reason == reason


def test_forged_stale_and_unsigned_callbacks_are_invalid():
    body = {"id": "evt_1", "type": "transaction.captured", "created": 1, "data": transaction_json()}
    headers, raw = signed(body)
    cases = [
        (headers, raw.replace(b"15000", b"15001"), "mismatch"),
        (signed(body, secret="another-secret")[0], raw, "mismatch"),
        (signed(body, timestamp=1_000)[0], raw, "timestamp_outside_tolerance"),
        ({}, raw, "missing"),
        ({SIGNATURE_HEADER: "v1=abc"}, raw, "malformed"),
    ]
    for case_headers, case_body, reason in cases:
        with pytest.raises(InvalidCallback) as raised:
            gateway().parse_callback(case_headers, case_body)
        assert raised.value.reason == reason


def test_the_replay_window_is_configurable():
    headers, raw = signed(
        {"id": "e", "type": "refund.succeeded", "data": refund_json()},
        timestamp=int(__import__("time").time()) - 100,
    )
    assert gateway(tolerance_seconds=300).parse_callback(headers, raw).kind is CallbackKind.REFUND
    with pytest.raises(InvalidCallback):
        gateway(tolerance_seconds=30).parse_callback(headers, raw)


def test_a_rotated_secret_still_verifies():
    headers, raw = signed({"id": "e", "type": "refund.succeeded", "data": refund_json()}, secret="old-secret")
    reader = M2TGateway(
        "http://m2t.invalid", api_key="k", callback_secret=["new-secret", "old-secret"], timeout=1
    )
    assert reader.parse_callback(headers, raw).event_id == "e"


# -- request bodies and card data ------------------------------------------------------------------------


def card_request(**overrides) -> AuthoriseRequest:
    fields = dict(
        reference="pay_1",
        amount=15000,
        currency="MAD",
        method=PaymentMethod.CARD,
        capture=True,
        callback_url="https://hirfa.test/v1/gateways/m2t/callbacks",
        idempotency_key="k1",
        card_token=TOKEN,
        return_url="https://hirfa.test/return",
    )
    fields.update(overrides)
    return AuthoriseRequest(**fields)


def test_authorise_body_sends_only_the_methods_fields():
    assert wire.authorise_body(card_request()) == {
        "reference": "pay_1",
        "amount": 15000,
        "currency": "MAD",
        "method": "card",
        "capture": True,
        "callback_url": "https://hirfa.test/v1/gateways/m2t/callbacks",
        "card_token": TOKEN,
        "return_url": "https://hirfa.test/return",
    }
    wallet = card_request(
        method=PaymentMethod.MOBILE_WALLET,
        card_token=None,
        phone=PHONE,
        return_url=None,
        capture=False,
        description="Tapis",
    )
    assert wire.authorise_body(wallet) == {
        "reference": "pay_1",
        "amount": 15000,
        "currency": "MAD",
        "method": "mobile_wallet",
        "capture": False,
        "callback_url": "https://hirfa.test/v1/gateways/m2t/callbacks",
        "phone": PHONE,
        "description": "Tapis",
    }


def test_no_card_number_token_or_phone_in_a_repr():
    tokenise = TokeniseRequest(card_number=PAN, exp_month=12, exp_year=2030, cvc="123")
    card = CardToken(token=TOKEN, brand="visa", last4="4242", country="US")
    wallet = card_request(method=PaymentMethod.MOBILE_WALLET, card_token=None, phone=PHONE)
    texts = [
        repr(tokenise),
        str(tokenise),
        repr(card),
        str(card),
        repr(card_request()),
        repr(wallet),
        repr(gateway()),
        repr(wire.transaction_from(transaction_json())),
    ]
    for text in texts:
        for secret in (PAN, PAN[:12], TOKEN, PHONE, "123'", SECRET):
            assert secret not in text, text
    assert "4242" in repr(card)


def test_a_transaction_read_from_the_wire_carries_no_card_number():
    fields = dataclasses.asdict(wire.transaction_from(transaction_json()))
    assert PAN not in json.dumps(fields)
