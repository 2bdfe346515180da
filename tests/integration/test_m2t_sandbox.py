"""The M2T gateway sandbox: its API, test cards and phones, 3-D Secure pages, idempotency, signed
callbacks (duplicated, out of order) to a real HTTP receiver, and the settlement file."""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.m2t.app import create_app, stop_background_work
from sandbox.m2t.config import SandboxM2TConfig
from sandbox.m2t.settlement import COLUMNS, capture_fee, utc_date
from shared.cards import luhn_valid
from shared.config import ConfigError
from shared.signatures import verify
from tests.http_support import CallbackReceiver, Delivery, ServedApp, wait_until

pytestmark = pytest.mark.integration

API_KEY = "test-m2t-api-key"
CALLBACK_SECRET = "test-m2t-callback-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SIGNATURE = "M2T-Signature"
RETURN_URL = "https://shop.example/checkout/return?step=3ds"

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
CMI = "6500000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
STOLEN = "4000000000009979"
THREE_DS = "4000000000003220"
PROCESSING_ERROR = "4000000000000119"
TIMEOUT = "4000000000000127"
DISPUTE = "4000000000000259"

APPROVES = "+212600000001"
DECLINES = "+212600000002"
SILENT = "+212600000003"

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}_{next(_counter)}_{time.monotonic_ns()}"


def sandbox_config(**overrides: Any) -> SandboxM2TConfig:
    settings: dict[str, Any] = dict(
        api_key=API_KEY,
        callback_secret=CALLBACK_SECRET,
        callback_delay_seconds=0.05,
        wallet_approval_delay_seconds=0.2,
        wallet_expiry_seconds=1,
        slow_response_seconds=1.5,
        callback_timeout_seconds=2.0,
        callback_retries=3,
        callback_backoff_seconds=0.01,
    )
    settings.update(overrides)
    return SandboxM2TConfig(**settings)


class M2T:
    """The sandbox through the Flask test client, with the API key and a fresh Idempotency-Key per POST."""

    def __init__(self, client, receiver: CallbackReceiver) -> None:
        self.client = client
        self.receiver = receiver

    @property
    def app(self):
        return self.client.application

    def post(self, path: str, body: Any = None, *, key: str | None = None, headers: dict | None = None):
        sent = {**AUTH, "Idempotency-Key": key or unique("idem"), **(headers or {})}
        return self.client.post(path, json=body, headers=sent)

    def get(self, path: str, **kwargs: Any):
        return self.client.get(path, headers=AUTH, **kwargs)

    def token(self, number: str = VISA) -> str:
        response = self.post("/v1/tokens", card(number))
        assert response.status_code == 201, response.get_json()
        return response.get_json()["token"]

    def card_body(self, number: str = VISA, **fields: Any) -> dict[str, Any]:
        body = {
            "reference": unique("pay"),
            "amount": 15_000,
            "currency": "MAD",
            "method": "card",
            "card_token": self.token(number),
            "capture": True,
            "return_url": RETURN_URL,
            "callback_url": self.receiver.url,
            "description": "Tapis berbère, 2x3 m",
        }
        body.update(fields)
        return body

    def wallet_body(self, phone: str = APPROVES, **fields: Any) -> dict[str, Any]:
        body = {
            "reference": unique("pay"),
            "amount": 15_000,
            "currency": "MAD",
            "method": "mobile_wallet",
            "phone": phone,
            "capture": True,
            "callback_url": self.receiver.url,
        }
        body.update(fields)
        return body

    def pay_by_card(self, number: str = VISA, **fields: Any) -> dict[str, Any]:
        response = self.post("/v1/transactions", self.card_body(number, **fields))
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def pay_by_wallet(self, phone: str = APPROVES, **fields: Any) -> dict[str, Any]:
        response = self.post("/v1/transactions", self.wallet_body(phone, **fields))
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/transactions/{transaction_id}")
        assert response.status_code == 200
        return response.get_json()

    def refund(self, transaction_id: str, amount: int, **fields: Any):
        body = {"reference": unique("re"), "amount": amount, **fields}
        return self.post(f"/v1/transactions/{transaction_id}/refunds", body)

    def settle(self) -> None:
        """Stop the background work: deliveries in flight finish, jobs not started are cancelled.

        Call it once the expected callbacks arrived: a late duplicate or stale one is then counted.
        """
        stop_background_work(self.app)


def card(number: str, **fields: Any) -> dict[str, Any]:
    return {"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123", **fields}


def callbacks_about(
    receiver: CallbackReceiver, object_id: str, event_type: str | None = None, count: int = 1
) -> list[Delivery]:
    """Wait for ``count`` callbacks whose data is ``object_id`` (and of ``event_type``); return them."""

    def matches(delivery: Delivery) -> bool:
        event = delivery.event
        return event["data"].get("id") == object_id and event_type in (None, event["type"])

    return receiver.wait_for_matching(matches, count)


def types_about(receiver: CallbackReceiver, object_id: str) -> list[str]:
    return [d.event["type"] for d in receiver.deliveries if d.event["data"].get("id") == object_id]


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver(path="/v1/gateways/m2t/callbacks")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_sandbox(receiver) -> Iterator[Callable[..., M2T]]:
    apps = []

    def build(**overrides: Any) -> M2T:
        app = create_app(sandbox_config(**overrides))
        apps.append(app)
        return M2T(app.test_client(), receiver)

    yield build
    for app in apps:
        stop_background_work(app)


@pytest.fixture
def m2t(make_sandbox) -> M2T:
    """Callbacks once each and in order, so tests can count them; TestRealAcquirerCallbacks turns both on."""
    return make_sandbox(duplicate_callbacks=False, out_of_order_callbacks=False)


@pytest.fixture
def served(receiver) -> Iterator[tuple[ServedApp, M2T]]:
    """The sandbox behind a real HTTP server (and a test client on the same app)."""
    app = create_app(sandbox_config(duplicate_callbacks=False, out_of_order_callbacks=False))
    server = ServedApp(app)
    server.start()
    yield server, M2T(app.test_client(), receiver)
    stop_background_work(app)  # first: cuts a slow answer short, so the server can stop
    server.stop()


# --- tokens -------------------------------------------------------------------------------------


