"""The SMS-gateway sandbox, driven through onboarding's real HTTP adapter: message ids, the test
numbers' outcomes, idempotent retries, and signed delivery receipts (late, twice) to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.sms.app import create_app, encoding_and_segments, stop_background_work
from sandbox.sms.config import SandboxSmsConfig
from services.onboarding.adapters.sms import HttpSmsProvider
from services.onboarding.domain.ports import InvalidSmsReceipt, SmsDeliveryError, SmsRejected
from tests.http_support import CallbackReceiver, ServedApp

pytestmark = pytest.mark.integration

API_KEY = "test-sms-api-key"
SECRET = "test-sms-receipt-secret"


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver(path="/v1/sms/receipts")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox() -> Iterator[ServedApp]:
    config = SandboxSmsConfig(
        api_key=API_KEY,
        callback_secret=SECRET,
        receipt_delay_seconds=0.05,
        late_receipt_seconds=0.6,
        callback_retries=2,
        callback_backoff_seconds=0.01,
    )
    served = ServedApp(create_app(config))
    served.start()
    yield served
    stop_background_work(served.app)
    served.stop()


@pytest.fixture
def provider(sandbox, receiver) -> HttpSmsProvider:
    return HttpSmsProvider(
        f"{sandbox.url}/v1/messages",
        api_key=API_KEY,
        sender_id="Hirfa",
        timeout_seconds=5,
        receipt_url=receiver.url,
        receipt_secrets=(SECRET,),
    )


def received(sandbox: ServedApp, to: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{sandbox.url}/v1/messages",
        params={"to": to},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()["data"]


def test_a_message_gets_an_id_and_a_signed_delivered_receipt_twice(sandbox, receiver, provider):
    message_id = provider.submit("+212612345675", "Hirfa : 1 234,50 MAD sont disponibles.", reference="ntf_1")

    deliveries = receiver.wait_for(2)
    assert deliveries[0].body == deliveries[1].body  # the same receipt, delivered twice
    receipts = [provider.parse_receipt(delivery.headers, delivery.body) for delivery in deliveries]
    assert {(r.message_id, r.status, r.error_code) for r in receipts} == {(message_id, "delivered", None)}
    assert receipts[0].receipt_id == receipts[1].receipt_id
    [stored] = received(sandbox, "+212612345675")
    assert stored["text"] == "Hirfa : 1 234,50 MAD sont disponibles." and stored["status"] == "delivered"
    assert (stored["encoding"], stored["segments"], stored["reference"]) == ("GSM-7", 1, "ntf_1")


def test_a_test_number_ending_in_1_gets_a_failed_receipt(receiver, provider):
    message_id = provider.submit("+212612300001", "Hirfa", reference="ntf_2")

    delivery = receiver.wait_for(1)[0]
    receipt = provider.parse_receipt(delivery.headers, delivery.body)
    assert (receipt.message_id, receipt.status, receipt.error_code) == (message_id, "failed", "unreachable")


def test_a_test_number_ending_in_7_gets_its_receipt_late(receiver, provider):
    provider.submit("+212612300007", "Hirfa", reference="ntf_3")

    assert receiver.deliveries == []
    assert len(receiver.wait_for(1, timeout=5)) >= 1


def test_a_test_number_ending_in_2_fails_once_then_is_accepted(sandbox, provider):
    with pytest.raises(SmsDeliveryError) as failure:
        provider.submit("+212612300002", "Hirfa retry", reference="ntf_4")
    assert not isinstance(failure.value, SmsRejected)

    assert provider.submit("+212612300002", "Hirfa retry", reference="ntf_4").startswith("msg_")
    assert len(received(sandbox, "+212612300002")) == 1


def test_a_test_number_ending_in_3_is_always_unavailable_and_4_is_refused(provider):
    for _ in range(2):
        with pytest.raises(SmsDeliveryError):
            provider.submit("+212612300003", "Hirfa", reference="ntf_5")
    with pytest.raises(SmsRejected):
        provider.submit("+212612300004", "Hirfa", reference="ntf_6")


def test_a_retried_submission_with_the_same_reference_is_one_message(sandbox, provider):
    first = provider.submit("+212612345670", "Hirfa once", reference="ntf_7")
    again = provider.submit("+212612345670", "Hirfa once", reference="ntf_7")

    assert first == again
    assert len(received(sandbox, "+212612345670")) == 1


def test_a_tampered_or_unsigned_receipt_is_refused(receiver, provider):
    provider.submit("+212612345679", "Hirfa", reference="ntf_8")
    delivery = receiver.wait_for(1)[0]

    with pytest.raises(InvalidSmsReceipt):
        provider.parse_receipt(delivery.headers, delivery.body.replace(b"delivered", b"failed"))
    with pytest.raises(InvalidSmsReceipt):
        provider.parse_receipt({}, delivery.body)


def test_other_numbers_ending_in_those_digits_are_delivered(receiver, provider):
    message_id = provider.submit("+212612345674", "Hirfa", reference="ntf_9")

    delivery = receiver.wait_for(1)[0]
    receipt = provider.parse_receipt(delivery.headers, delivery.body)
    assert (receipt.message_id, receipt.status) == (message_id, "delivered")


def test_the_sandbox_wants_its_api_key(sandbox):
    response = requests.post(
        f"{sandbox.url}/v1/messages", json={"to": "+212612345678", "text": "x"}, timeout=5
    )
    assert response.status_code == 401


def test_arabic_is_sent_as_ucs2():
    assert encoding_and_segments("حرفة: " + "ا" * 64) == ("UCS-2", 1)
    assert encoding_and_segments("حرفة: " + "ا" * 65) == ("UCS-2", 2)
    assert encoding_and_segments("x" * 160) == ("GSM-7", 1)
    assert encoding_and_segments("x" * 161) == ("GSM-7", 2)
