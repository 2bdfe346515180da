"""The M2T adapter's HTTP glue, beyond the contract: headers, retries, what each failure means, the
backoff, and no card data or key in logs. A scripted ``requests.Session`` plays M2T, except in the
last tests, which use the sandbox (the retry that cures a timeout, a wrong key, stale callbacks)."""

from __future__ import annotations

import json
import logging
import random
import uuid

import pytest
import requests

from services.payments.adapters.gateways.m2t import M2TGateway
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CallbackKind,
    CaptureRequest,
    GatewayOutcomeUnknown,
    GatewayRequestRefused,
    PaymentMethod,
    RequestToPay,
    TokeniseRequest,
    TransactionStatus,
    UnmappedCallback,
    UnrecognisedCallback,
    UnsupportedOperation,
    VoidRequest,
)
from shared.partner_ports import InvalidCallback, PartnerError
from shared.partners import PartnerHttpClient
from shared.signatures import sign
from tests.contract.conftest import M2T_API_KEY, M2T_CALLBACK_SECRET, M2TSandboxHarness, new_reference
from tests.unit.test_m2t_transformers import dispute_json, refund_json, transaction_json

PAN = "4242424242424242"
TOKEN = "tok_secret0123456789abcdef"
PHONE = "+212612345678"
API_KEY = "scripted-api-key"


class ScriptedSession(requests.Session):
    """Answers each request with the next scripted answer (a status and JSON body, or an exception)."""

    def __init__(self, *answers) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls: list[dict] = []

    def request(self, method, url, **kwargs):  # noqa: D401 - requests' signature
        self.calls.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = url
        return response


def gateway(session: ScriptedSession, **overrides) -> M2TGateway:
    settings = dict(
        api_key=API_KEY,
        callback_secret="s",
        timeout=2.5,
        retries=2,
        retry_backoff_seconds=0.0,
        allow_tokenise=True,
        session=session,
    )
    settings.update(overrides)
    return M2TGateway("http://m2t.test/", **settings)


def card_request(**overrides) -> AuthoriseRequest:
    fields = dict(
        reference="pay_1",
        amount=15000,
        currency="MAD",
        method=PaymentMethod.CARD,
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="idem-1",
        card_token=TOKEN,
    )
    fields.update(overrides)
    return AuthoriseRequest(**fields)


def error(code: str) -> dict:
    return {"code": code, "message": "scripted"}


def test_every_post_carries_its_idempotency_key_on_every_attempt():
    session = ScriptedSession((500, error("processing_error")), (201, transaction_json("captured")))
    transaction = gateway(session).authorise(card_request())
    assert transaction.status is TransactionStatus.CAPTURED
    assert [call["headers"]["Idempotency-Key"] for call in session.calls] == ["idem-1", "idem-1"]
    for call in session.calls:
        assert (call["method"], call["url"]) == ("POST", "http://m2t.test/v1/transactions")
        assert call["headers"]["Authorization"] == f"Bearer {API_KEY}"
        assert call["timeout"] == 2.5 and call["json"]["card_token"] == TOKEN


def test_every_post_has_a_key_and_reads_none():
    session = ScriptedSession(
        (200, transaction_json("captured")),
        (200, transaction_json("voided")),
        (200, transaction_json("captured")),
        (200, {"data": []}),
    )
    adapter = gateway(session)
    adapter.capture(CaptureRequest("m2t_tx_1", 100, "idem-capture"))
    adapter.void(VoidRequest("m2t_tx_1", "idem-void"))
    adapter.complete_three_ds("m2t_tx_1", "idem-3ds")
    assert adapter.find_transaction("pay_1") is None
    posts, get = session.calls[:3], session.calls[3]
    assert [call["headers"]["Idempotency-Key"] for call in posts] == ["idem-capture", "idem-void", "idem-3ds"]
    assert [call["url"].rsplit("/", 1)[-1] for call in posts] == ["capture", "void", "complete"]
    assert "Idempotency-Key" not in get["headers"] and get["params"] == {"reference": "pay_1"}