class TestTokens:
    @pytest.mark.parametrize(
        ("number", "brand", "country"),
        [
            (VISA, "visa", "US"),
            (MASTERCARD, "mastercard", "FR"),
            (CMI, "cmi", "MA"),
            (INSUFFICIENT_FUNDS, "visa", "US"),
            (STOLEN, "visa", "US"),
            (THREE_DS, "visa", "US"),
            (PROCESSING_ERROR, "visa", "US"),
            (TIMEOUT, "visa", "US"),
            (DISPUTE, "visa", "US"),
            ("4111111111111111", "visa", "US"),
            ("2223003122003222", "mastercard", "FR"),
            ("6011111111111117", "cmi", "MA"),
        ],
    )
    def test_a_card_becomes_a_token_with_brand_last4_and_country(self, m2t, number, brand, country):
        assert luhn_valid(number)
        response = m2t.post("/v1/tokens", card(number))
        assert response.status_code == 201
        body = response.get_json()
        assert body["token"].startswith("tok_")
        assert body == {
            "token": body["token"],
            "brand": brand,
            "last4": number[-4:],
            "exp_month": 12,
            "exp_year": 2035,
            "country": country,
        }

    def test_spaces_in_the_number_and_a_two_digit_year_are_accepted(self, m2t):
        body = m2t.post("/v1/tokens", card("4242 4242 4242 4242", exp_year=35)).get_json()
        assert (body["last4"], body["exp_year"]) == ("4242", 2035)

    def test_a_card_expiring_this_month_is_still_valid(self, m2t):
        today = time.gmtime()
        response = m2t.post("/v1/tokens", card(VISA, exp_month=today.tm_mon, exp_year=today.tm_year))
        assert response.status_code == 201

    @pytest.mark.parametrize(
        ("fields", "code", "param"),
        [
            ({"card_number": "4242424242424241"}, "invalid_card_number", "card_number"),  # Luhn
            ({"card_number": "4242"}, "invalid_card_number", "card_number"),
            ({"card_number": "4242x24242424242"}, "invalid_card_number", "card_number"),
            ({"card_number": 4242424242424242}, "invalid_card_number", "card_number"),
            ({"exp_year": time.gmtime().tm_year - 1}, "expired_card", "exp_year"),
            ({"exp_month": 13}, "invalid_expiry_month", "exp_month"),
            ({"exp_year": "soon"}, "invalid_expiry_year", "exp_year"),
            ({"cvc": "12"}, "invalid_cvc", "cvc"),
            ({"cvc": "12345"}, "invalid_cvc", "cvc"),
            ({"cvc": "1a3"}, "invalid_cvc", "cvc"),
            ({"cvc": None}, "missing_field", "cvc"),
        ],
    )
    def test_bad_cards_are_422(self, m2t, fields, code, param):
        body = {name: value for name, value in card(VISA, **fields).items() if value is not None}
        response = m2t.post("/v1/tokens", body)
        assert response.status_code == 422
        assert (response.get_json()["code"], response.get_json()["param"]) == (code, param)

    def test_the_card_number_is_never_logged_nor_echoed(self, m2t, caplog):
        caplog.set_level(logging.DEBUG)
        token_response = m2t.post("/v1/tokens", card(CMI))
        transaction = m2t.post("/v1/transactions", m2t.card_body(CMI))
        m2t.settle()
        assert CMI not in token_response.get_data(as_text=True)
        assert CMI not in transaction.get_data(as_text=True)
        assert all(CMI not in record.getMessage() for record in caplog.records)


# --- card outcomes ------------------------------------------------------------------------------


class TestCardOutcomes:
    @pytest.mark.parametrize(
        ("number", "brand", "country"),
        [
            (VISA, "visa", "US"),
            (MASTERCARD, "mastercard", "FR"),
            (CMI, "cmi", "MA"),
            ("4111111111111111", "visa", "US"),
        ],
    )
    def test_approved_cards_are_captured_and_called_back(self, m2t, receiver, number, brand, country):
        body = m2t.card_body(number)
        response = m2t.post("/v1/transactions", body)
        assert response.status_code == 201
        tx = response.get_json()
        assert tx["id"].startswith("m2t_tx_")
        assert tx == {
            "id": tx["id"],
            "reference": body["reference"],
            "method": "card",
            "status": "captured",
            "amount": 15_000,
            "currency": "MAD",
            "captured_amount": 15_000,
            "refunded_amount": 0,
            "card": {"brand": brand, "last4": number[-4:], "country": country},
            "phone_last4": None,
            "decline_code": None,
            "decline_message": None,
            "three_ds": None,
            "wallet": None,
            "created": tx["created"],
            "updated": tx["updated"],
        }
        assert abs(tx["created"] - time.time()) < 5 and tx["updated"] >= tx["created"]

        event = callbacks_about(receiver, tx["id"], "transaction.captured")[0].event
        assert event["data"] == tx
        assert m2t.transaction(tx["id"]) == tx

    def test_without_capture_a_card_is_only_authorised(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, capture=False)
        assert (tx["status"], tx["captured_amount"]) == ("authorised", 0)
        assert callbacks_about(receiver, tx["id"], "transaction.authorised")[0].event["data"] == tx

    @pytest.mark.parametrize(
        ("number", "code"), [(INSUFFICIENT_FUNDS, "insufficient_funds"), (STOLEN, "stolen_card")]
    )
    def test_declining_cards(self, m2t, receiver, number, code):
        tx = m2t.pay_by_card(number)
        assert (tx["status"], tx["decline_code"], tx["captured_amount"]) == ("declined", code, 0)
        assert tx["decline_message"]
        event = callbacks_about(receiver, tx["id"], "transaction.declined")[0].event
        assert event["data"]["decline_code"] == code
        m2t.settle()
        assert types_about(receiver, tx["id"]) == ["transaction.declined"]

    def test_the_processing_error_card_answers_500_and_records_nothing(self, m2t, receiver):
        body = m2t.card_body(PROCESSING_ERROR)
        first = m2t.post("/v1/transactions", body, key="k-500")
        assert first.status_code == 500
        assert first.get_json() == {"code": "processing_error", "message": first.get_json()["message"]}
        # Not stored: the same key runs again (and fails again); the reference is still free.
        assert m2t.post("/v1/transactions", body, key="k-500").status_code == 500
        lookup = m2t.get("/v1/transactions", query_string={"reference": body["reference"]})
        assert lookup.get_json() == {"data": []}
        retried = m2t.post("/v1/transactions", {**body, "card_token": m2t.token(VISA)})
        assert retried.status_code == 201
        callbacks_about(receiver, retried.get_json()["id"])
        m2t.settle()
        assert types_about(receiver, retried.get_json()["id"]) == ["transaction.captured"]
        assert receiver.requests_seen == 1

    def test_the_dispute_card_opens_a_dispute_by_itself_after_capture(self, m2t, receiver):
        tx = m2t.pay_by_card(DISPUTE)
        assert tx["status"] == "captured"
        opened = receiver.wait_for_matching(
            lambda d: d.event["type"] == "dispute.opened" and d.event["data"]["transaction_id"] == tx["id"], 1
        )
        dispute = opened[0].event["data"]
        assert dispute["id"].startswith("m2t_dp_")
        assert {
            key: dispute[key] for key in ("transaction_reference", "amount", "currency", "reason", "status")
        } == {
            "transaction_reference": tx["reference"],
            "amount": 15_000,
            "currency": "MAD",
            "reason": "fraudulent",
            "status": "open",
        }
        assert m2t.get(f"/v1/disputes/{dispute['id']}").get_json() == dispute

    def test_the_dispute_card_waits_for_a_manual_capture_and_disputes_what_was_captured(self, m2t, receiver):
        tx = m2t.pay_by_card(DISPUTE, capture=False)
        callbacks_about(receiver, tx["id"], "transaction.authorised")
        assert not [d for d in receiver.deliveries if d.event["type"] == "dispute.opened"]
        m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 9_000})
        opened = receiver.wait_for_matching(lambda d: d.event["type"] == "dispute.opened", 1)
        assert opened[0].event["data"]["amount"] == 9_000


class TestTimeoutCard:
    def test_the_answer_times_out_but_the_transaction_is_recorded_and_found_by_reference(
        self, served, receiver
    ):
        server, m2t = served
        body = m2t.card_body(TIMEOUT)
        headers = {**AUTH, "Idempotency-Key": "k-timeout"}
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(f"{server.url}/v1/transactions", json=body, headers=headers, timeout=0.3)

        found = requests.get(
            f"{server.url}/v1/transactions", params={"reference": body["reference"]}, headers=AUTH, timeout=2
        ).json()["data"]
        assert len(found) == 1
        assert (found[0]["status"], found[0]["captured_amount"]) == ("captured", 15_000)
        # Still inside the slow answer: the retry with the same key gets the stored answer at once.
        replay = requests.post(f"{server.url}/v1/transactions", json=body, headers=headers, timeout=1.0)
        assert time.monotonic() - started < 1.5
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == found[0]["id"]
        assert callbacks_about(receiver, found[0]["id"], "transaction.captured")

    def test_the_answer_comes_after_slow_response_seconds(self, make_sandbox):
        m2t = make_sandbox(slow_response_seconds=0.3)
        body = m2t.card_body(TIMEOUT, capture=False)
        started = time.monotonic()
        response = m2t.post("/v1/transactions", body)
        assert time.monotonic() - started >= 0.3
        assert (response.status_code, response.get_json()["status"]) == (201, "authorised")


# --- 3-D Secure ----------------------------------------------------------------------------------


class TestThreeDSecure:
    def start(self, server: ServedApp, m2t: M2T, **fields: Any) -> dict[str, Any]:
        body = m2t.card_body(THREE_DS, **fields)
        response = requests.post(
            f"{server.url}/v1/transactions",
            json=body,
            headers={**AUTH, "Idempotency-Key": unique("idem")},
            timeout=5,
        )
        assert response.status_code == 201
        return response.json()

    def complete(self, server: ServedApp, transaction_id: str) -> requests.Response:
        return requests.post(
            f"{server.url}/v1/transactions/{transaction_id}/3ds/complete",
            headers={**AUTH, "Idempotency-Key": unique("idem")},
            timeout=5,
        )

    def test_authenticate_round_trip(self, served, receiver):
        server, m2t = served
        tx = self.start(server, m2t)
        assert tx["status"] == "three_ds_required"
        assert tx["three_ds"] == {"redirect_url": f"{server.url}/3ds/{tx['id']}"}

        pending = self.complete(server, tx["id"])
        assert (pending.status_code, pending.json()["code"]) == (409, "authentication_pending")

        browser = requests.Session()  # the buyer: no API key
        page = browser.get(tx["three_ds"]["redirect_url"], timeout=5)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert '<form method="post">' in page.text
        assert 'value="authenticate"' in page.text and 'value="fail"' in page.text
        assert "150.00 MAD" in page.text and "3220" in page.text

        answer = browser.post(
            tx["three_ds"]["redirect_url"], data={"outcome": "authenticate"}, allow_redirects=False, timeout=5
        )
        assert (answer.status_code, answer.headers["Location"]) == (303, RETURN_URL)
        # A second answer changes nothing.
        again = browser.post(
            tx["three_ds"]["redirect_url"], data={"outcome": "fail"}, allow_redirects=False, timeout=5
        )
        assert again.status_code == 303
        assert (
            "Already answered: authenticated" in browser.get(tx["three_ds"]["redirect_url"], timeout=5).text
        )
        assert types_about(receiver, tx["id"]) == []  # nothing is final until the merchant completes

        completed = self.complete(server, tx["id"])
        assert completed.status_code == 200
        assert (completed.json()["status"], completed.json()["captured_amount"]) == ("captured", 15_000)
        assert completed.json()["three_ds"] == tx["three_ds"]
        event = callbacks_about(receiver, tx["id"], "transaction.captured")[0].event
        assert event["data"] == completed.json()
        # Completing again returns the object unchanged.
        assert self.complete(server, tx["id"]).json() == completed.json()

    def test_fail_declines_with_authentication_failed(self, served, receiver):
        server, m2t = served
        tx = self.start(server, m2t)
        requests.post(
            tx["three_ds"]["redirect_url"], data={"outcome": "fail"}, allow_redirects=False, timeout=5
        )
        completed = self.complete(server, tx["id"]).json()
        assert (completed["status"], completed["decline_code"]) == ("declined", "authentication_failed")
        assert callbacks_about(receiver, tx["id"], "transaction.declined")[0].event["data"] == completed

    def test_authenticated_without_capture_is_authorised(self, served, receiver):
        server, m2t = served
        tx = self.start(server, m2t, capture=False)
        requests.post(
            tx["three_ds"]["redirect_url"], data={"outcome": "authenticate"}, allow_redirects=False, timeout=5
        )
        assert self.complete(server, tx["id"]).json()["status"] == "authorised"
        callbacks_about(receiver, tx["id"], "transaction.authorised")

    def test_pages_refuse_unknown_ids_and_outcomes(self, served):
        server, m2t = served
        plain = m2t.pay_by_card(VISA)
        assert requests.get(f"{server.url}/3ds/m2t_tx_unknown", timeout=5).status_code == 404
        assert requests.get(f"{server.url}/3ds/{plain['id']}", timeout=5).status_code == 404
        assert (
            requests.post(
                f"{server.url}/3ds/m2t_tx_unknown",
                data={"outcome": "authenticate"},
                allow_redirects=False,
                timeout=5,
            ).status_code
            == 404
        )
        tx = self.start(server, m2t)
        bad = requests.post(
            tx["three_ds"]["redirect_url"], data={"outcome": "maybe"}, allow_redirects=False, timeout=5
        )
        assert bad.status_code == 400
        assert self.complete(server, tx["id"]).status_code == 409

    def test_without_return_url_the_page_says_go_back(self, m2t):
        tx = m2t.pay_by_card(THREE_DS, return_url=None)
        path = f"/3ds/{tx['id']}"
        answer = m2t.client.post(path, data={"outcome": "authenticate"})
        assert answer.status_code == 200 and "go back" in answer.get_data(as_text=True)

    def test_public_url_prefixes_the_redirect_url(self, make_sandbox):
        m2t = make_sandbox(public_url="https://m2t-sandbox.example:8443/")
        tx = m2t.pay_by_card(THREE_DS)
        assert tx["three_ds"]["redirect_url"] == f"https://m2t-sandbox.example:8443/3ds/{tx['id']}"

    def test_a_challenge_can_be_voided(self, m2t, receiver):
        tx = m2t.pay_by_card(THREE_DS)
        voided = m2t.post(f"/v1/transactions/{tx['id']}/void").get_json()
        assert voided["status"] == "voided"
        callbacks_about(receiver, tx["id"], "transaction.voided")
        m2t.client.post(f"/3ds/{tx['id']}", data={"outcome": "authenticate"})
        assert m2t.post(f"/v1/transactions/{tx['id']}/3ds/complete").get_json()["status"] == "voided"