def test_tokenise_makes_one_key_per_call_kept_across_retries():
    token = {
        "token": TOKEN,
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "country": "US",
    }
    session = ScriptedSession(requests.ConnectionError("reset"), (201, token), (201, token))
    adapter = gateway(session)
    request = TokeniseRequest(card_number=PAN, exp_month=12, exp_year=2030, cvc="123")
    assert adapter.tokenise(request).token == TOKEN
    adapter.tokenise(request)
    keys = [call["headers"]["Idempotency-Key"] for call in session.calls]
    assert keys[0] == keys[1] != keys[2]


def test_tokenise_is_off_unless_allowed():
    session = ScriptedSession()
    with pytest.raises(UnsupportedOperation) as raised:
        gateway(session, allow_tokenise=False).tokenise(TokeniseRequest(PAN, 12, 2030, "123"))
    assert raised.value.code == "tokenise_disabled" and session.calls == []
    assert M2TGateway("http://m2t.test", api_key="k", callback_secret="s").allow_tokenise is False


def test_a_refusal_keeps_m2ts_code_and_is_not_retried():
    session = ScriptedSession((409, error("already_captured")))
    with pytest.raises(GatewayRequestRefused) as raised:
        gateway(session).capture(CaptureRequest("m2t_tx_1", 100, "idem"))
    assert raised.value.code == "already_captured" and len(session.calls) == 1


def test_a_refusal_without_m2ts_body_still_says_its_status():
    session = ScriptedSession((404, b"<html>not found</html>"))
    with pytest.raises(GatewayRequestRefused) as raised:
        gateway(session).transaction("m2t_tx_1")
    assert raised.value.code == "http_404"


@pytest.mark.parametrize(
    "failure",
    [
        requests.ReadTimeout("slow"),
        requests.ConnectionError("reset"),
        requests.ConnectTimeout("no route"),
        (502, b"bad gateway"),
        (500, error("processing_error")),
        (429, error("rate_limited")),
        (200, b"not json"),
    ],
)
def test_a_transient_failure_is_retried_then_an_unknown_outcome(failure):
    session = ScriptedSession(failure, failure, failure)
    with pytest.raises(GatewayOutcomeUnknown):
        gateway(session).authorise(card_request())
    assert len(session.calls) == 3  # 1 + retries


def test_a_conflict_after_an_unknown_attempt_is_still_unknown():
    # The first attempt timed out but happened: the retry's "duplicate" is about it, not a refusal.
    session = ScriptedSession(requests.ReadTimeout("slow"), (409, error("duplicate_reference")))
    with pytest.raises(GatewayOutcomeUnknown) as raised:
        gateway(session).authorise(card_request())
    assert raised.value.code == "duplicate_reference"


def test_a_validation_refusal_after_an_unknown_attempt_is_a_refusal():
    session = ScriptedSession(requests.ConnectionError("reset"), (422, error("invalid_field")))
    with pytest.raises(GatewayRequestRefused) as raised:
        gateway(session).authorise(card_request())
    assert raised.value.code == "invalid_field"


def test_an_unreadable_or_unknown_answer_is_an_unknown_outcome():
    session = ScriptedSession(
        (201, transaction_json("captured", amount="lots")), (201, transaction_json("held"))
    )
    adapter = gateway(session, retries=0)
    with pytest.raises(GatewayOutcomeUnknown) as unreadable:
        adapter.authorise(card_request())
    with pytest.raises(GatewayOutcomeUnknown) as unknown:
        adapter.authorise(card_request())
    assert unreadable.value.code == "unreadable_answer"
    assert (unknown.value.code, unknown.value.raw_status) == ("unknown_status", "held")