# --- mobile wallets -------------------------------------------------------------------------------


class TestWallets:
    @pytest.mark.parametrize("phone", [APPROVES, "+212712345678"])
    def test_the_buyer_approves_after_the_delay(self, m2t, receiver, phone):
        tx = m2t.pay_by_wallet(phone)
        assert (tx["status"], tx["phone_last4"], tx["card"]) == ("pending_approval", phone[-4:], None)
        assert tx["wallet"] == {"expires_at": tx["created"] + 1}

        pending = callbacks_about(receiver, tx["id"], "transaction.pending_approval")[0].event
        assert pending["data"] == tx
        captured = callbacks_about(receiver, tx["id"], "transaction.captured")[0].event["data"]
        assert (captured["status"], captured["captured_amount"]) == ("captured", 15_000)
        assert m2t.transaction(tx["id"]) == captured
        assert types_about(receiver, tx["id"]) == ["transaction.pending_approval", "transaction.captured"]

    def test_without_capture_the_approved_wallet_is_authorised(self, m2t, receiver):
        tx = m2t.pay_by_wallet(APPROVES, capture=False)
        assert (
            callbacks_about(receiver, tx["id"], "transaction.authorised")[0].event["data"]["status"]
            == "authorised"
        )

    def test_the_buyer_declines(self, m2t, receiver):
        tx = m2t.pay_by_wallet(DECLINES)
        declined = callbacks_about(receiver, tx["id"], "transaction.declined")[0].event["data"]
        assert (declined["status"], declined["decline_code"]) == ("declined", "wallet_declined")
        assert m2t.transaction(tx["id"]) == declined

    def test_an_unanswered_request_expires_silently(self, m2t, receiver):
        tx = m2t.pay_by_wallet(SILENT)
        expires_at = tx["wallet"]["expires_at"]
        assert expires_at == tx["created"] + 1
        assert m2t.transaction(tx["id"])["status"] == "pending_approval"

        wait_until(lambda: m2t.transaction(tx["id"])["status"] == "expired", timeout=3)
        assert time.time() >= expires_at
        expired = m2t.transaction(tx["id"])
        assert (expired["decline_code"], expired["updated"]) == ("expired", expires_at)
        assert m2t.get("/v1/transactions", query_string={"reference": tx["reference"]}).get_json() == {
            "data": [expired]
        }
        void = m2t.post(f"/v1/transactions/{tx['id']}/void")
        assert (void.status_code, void.get_json()["code"]) == (409, "invalid_status")
        m2t.settle()
        assert types_about(receiver, tx["id"]) == ["transaction.pending_approval"]

    def test_a_voided_request_ignores_the_late_approval(self, m2t, receiver):
        tx = m2t.pay_by_wallet(APPROVES)
        assert m2t.post(f"/v1/transactions/{tx['id']}/void").get_json()["status"] == "voided"
        callbacks_about(receiver, tx["id"], "transaction.voided")
        time.sleep(0.25)  # past the buyer's approval (0.2 s after the request)
        assert m2t.transaction(tx["id"])["status"] == "voided"
        m2t.settle()
        assert sorted(types_about(receiver, tx["id"])) == [
            "transaction.pending_approval",
            "transaction.voided",
        ]

    @pytest.mark.parametrize("phone", ["+33612345678", "0612345678", "+212512345678", "+2126123456789", None])
    def test_a_phone_that_is_not_a_moroccan_mobile_is_422(self, m2t, phone):
        body = {k: v for k, v in m2t.wallet_body(phone).items() if v is not None}
        response = m2t.post("/v1/transactions", body)
        assert response.status_code == 422
        assert response.get_json()["param"] == "phone"


# --- idempotency -----------------------------------------------------------------------------------


class TestIdempotency:
    @pytest.mark.parametrize(
        "path",
        [
            "/v1/tokens",
            "/v1/transactions",
            "/v1/transactions/m2t_tx_x/3ds/complete",
            "/v1/transactions/m2t_tx_x/capture",
            "/v1/transactions/m2t_tx_x/void",
            "/v1/transactions/m2t_tx_x/refunds",
            "/v1/sandbox/transactions/m2t_tx_x/disputes",
            "/v1/sandbox/disputes/m2t_dp_x/close",
        ],
    )
    def test_every_post_needs_a_key(self, m2t, path):
        response = m2t.client.post(path, json={}, headers=AUTH)
        assert response.status_code == 400
        assert (response.get_json()["code"], response.get_json()["param"]) == (
            "idempotency_key_required",
            "Idempotency-Key",
        )

    def test_same_key_same_body_replays_the_first_answer(self, m2t, receiver):
        body = m2t.card_body(VISA)
        first = m2t.post("/v1/transactions", body, key="k-replay")
        reordered = dict(reversed(list(body.items())))  # same JSON, other key order
        again = m2t.post("/v1/transactions", reordered, key="k-replay")
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.get_data() == first.get_data()
        assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
        assert (
            len(m2t.get("/v1/transactions", query_string={"reference": body["reference"]}).get_json()["data"])
            == 1
        )
        callbacks_about(receiver, first.get_json()["id"])
        m2t.settle()
        assert types_about(receiver, first.get_json()["id"]) == ["transaction.captured"]

    def test_same_key_other_body_or_endpoint_is_a_conflict(self, m2t):
        body = m2t.card_body(VISA)
        m2t.post("/v1/transactions", body, key="k-reuse")
        other_body = m2t.post("/v1/transactions", {**body, "amount": 1}, key="k-reuse")
        assert (other_body.status_code, other_body.get_json()["code"]) == (409, "idempotency_key_reuse")
        other_path = m2t.post("/v1/tokens", body, key="k-reuse")
        assert (other_path.status_code, other_path.get_json()["code"]) == (409, "idempotency_key_reuse")

    def test_a_refused_request_is_not_stored(self, m2t):
        body = m2t.card_body(VISA)
        refused = m2t.post("/v1/transactions", {**body, "currency": "EUR"}, key="k-refused")
        assert refused.status_code == 422
        assert m2t.post("/v1/transactions", body, key="k-refused").status_code == 201

    def test_replays_of_a_capture_do_not_capture_again(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, capture=False)
        first = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 5_000}, key="k-capture")
        again = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 5_000}, key="k-capture")
        assert (again.status_code, again.get_data()) == (200, first.get_data())
        callbacks_about(receiver, tx["id"], "transaction.captured")
        m2t.settle()
        assert types_about(receiver, tx["id"]) == ["transaction.authorised", "transaction.captured"]

    def test_the_same_reference_with_another_key_is_a_duplicate(self, m2t):
        body = m2t.card_body(VISA)
        assert m2t.post("/v1/transactions", body).status_code == 201
        duplicate = m2t.post("/v1/transactions", body)
        assert (duplicate.status_code, duplicate.get_json()["code"]) == (409, "duplicate_reference")

    def test_concurrent_requests_with_one_key_make_one_transaction(self, served):
        server, m2t = served
        body = m2t.card_body(VISA)
        headers = {**AUTH, "Idempotency-Key": "k-concurrent"}
        start = threading.Barrier(6)

        def send(_: int) -> requests.Response:
            start.wait()
            return requests.post(f"{server.url}/v1/transactions", json=body, headers=headers, timeout=5)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(send, range(6)))
        assert {answer.status_code for answer in answers} == {201}
        assert len({answer.json()["id"] for answer in answers}) == 1
        assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 5


# --- capture and void ------------------------------------------------------------------------------


class TestCaptureAndVoid:
    def test_partial_capture_once(self, m2t, receiver):
        tx = m2t.pay_by_card(MASTERCARD, capture=False)
        captured = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 6_000})
        assert captured.status_code == 200
        assert (captured.get_json()["status"], captured.get_json()["captured_amount"]) == ("captured", 6_000)
        assert (
            callbacks_about(receiver, tx["id"], "transaction.captured")[0].event["data"]
            == captured.get_json()
        )

        again = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 1_000})
        assert (again.status_code, again.get_json()["code"]) == (409, "already_captured")

    def test_capture_without_amount_takes_everything(self, m2t):
        tx = m2t.pay_by_card(VISA, capture=False)
        assert m2t.post(f"/v1/transactions/{tx['id']}/capture").get_json()["captured_amount"] == 15_000

    @pytest.mark.parametrize(
        ("amount", "status", "code"),
        [(15_001, 422, "amount_too_large"), (0, 422, "invalid_field"), ("100", 422, "invalid_field")],
    )
    def test_capture_amount_must_be_within_the_authorisation(self, m2t, amount, status, code):
        tx = m2t.pay_by_card(VISA, capture=False)
        response = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": amount})
        assert (response.status_code, response.get_json()["code"]) == (status, code)
        assert m2t.transaction(tx["id"])["status"] == "authorised"

    def test_capture_needs_an_authorised_transaction(self, m2t):
        declined = m2t.pay_by_card(INSUFFICIENT_FUNDS, capture=False)
        response = m2t.post(f"/v1/transactions/{declined['id']}/capture", {"amount": 100})
        assert (response.status_code, response.get_json()["code"]) == (409, "invalid_status")
        unknown = m2t.post("/v1/transactions/m2t_tx_unknown/capture", {"amount": 100})
        assert (unknown.status_code, unknown.get_json()["code"]) == (404, "not_found")

    def test_void_an_authorisation(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, capture=False)
        voided = m2t.post(f"/v1/transactions/{tx['id']}/void")
        assert (voided.status_code, voided.get_json()["status"]) == (200, "voided")
        assert callbacks_about(receiver, tx["id"], "transaction.voided")[0].event["data"] == voided.get_json()
        assert m2t.post(f"/v1/transactions/{tx['id']}/void").get_json() == voided.get_json()
        capture = m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 100})
        assert (capture.status_code, capture.get_json()["code"]) == (409, "invalid_status")

    def test_a_captured_transaction_cannot_be_voided(self, m2t):
        tx = m2t.pay_by_card(VISA)
        response = m2t.post(f"/v1/transactions/{tx['id']}/void")
        assert (response.status_code, response.get_json()["code"]) == (409, "invalid_status")


# --- refunds ---------------------------------------------------------------------------------------


class TestRefunds:
    def test_a_refund_is_pending_then_succeeds(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA)
        response = m2t.refund(tx["id"], 2_500, reference="re_ok")
        assert response.status_code == 201
        refund = response.get_json()
        assert refund["id"].startswith("m2t_re_")
        assert refund == {
            "id": refund["id"],
            "reference": "re_ok",
            "transaction_id": tx["id"],
            "amount": 2_500,
            "currency": "MAD",
            "status": "pending",
            "failure_code": None,
            "created": refund["created"],
            "updated": refund["updated"],
        }

        succeeded = callbacks_about(receiver, refund["id"], "refund.succeeded")[0].event["data"]
        assert (succeeded["status"], succeeded["failure_code"]) == ("succeeded", None)
        assert m2t.get(f"/v1/refunds/{refund['id']}").get_json() == succeeded
        assert m2t.get("/v1/refunds", query_string={"reference": "re_ok"}).get_json() == {"data": [succeeded]}
        after = m2t.transaction(tx["id"])
        assert (after["status"], after["refunded_amount"]) == ("captured", 2_500)

    def test_a_refund_ending_in_13_fails_and_does_not_count(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, amount=5_000)
        refund = m2t.refund(tx["id"], 1_013).get_json()
        failed = callbacks_about(receiver, refund["id"], "refund.failed")[0].event["data"]
        assert (failed["status"], failed["failure_code"]) == ("failed", "refund_declined")
        assert m2t.transaction(tx["id"])["refunded_amount"] == 0
        assert m2t.refund(tx["id"], 5_000).status_code == 201  # the failed amount is refundable again

    def test_refunds_cannot_exceed_the_captured_amount_pending_ones_included(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, capture=False)
        m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 10_000})
        first = m2t.refund(tx["id"], 6_000).get_json()
        over = m2t.refund(tx["id"], 4_001)  # 6000 pending + 4001 > 10000
        assert (over.status_code, over.get_json()["code"]) == (409, "refund_exceeds_captured")
        callbacks_about(receiver, first["id"], "refund.succeeded")
        assert m2t.refund(tx["id"], 4_000).status_code == 201
        assert m2t.refund(tx["id"], 1).get_json()["code"] == "refund_exceeds_captured"

    def test_only_a_captured_transaction_can_be_refunded(self, m2t):
        tx = m2t.pay_by_card(VISA, capture=False)
        response = m2t.refund(tx["id"], 100)
        assert (response.status_code, response.get_json()["code"]) == (409, "invalid_status")

    def test_refund_references_are_unique(self, m2t):
        tx = m2t.pay_by_card(VISA)
        assert m2t.refund(tx["id"], 100, reference="re_dup").status_code == 201
        duplicate = m2t.refund(tx["id"], 100, reference="re_dup")
        assert (duplicate.status_code, duplicate.get_json()["code"]) == (409, "duplicate_reference")

    def test_unknown_refunds(self, m2t):
        assert m2t.get("/v1/refunds/m2t_re_unknown").status_code == 404
        assert m2t.get("/v1/refunds", query_string={"reference": "re_unknown"}).get_json() == {"data": []}


# --- disputes --------------------------------------------------------------------------------------