@pytest.mark.parametrize(
    ("body", "reason", "expected"),
    [
        (
            {"id": "evt_1", "type": "transaction.captured", "data": transaction_json("settled")},
            "unknown_status",
            UnmappedCallback(
                "evt_1",
                "transaction.captured",
                CallbackKind.TRANSACTION,
                "settled",
                "m2t_tx_1",
                "pay_1",
                None,
                None,
            ),
        ),
        (
            {"id": "evt_2", "type": "transaction.refunded", "data": transaction_json()},
            "unknown_type",
            UnmappedCallback(
                "evt_2",
                "transaction.refunded",
                CallbackKind.TRANSACTION,
                "captured",
                "m2t_tx_1",
                "pay_1",
                None,
                None,
            ),
        ),
        (
            {"id": "evt_3", "type": "refund.pending", "data": refund_json()},
            "unknown_type",
            UnmappedCallback(
                "evt_3",
                "refund.pending",
                CallbackKind.REFUND,
                "pending",
                "m2t_re_1",
                "re_1",
                "m2t_tx_1",
                None,
            ),
        ),
        (
            {"id": "evt_4", "type": "dispute.closed", "data": dispute_json("accepted")},
            "unknown_status",
            UnmappedCallback(
                "evt_4",
                "dispute.closed",
                CallbackKind.DISPUTE,
                "accepted",
                "m2t_dp_1",
                None,
                "m2t_tx_1",
                "pay_1",
            ),
        ),
        (
            {"id": "evt_5", "type": "payout.paid", "data": {"id": "po_1", "status": 3}},
            "unknown_type",
            UnmappedCallback("evt_5", "payout.paid", None, None, "po_1", None, None, None),
        ),
    ],
)
def test_a_genuine_callback_not_mapped_says_what_it_is_about(body, reason, expected):
    raw = json.dumps(body).encode()
    adapter = gateway(ScriptedSession())
    with pytest.raises(UnrecognisedCallback) as raised:
        adapter.parse_callback({"M2T-Signature": sign("s", raw)}, raw)
    assert raised.value.reason == reason
    assert raised.value.callback == expected
    # Forged, the same body is a plain invalid callback: nothing of it is read.
    with pytest.raises(InvalidCallback) as forged:
        adapter.parse_callback({"M2T-Signature": sign("not-the-secret", raw)}, raw)
    assert not isinstance(forged.value, UnrecognisedCallback) and forged.value.reason == "mismatch"


def test_ids_cannot_change_the_path():
    session = ScriptedSession((200, transaction_json()))
    gateway(session).transaction("../../v1/tokens?x=1")
    assert session.calls[0]["url"] == "http://m2t.test/v1/transactions/..%2F..%2Fv1%2Ftokens%3Fx%3D1"


def test_the_backoff_doubles_with_jitter_and_a_cap():
    waits: list[float] = []
    client = PartnerHttpClient(
        "http://p.test",
        api_key="k",
        timeout=1,
        retries=5,
        retry_backoff_seconds=0.1,
        retry_max_backoff_seconds=0.5,
        retry_jitter=0.25,
        sleep=waits.append,
        rng=random.Random(7),
        session=ScriptedSession(*[requests.ReadTimeout("slow")] * 6),
    )
    with pytest.raises(PartnerError) as raised:
        client.call("GET", "/x", idempotent=True)
    assert raised.value.attempts == 6 and raised.value.kind == "timeout" and raised.value.outcome_unknown
    for wait, base in zip(waits, [0.1, 0.2, 0.4, 0.5, 0.5], strict=True):
        assert base * 0.75 <= wait <= base * 1.25
    assert len(set(waits)) == len(waits)  # jittered, not lockstep


def test_a_call_not_declared_idempotent_is_never_retried():
    session = ScriptedSession(requests.ReadTimeout("slow"))
    client = PartnerHttpClient("http://p.test", api_key="k", timeout=1, retries=3, session=session)
    with pytest.raises(PartnerError):
        client.call("POST", "/x", {}, idempotent=False)
    assert len(session.calls) == 1