class TestDisputes:
    def test_open_and_close_with_callbacks(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA)
        opened = m2t.post(f"/v1/sandbox/transactions/{tx['id']}/disputes")
        assert opened.status_code == 201
        dispute = opened.get_json()
        assert dispute == {
            "id": dispute["id"],
            "transaction_id": tx["id"],
            "transaction_reference": tx["reference"],
            "amount": 15_000,
            "currency": "MAD",
            "reason": "fraudulent",
            "status": "open",
            "created": dispute["created"],
            "updated": dispute["updated"],
        }
        assert callbacks_about(receiver, dispute["id"], "dispute.opened")[0].event["data"] == dispute

        closed = m2t.post(f"/v1/sandbox/disputes/{dispute['id']}/close", {"outcome": "lost"})
        assert (closed.status_code, closed.get_json()["status"]) == (200, "lost")
        assert (
            callbacks_about(receiver, dispute["id"], "dispute.closed")[0].event["data"] == closed.get_json()
        )
        assert m2t.get(f"/v1/disputes/{dispute['id']}").get_json() == closed.get_json()

        assert m2t.post(f"/v1/sandbox/disputes/{dispute['id']}/close", {"outcome": "lost"}).status_code == 200
        other = m2t.post(f"/v1/sandbox/disputes/{dispute['id']}/close", {"outcome": "won"})
        assert (other.status_code, other.get_json()["code"]) == (409, "invalid_status")
        m2t.settle()
        assert types_about(receiver, dispute["id"]) == ["dispute.opened", "dispute.closed"]

    def test_amount_and_reason_can_be_chosen(self, m2t):
        tx = m2t.pay_by_card(VISA)
        dispute = m2t.post(
            f"/v1/sandbox/transactions/{tx['id']}/disputes",
            {"amount": 4_000, "reason": "product_not_received"},
        ).get_json()
        assert (dispute["amount"], dispute["reason"]) == (4_000, "product_not_received")
        second = m2t.post(f"/v1/sandbox/transactions/{tx['id']}/disputes")
        assert (second.status_code, second.get_json()["code"]) == (409, "already_disputed")

    @pytest.mark.parametrize(
        ("body", "code"), [({"reason": "bored"}, "invalid_field"), ({"amount": 15_001}, "amount_too_large")]
    )
    def test_bad_dispute_requests(self, m2t, body, code):
        tx = m2t.pay_by_card(VISA)
        response = m2t.post(f"/v1/sandbox/transactions/{tx['id']}/disputes", body)
        assert (response.status_code, response.get_json()["code"]) == (422, code)

    def test_only_captured_transactions_are_disputed(self, m2t):
        tx = m2t.pay_by_card(VISA, capture=False)
        response = m2t.post(f"/v1/sandbox/transactions/{tx['id']}/disputes")
        assert (response.status_code, response.get_json()["code"]) == (409, "invalid_status")
        assert m2t.post("/v1/sandbox/disputes/m2t_dp_unknown/close", {"outcome": "won"}).status_code == 404
        assert m2t.get("/v1/disputes/m2t_dp_unknown").status_code == 404


# --- callbacks as a real acquirer sends them --------------------------------------------------------


class TestRealAcquirerCallbacks:
    def test_callbacks_are_signed(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA)
        delivery = callbacks_about(receiver, tx["id"])[0]
        assert delivery.path == "/v1/gateways/m2t/callbacks"
        assert delivery.headers["Content-Type"] == "application/json"
        verify(CALLBACK_SECRET, delivery.headers[SIGNATURE], delivery.body)
        with pytest.raises(ValueError):
            verify("not-the-secret", delivery.headers[SIGNATURE], delivery.body)
        event = delivery.event
        assert event["id"].startswith("evt_") and abs(event["created"] - time.time()) < 60
        assert set(event) == {"id", "type", "created", "data"}

    def test_each_callback_comes_twice_with_the_same_event(self, make_sandbox, receiver):
        m2t = make_sandbox(out_of_order_callbacks=False)
        tx = m2t.pay_by_card(VISA, capture=False)
        first, second = callbacks_about(receiver, tx["id"], count=2)
        assert first.body == second.body and first.event["id"] == second.event["id"]
        verify(CALLBACK_SECRET, second.headers[SIGNATURE], second.body)

    def test_a_stale_authorised_snapshot_follows_an_immediate_capture(self, make_sandbox, receiver):
        m2t = make_sandbox(duplicate_callbacks=False)
        tx = m2t.pay_by_card(VISA)
        final, stale = (d.event for d in callbacks_about(receiver, tx["id"], count=2))
        assert (final["type"], stale["type"]) == ("transaction.captured", "transaction.authorised")
        assert final["data"] == tx
        assert stale["id"] != final["id"]
        assert (stale["data"]["status"], stale["data"]["captured_amount"]) == ("authorised", 0)
        assert stale["data"]["updated"] < final["data"]["updated"]
        verify(CALLBACK_SECRET, receiver.deliveries[-1].headers[SIGNATURE], receiver.deliveries[-1].body)

    def test_a_stale_pending_approval_snapshot_follows_the_wallet_answer(self, make_sandbox, receiver):
        m2t = make_sandbox(duplicate_callbacks=False)
        tx = m2t.pay_by_wallet(APPROVES)
        events = [d.event for d in callbacks_about(receiver, tx["id"], count=3)]
        assert [event["type"] for event in events] == [
            "transaction.pending_approval",
            "transaction.captured",
            "transaction.pending_approval",
        ]
        pending, final, stale = events
        assert stale["id"] != pending["id"]
        assert stale["data"]["status"] == "pending_approval"
        assert stale["data"]["updated"] < final["data"]["updated"]

    def test_duplicates_and_stale_snapshots_together(self, make_sandbox, receiver):
        m2t = make_sandbox()
        tx = m2t.pay_by_wallet(DECLINES)
        callbacks_about(receiver, tx["id"], count=6)
        m2t.settle()
        assert (
            types_about(receiver, tx["id"])
            == ["transaction.pending_approval"] * 2
            + ["transaction.declined"] * 2
            + ["transaction.pending_approval"] * 2
        )

    def test_no_stale_snapshot_after_a_manual_capture(self, make_sandbox, receiver):
        m2t = make_sandbox(duplicate_callbacks=False)
        tx = m2t.pay_by_card(VISA, capture=False)
        m2t.post(f"/v1/transactions/{tx['id']}/capture", {"amount": 100})
        callbacks_about(receiver, tx["id"], "transaction.captured")
        m2t.settle()
        assert sorted(types_about(receiver, tx["id"])) == ["transaction.authorised", "transaction.captured"]

    def test_failed_deliveries_are_retried(self, m2t, receiver):
        receiver.replies = [503, 429]
        tx = m2t.pay_by_card(VISA)
        delivery = callbacks_about(receiver, tx["id"])[0]
        assert receiver.requests_seen == 3
        verify(CALLBACK_SECRET, delivery.headers[SIGNATURE], delivery.body)


# --- settlement file -------------------------------------------------------------------------------