def test_partner_errors_say_what_happened():
    legacy = PartnerError("bank partner unreachable: ConnectionError", transient=True)
    assert (legacy.status, legacy.code, legacy.kind, legacy.outcome_unknown) == (
        None,
        None,
        "unreachable",
        True,
    )
    refused = PartnerError("refused", transient=False, status=422, code="invalid_rib")
    assert (refused.kind, refused.refused, refused.outcome_unknown) == ("refused", True, False)
    throttled = PartnerError("busy", transient=True, status=429)
    assert (throttled.kind, throttled.refused, throttled.outcome_unknown) == ("throttled", True, False)
    assert PartnerError("down", transient=True, status=503).outcome_unknown


def test_no_card_data_or_key_in_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    session = ScriptedSession(
        requests.ReadTimeout("slow"),
        (500, error("processing_error")),
        (422, error("invalid_card_number")),
        requests.ReadTimeout("slow"),
        requests.ReadTimeout("slow"),
        requests.ReadTimeout("slow"),
    )
    adapter = gateway(session)
    with pytest.raises(GatewayRequestRefused) as tokenise_error:
        adapter.tokenise(TokeniseRequest(card_number=PAN, exp_month=12, exp_year=2030, cvc="123"))
    wallet = RequestToPay(
        reference="pay_1",
        amount=15000,
        currency="MAD",
        phone=PHONE,
        capture=True,
        callback_url="https://hirfa.test/cb",
        idempotency_key="idem-1",
    )
    with pytest.raises(GatewayOutcomeUnknown) as authorise_error:
        adapter.request_to_pay(wallet)
    text = caplog.text + str(tokenise_error.value) + str(authorise_error.value) + repr(adapter)
    assert "retrying" in caplog.text
    for secret in (PAN, TOKEN, PHONE, API_KEY, "123'"):
        assert secret not in text


# -- against the sandbox -------------------------------------------------------------------------------


@pytest.fixture
def sandbox(m2t_sandbox) -> M2TSandboxHarness:
    url, receiver = m2t_sandbox
    return M2TSandboxHarness(url, receiver)


def sandbox_card_request(harness: M2TSandboxHarness, number: str) -> AuthoriseRequest:
    return card_request(
        reference=new_reference(),
        idempotency_key=uuid.uuid4().hex,
        card_token=harness.card_token(number),
        callback_url=harness.callback_url,
    )


@pytest.mark.integration
def test_a_retry_cures_a_timeout_with_m2ts_stored_answer(sandbox):
    # The first attempt times out; its retry (same key) is answered from M2T's idempotency store.
    request = sandbox_card_request(sandbox, "4000000000000127")
    transaction = sandbox.gateway.authorise(request)
    assert transaction.status is TransactionStatus.CAPTURED and sandbox.charges(request.reference) == 1


@pytest.mark.integration
def test_a_wrong_api_key_is_refused(sandbox):
    wrong = M2TGateway(
        sandbox.sandbox_url, api_key="not-the-key", callback_secret=M2T_CALLBACK_SECRET, timeout=2
    )
    with pytest.raises(GatewayRequestRefused) as raised:
        wrong.find_transaction("pay_x")
    assert raised.value.code == "unauthorized"
    assert M2T_API_KEY not in repr(sandbox.gateway)


@pytest.mark.integration
def test_stale_callbacks_come_after_the_final_one_and_read_older(sandbox):
    # M2T sends a stale "authorised" snapshot after a card's "captured": updated_at orders them.
    transaction = sandbox.gateway.authorise(sandbox_card_request(sandbox, "4242424242424242"))
    final = sandbox.gateway.parse_callback(
        *sandbox.callback("transaction.captured", id=transaction.gateway_reference)
    )
    stale = sandbox.gateway.parse_callback(
        *sandbox.callback("transaction.authorised", id=transaction.gateway_reference)
    )
    assert stale.transaction.status is TransactionStatus.AUTHORISED
    assert stale.transaction.updated_at < final.transaction.updated_at
    assert stale.event_id != final.event_id