def settlement(m2t: M2T, day: str) -> list[dict[str, str]]:
    response = m2t.get(f"/v1/settlements/{day}.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    return list(csv.DictReader(io.StringIO(text)))


class TestSettlement:
    def test_captures_and_succeeded_refunds_of_the_day(self, m2t, receiver):
        full = m2t.pay_by_card(VISA, amount=15_000)
        half_up = m2t.pay_by_card(CMI, amount=10_100)  # 1.5% = 151.5 -> 152
        half_down = m2t.pay_by_card(CMI, amount=10_033)  # 150.495 -> 150
        partial = m2t.pay_by_card(VISA, capture=False)
        m2t.post(f"/v1/transactions/{partial['id']}/capture", {"amount": 7_000})
        m2t.pay_by_card(VISA, capture=False)  # authorised only
        m2t.pay_by_card(STOLEN)  # declined
        refund = m2t.refund(full["id"], 2_500, reference="re_settled").get_json()
        failed = m2t.refund(half_up["id"], 1_013).get_json()
        callbacks_about(receiver, refund["id"], "refund.succeeded")
        callbacks_about(receiver, failed["id"], "refund.failed")
        refund = m2t.get(f"/v1/refunds/{refund['id']}").get_json()

        day = utc_date(full["created"])
        rows = [
            row
            for row in settlement(m2t, day)
            if row["transaction_id"] in {full["id"], half_up["id"], half_down["id"], partial["id"]}
        ]
        assert [(row["type"], row["transaction_id"]) for row in rows] == [
            ("capture", full["id"]),
            ("capture", half_up["id"]),
            ("capture", half_down["id"]),
            ("capture", partial["id"]),
            ("refund", full["id"]),
        ]
        amounts = [(int(row["gross_amount"]), int(row["fee_amount"]), int(row["net_amount"])) for row in rows]
        assert amounts == [
            (15_000, 570, 14_430),  # international: 2.8% + 150
            (10_100, 302, 9_798),  # domestic: 1.5% + 150
            (10_033, 300, 9_733),
            (7_000, 346, 6_654),
            (-2_500, 0, -2_500),
        ]
        assert rows[0] == {
            "settlement_date": day,
            "batch_reference": f"M2T-{day.replace('-', '')}-CARD",
            "type": "capture",
            "transaction_id": full["id"],
            "reference": full["reference"],
            "refund_id": "",
            "refund_reference": "",
            "currency": "MAD",
            "gross_amount": "15000",
            "fee_amount": "570",
            "net_amount": "14430",
            "card_scheme": "visa",
            "card_region": "international",
            "occurred_at": str(full["updated"]),
        }
        assert (rows[-1]["refund_id"], rows[-1]["refund_reference"], rows[-1]["reference"]) == (
            refund["id"],
            "re_settled",
            full["reference"],
        )
        assert rows[-1]["occurred_at"] == str(refund["updated"])
        times = [int(row["occurred_at"]) for row in rows]
        assert times == sorted(times)

    def test_fee_schedule_per_scheme_and_region_and_one_batch_per_kind(self, m2t, receiver):
        domestic = m2t.pay_by_card(CMI, amount=20_000)
        international = m2t.pay_by_card(MASTERCARD, amount=20_000)
        wallet = m2t.pay_by_wallet(amount=20_000)
        callbacks_about(receiver, wallet["id"], "transaction.captured")
        day = utc_date(domestic["created"])
        rows = {row["transaction_id"]: row for row in settlement(m2t, day)}
        compact = day.replace("-", "")
        assert [
            (
                row["card_scheme"],
                row["card_region"],
                row["fee_amount"],
                row["net_amount"],
                row["batch_reference"],
            )
            for row in (rows[domestic["id"]], rows[international["id"]], rows[wallet["id"]])
        ] == [
            ("cmi", "domestic", "450", "19550", f"M2T-{compact}-CARD"),  # 150 bp + 150
            ("mastercard", "international", "710", "19290", f"M2T-{compact}-CARD"),  # 280 bp + 150
            ("wallet", "domestic", "200", "19800", f"M2T-{compact}-WALLET"),  # 100 bp + 0
        ]

    def test_break_test_data_late_fee_above_schedule_and_duplicate(self, m2t):
        late = m2t.pay_by_card(VISA, amount=10_071)
        costly = m2t.pay_by_card(VISA, amount=10_073)
        twice = m2t.pay_by_card(VISA, amount=10_074)
        short = m2t.pay_by_card(VISA, amount=10_075)
        day = utc_date(late["created"])
        following = (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()
        today = [row for row in settlement(m2t, day)]
        ids = [row["transaction_id"] for row in today]
        assert late["id"] not in ids
        assert ids.count(twice["id"]) == 2 and ids.count(short["id"]) == 1
        (costly_row,) = [row for row in today if row["transaction_id"] == costly["id"]]
        assert int(costly_row["fee_amount"]) == capture_fee(10_073, 280, 150) + 50
        assert int(costly_row["net_amount"]) == 10_073 - int(costly_row["fee_amount"])
        (late_row,) = [row for row in settlement(m2t, following) if row["transaction_id"] == late["id"]]
        assert (late_row["settlement_date"], late_row["batch_reference"]) == (
            following,
            f"M2T-{following.replace('-', '')}-CARD",
        )
        assert late_row["occurred_at"] == str(late["updated"])

    def test_a_lost_dispute_is_a_chargeback_line(self, m2t, receiver):
        tx = m2t.pay_by_card(VISA, amount=8_000)
        dispute = m2t.post(
            f"/v1/sandbox/transactions/{tx['id']}/disputes", {"reason": "fraudulent"}
        ).get_json()
        day = utc_date(tx["created"])
        assert [row["type"] for row in settlement(m2t, day) if row["transaction_id"] == tx["id"]] == [
            "capture"
        ]
        m2t.post(f"/v1/sandbox/disputes/{dispute['id']}/close", {"outcome": "lost"})
        rows = [row for row in settlement(m2t, day) if row["transaction_id"] == tx["id"]]
        assert [(row["type"], row["gross_amount"], row["fee_amount"], row["net_amount"]) for row in rows] == [
            ("capture", "8000", "374", "7626"),
            ("chargeback", "-8000", "0", "-8000"),
        ]

    def test_a_foreign_line_is_added_by_the_test_helper(self, m2t):
        response = m2t.post(
            "/v1/test-helpers/settlement-lines", {"date": "2026-12-06", "amount": 5_000, "card_scheme": "cmi"}
        )
        assert response.status_code == 201
        line = response.get_json()
        assert line["transaction_id"].startswith("m2t_tx_") and line["reference"] == ""
        (row,) = [
            row for row in settlement(m2t, "2026-12-06") if row["transaction_id"] == line["transaction_id"]
        ]
        assert (row["batch_reference"], row["gross_amount"], row["fee_amount"]) == (
            "M2T-20261206-CARD",
            "5000",
            "225",
        )
        bad = m2t.post("/v1/test-helpers/settlement-lines", {"date": "06/12/2026", "amount": 5_000})
        assert (bad.status_code, bad.get_json()["code"]) == (422, "invalid_field")

    def test_fee_settings(self, make_sandbox):
        m2t = make_sandbox(fee_percent_bp=0, fee_fixed=0)
        tx = m2t.pay_by_card(CMI, amount=12_345)
        row = settlement(m2t, utc_date(tx["created"]))[0]
        assert (row["gross_amount"], row["fee_amount"], row["net_amount"]) == ("12345", "0", "12345")
        assert capture_fee(12_345, 150, 150) == 185 + 150

    def test_a_day_without_activity_is_the_header_alone(self, m2t):
        m2t.pay_by_card(VISA)
        assert settlement(m2t, "2001-01-01") == []

    @pytest.mark.parametrize("day", ["2024-13-01", "yesterday", "2024-1-5"])
    def test_bad_dates_are_422(self, m2t, day):
        response = m2t.get(f"/v1/settlements/{day}.csv")
        assert (response.status_code, response.get_json()["code"]) == (422, "invalid_field")


# --- API key, validation, config ---------------------------------------------------------------------


class TestApiKey:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": API_KEY},
            {"Authorization": f"Basic {API_KEY}"},
        ],
    )
    def test_missing_or_wrong_key_is_401(self, m2t, headers):
        for response in (
            m2t.client.post("/v1/tokens", json=card(VISA), headers={**headers, "Idempotency-Key": "k"}),
            m2t.client.get("/v1/transactions/m2t_tx_any", headers=headers),
            m2t.client.get("/v1/settlements/2024-01-01.csv", headers=headers),
        ):
            assert response.status_code == 401
            assert response.get_json()["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_health_check_needs_no_key(self, m2t):
        response = m2t.client.get("/healthz")
        assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


class TestValidation:
    @pytest.mark.parametrize(
        ("fields", "code", "param"),
        [
            ({"reference": None}, "missing_field", "reference"),
            ({"reference": "r" * 101}, "invalid_field", "reference"),
            ({"amount": 0}, "invalid_field", "amount"),
            ({"amount": 12.5}, "invalid_field", "amount"),
            ({"amount": True}, "invalid_field", "amount"),
            ({"currency": "EUR"}, "unsupported_currency", "currency"),
            ({"method": "cheque"}, "invalid_field", "method"),
            ({"card_token": None}, "missing_field", "card_token"),
            ({"card_token": "tok_unknown"}, "invalid_card_token", "card_token"),
            ({"capture": "yes"}, "invalid_field", "capture"),
            ({"callback_url": None}, "missing_field", "callback_url"),
            ({"callback_url": "/relative"}, "invalid_field", "callback_url"),
            ({"return_url": "javascript:alert(1)"}, "invalid_field", "return_url"),
        ],
    )
    def test_invalid_transactions_are_422(self, m2t, fields, code, param):
        body = {name: value for name, value in m2t.card_body(VISA, **fields).items() if value is not None}
        response = m2t.post("/v1/transactions", body)
        assert response.status_code == 422
        assert (response.get_json()["code"], response.get_json()["param"]) == (code, param)

    @pytest.mark.parametrize("data", ["not json", "[1, 2]", ""])
    def test_a_body_that_is_not_a_json_object_is_422(self, m2t, data):
        response = m2t.client.post(
            "/v1/transactions",
            data=data,
            headers={**AUTH, "Idempotency-Key": unique("k"), "Content-Type": "application/json"},
        )
        assert (response.status_code, response.get_json()["code"]) == (422, "invalid_body")

    def test_lookups_need_a_reference_and_unknown_ids_are_404(self, m2t):
        assert m2t.get("/v1/transactions").get_json()["code"] == "missing_field"
        assert m2t.get("/v1/transactions", query_string={"reference": "pay_unknown"}).get_json() == {
            "data": []
        }
        response = m2t.get("/v1/transactions/m2t_tx_unknown")
        assert (response.status_code, response.get_json()["code"]) == (404, "not_found")


class TestConfig:
    def test_defaults(self):
        config = SandboxM2TConfig.from_env({})
        assert (config.api_key, config.callback_secret) == (
            "sandbox-m2t-api-key",
            "sandbox-m2t-callback-secret",
        )
        assert (config.callback_delay_seconds, config.wallet_approval_delay_seconds) == (1.0, 3.0)
        assert (config.wallet_expiry_seconds, config.slow_response_seconds) == (120, 10.0)
        assert (config.duplicate_callbacks, config.out_of_order_callbacks) == (True, True)
        assert (config.fee_percent_bp, config.fee_fixed, config.public_url) == (150, 150, "")
        assert (config.callback_timeout_seconds, config.callback_retries) == (5.0, 5)

    def test_environment_overrides(self):
        config = SandboxM2TConfig.from_env(
            {
                "M2T_SANDBOX_API_KEY": "k3y",
                "M2T_SANDBOX_CALLBACK_SECRET": "s3cret",
                "M2T_SANDBOX_CALLBACK_DELAY_SECONDS": "0.25",
                "M2T_SANDBOX_WALLET_EXPIRY_SECONDS": "30",
                "M2T_SANDBOX_SLOW_RESPONSE_SECONDS": "2.5",
                "M2T_SANDBOX_DUPLICATE_CALLBACKS": "false",
                "M2T_SANDBOX_OUT_OF_ORDER_CALLBACKS": "0",
                "M2T_SANDBOX_FEE_PERCENT_BP": "200",
                "M2T_SANDBOX_PUBLIC_URL": "http://m2t.local:8010",
            }
        )
        assert (config.api_key, config.callback_secret, config.callback_delay_seconds) == (
            "k3y",
            "s3cret",
            0.25,
        )
        assert (config.wallet_expiry_seconds, config.slow_response_seconds) == (30, 2.5)
        assert (config.duplicate_callbacks, config.out_of_order_callbacks) == (False, False)
        assert (config.fee_percent_bp, config.public_url) == (200, "http://m2t.local:8010")

    @pytest.mark.parametrize(
        "environ",
        [
            {"M2T_SANDBOX_API_KEY": ""},
            {"M2T_SANDBOX_CALLBACK_SECRET": ""},
            {"M2T_SANDBOX_CALLBACK_DELAY_SECONDS": "-1"},
            {"M2T_SANDBOX_WALLET_EXPIRY_SECONDS": "0"},
            {"M2T_SANDBOX_WALLET_EXPIRY_SECONDS": "1.5"},
            {"M2T_SANDBOX_SLOW_RESPONSE_SECONDS": "slow"},
            {"M2T_SANDBOX_DUPLICATE_CALLBACKS": "perhaps"},
            {"M2T_SANDBOX_FEE_PERCENT_BP": "10001"},
            {"M2T_SANDBOX_FEE_FIXED": "-1"},
            {"M2T_SANDBOX_PUBLIC_URL": "m2t.local"},
            {"M2T_SANDBOX_CALLBACK_RETRIES": "-1"},
        ],
    )
    def test_bad_values_are_refused(self, environ):
        with pytest.raises(ConfigError):
            SandboxM2TConfig.from_env(environ)

    def test_secrets_stay_out_of_repr(self):
        text = repr(sandbox_config())
        assert API_KEY not in text and CALLBACK_SECRET not in text
