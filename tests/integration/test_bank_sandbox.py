"""The bank-partner sandbox: its API, its decisions and its signed callbacks to a real HTTP receiver."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.bank.account_openings import OpeningRequest, refusal_reason
from sandbox.bank.app import create_app, stop_background_work
from sandbox.bank.config import SandboxBankConfig
from sandbox.bank.transfers import TransferRequest, failure_code
from shared.banking import PARTNER_BANK_CODES, make_rib, parse_rib
from shared.config import ConfigError
from shared.signatures import verify
from tests.http_support import CallbackReceiver, wait_until

pytestmark = pytest.mark.integration

API_KEY = "test-bank-api-key"
CALLBACK_SECRET = "test-bank-callback-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def sandbox_config(**overrides: Any) -> SandboxBankConfig:
    settings: dict[str, Any] = dict(
        api_key=API_KEY,
        callback_secret=CALLBACK_SECRET,
        callback_delay_seconds=0.05,
        duplicate_callbacks=True,
        callback_timeout_seconds=2.0,
        callback_retries=3,
        callback_backoff_seconds=0.01,
    )
    settings.update(overrides)
    return SandboxBankConfig(**settings)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver(path="/callbacks/bank")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Any]]:
    apps = []

    def build(**overrides: Any):
        app = create_app(sandbox_config(**overrides))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        stop_background_work(app)


@pytest.fixture
def bank(make_sandbox):
    return make_sandbox()


_references = iter(range(1, 1_000_000))


def opening(receiver: CallbackReceiver, **fields: Any) -> dict[str, Any]:
    body = {
        "reference": f"onb_{next(_references)}",
        "bank": "banque_populaire",
        "holder_name": "Fatima Zahra El Amrani",
        "cin": "BE123456",
        "phone": "+212612345678",
        "callback_url": receiver.url,
    }
    body.update(fields)
    return body


def open_account(client, receiver: CallbackReceiver, **fields: Any):
    return client.post("/v1/account-openings", json=opening(receiver, **fields), headers=AUTH)


class TestOpening:
    def test_opening_is_accepted_as_pending(self, bank, receiver):
        response = open_account(bank, receiver, reference="onb_pending")
        assert response.status_code == 202
        body = response.get_json()
        assert body["id"].startswith("aop_")
        assert (body["reference"], body["status"]) == ("onb_pending", "pending")
        assert "rib" not in body

    @pytest.mark.parametrize("bank_slug", sorted(PARTNER_BANK_CODES))
    def test_callback_is_signed_and_carries_a_valid_rib_of_the_right_bank(self, bank, receiver, bank_slug):
        created = open_account(bank, receiver, bank=bank_slug, reference="onb_signed").get_json()

        delivery = receiver.wait_for(1)[0]
        assert delivery.path == "/callbacks/bank"
        assert delivery.headers["Content-Type"] == "application/json"
        verify(CALLBACK_SECRET, delivery.headers["Bank-Signature"], delivery.body)

        event = delivery.event
        assert event["id"].startswith("evt_")
        assert event["type"] == "account_opening.opened"
        assert abs(event["created"] - time.time()) < 60
        data = event["data"]
        assert data["opening_id"] == created["id"]
        assert (data["reference"], data["bank"], data["status"]) == ("onb_signed", bank_slug, "opened")
        assert data["holder_name"] == "Fatima Zahra El Amrani"
        assert "refusal_reason" not in data

        account = parse_rib(data["rib"])
        assert account.bank.slug == bank_slug
        assert account.bank_code == PARTNER_BANK_CODES[bank_slug]

    def test_callback_signature_does_not_verify_with_another_secret(self, bank, receiver):
        open_account(bank, receiver)
        delivery = receiver.wait_for(1)[0]
        with pytest.raises(ValueError):
            verify("not-the-secret", delivery.headers["Bank-Signature"], delivery.body)

    def test_each_opening_gets_its_own_rib(self, receiver, make_sandbox):
        quiet_bank = make_sandbox(duplicate_callbacks=False)
        for _ in range(5):
            open_account(quiet_bank, receiver)
        ribs = {delivery.event["data"]["rib"] for delivery in receiver.wait_for(5)}
        assert len(ribs) == 5

    def test_status_shows_pending_then_opened_with_the_rib_of_the_callback(self, make_sandbox, receiver):
        slow_bank = make_sandbox(callback_delay_seconds=0.3)
        created = open_account(slow_bank, receiver).get_json()
        before = slow_bank.get(f"/v1/account-openings/{created['id']}", headers=AUTH)
        assert before.status_code == 200
        assert before.get_json()["status"] == "pending"

        rib = receiver.wait_for(1)[0].event["data"]["rib"]
        after = slow_bank.get(f"/v1/account-openings/{created['id']}", headers=AUTH).get_json()
        assert (after["status"], after["rib"]) == ("opened", rib)
        assert "cin" not in after and "phone" not in after

    def test_unknown_opening_is_404(self, bank):
        response = bank.get("/v1/account-openings/aop_doesnotexist", headers=AUTH)
        assert response.status_code == 404
        assert response.get_json()["code"] == "not_found"


class TestDuplicateDelivery:
    def test_every_callback_is_delivered_twice_with_the_same_event(self, bank, receiver):
        open_account(bank, receiver)
        first, second = receiver.wait_for(2)
        assert first.event["id"] == second.event["id"]
        assert first.body == second.body
        verify(CALLBACK_SECRET, first.headers["Bank-Signature"], first.body)
        verify(CALLBACK_SECRET, second.headers["Bank-Signature"], second.body)

    def test_duplicates_can_be_turned_off(self, make_sandbox, receiver):
        app_client = make_sandbox(duplicate_callbacks=False)
        open_account(app_client, receiver)
        receiver.wait_for(1)
        # Waits for any delivery still running, so a late duplicate would be counted below.
        stop_background_work(app_client.application)
        assert len(receiver.deliveries) == 1


class TestRefusalRules:
    @pytest.mark.parametrize(
        ("cin", "holder_name", "reason"),
        [
            ("BE123499", "Youssef Benali", "customer_due_diligence_failed"),
            ("BE123456", "Refus Test", "duplicate_customer"),
            ("BE123456", "Mme REFUSÉE", "duplicate_customer"),
            ("BE123456", "Hassan refusnik", "duplicate_customer"),
            ("BE123499", "Refus Test", "customer_due_diligence_failed"),  # the first rule wins
            ("BE123456", "Youssef Benali", None),
            ("BE129909", "Youssef Benali", None),  # 99, but not at the end
        ],
    )
    def test_rules(self, cin, holder_name, reason):
        applicant = OpeningRequest("ref", "cih_bank", holder_name, cin, "+212612345678", "http://x")
        assert refusal_reason(applicant) == reason

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"cin": "BE123499"}, "customer_due_diligence_failed"),
            ({"holder_name": "Demo Refus"}, "duplicate_customer"),
        ],
    )
    def test_refused_opening_calls_back_with_the_reason_and_no_rib(self, bank, receiver, fields, reason):
        created = open_account(bank, receiver, **fields).get_json()
        event = receiver.wait_for(1)[0].event
        assert event["type"] == "account_opening.refused"
        assert (event["data"]["status"], event["data"]["refusal_reason"]) == ("refused", reason)
        assert "rib" not in event["data"]
        state = bank.get(f"/v1/account-openings/{created['id']}", headers=AUTH).get_json()
        assert (state["status"], state["refusal_reason"]) == ("refused", reason)


class TestIdempotency:
    def test_same_reference_returns_the_same_opening_and_one_callback(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False)
        body = opening(receiver, reference="onb_same")
        first = bank.post("/v1/account-openings", json=body, headers=AUTH)
        again = bank.post("/v1/account-openings", json=body, headers=AUTH)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.get_json()["id"] == first.get_json()["id"]

        receiver.wait_for(1)
        stop_background_work(bank.application)
        assert len(receiver.deliveries) == 1

    def test_same_reference_after_the_decision_returns_the_current_state(self, bank, receiver):
        body = opening(receiver, reference="onb_later")
        created = bank.post("/v1/account-openings", json=body, headers=AUTH).get_json()
        receiver.wait_for(1)
        again = bank.post("/v1/account-openings", json=body, headers=AUTH)
        assert again.status_code == 200
        assert (again.get_json()["id"], again.get_json()["status"]) == (created["id"], "opened")

    def test_same_reference_with_other_details_is_a_conflict(self, bank, receiver):
        bank.post("/v1/account-openings", json=opening(receiver, reference="onb_x"), headers=AUTH)
        other = opening(receiver, reference="onb_x", holder_name="Someone Else")
        response = bank.post("/v1/account-openings", json=other, headers=AUTH)
        assert response.status_code == 409
        assert response.get_json()["code"] == "reference_conflict"


class TestApiKey:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": API_KEY},  # no scheme
            {"Authorization": f"Basic {API_KEY}"},
            {"Authorization": "Bearer "},
        ],
    )
    def test_missing_or_wrong_key_is_401(self, bank, receiver, headers):
        for response in (
            bank.post("/v1/account-openings", json=opening(receiver), headers=headers),
            bank.get("/v1/account-openings/aop_any", headers=headers),
        ):
            assert response.status_code == 401
            assert response.get_json()["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_refused_request_opens_nothing(self, bank, receiver):
        bank.post("/v1/account-openings", json=opening(receiver), headers={})
        stop_background_work(bank.application)
        assert receiver.requests_seen == 0

    def test_health_check_needs_no_key(self, bank):
        response = bank.get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


class TestValidation:
    @pytest.mark.parametrize(
        ("fields", "code", "param"),
        [
            ({"reference": None}, "missing_field", "reference"),
            ({"holder_name": "   "}, "invalid_field", "holder_name"),
            ({"phone": 612345678}, "invalid_field", "phone"),
            ({"bank": "attijariwafa_bank"}, "unsupported_bank", "bank"),
            ({"cin": "123456"}, "invalid_field", "cin"),
            ({"callback_url": "ftp://example.org/cb"}, "invalid_field", "callback_url"),
            ({"callback_url": "/relative/path"}, "invalid_field", "callback_url"),
            ({"reference": "r" * 101}, "invalid_field", "reference"),
        ],
    )
    def test_invalid_fields_are_422(self, bank, receiver, fields, code, param):
        body = {name: value for name, value in opening(receiver, **fields).items() if value is not None}
        response = bank.post("/v1/account-openings", json=body, headers=AUTH)
        assert response.status_code == 422
        error = response.get_json()
        assert (error["code"], error["param"]) == (code, param)
        assert error["message"]

    @pytest.mark.parametrize("data", ["not json", "[1, 2]", ""])
    def test_body_that_is_not_a_json_object_is_422(self, bank, data):
        response = bank.post(
            "/v1/account-openings", data=data, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert response.get_json()["code"] == "invalid_body"

    def test_cin_is_normalised(self, bank, receiver):
        assert open_account(bank, receiver, cin=" be 123456 ").status_code == 202


class TestRetries:
    def test_5xx_is_retried_until_delivered(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False)
        receiver.replies = [503, 500]
        open_account(bank, receiver)
        delivery = receiver.wait_for(1)[0]
        assert receiver.requests_seen == 3
        verify(CALLBACK_SECRET, delivery.headers["Bank-Signature"], delivery.body)

    def test_4xx_is_not_retried(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False)
        receiver.replies = [400]
        open_account(bank, receiver)
        wait_until(lambda: receiver.requests_seen >= 1)
        stop_background_work(bank.application)
        assert (receiver.requests_seen, receiver.deliveries) == (1, [])

    def test_gives_up_after_the_configured_retries(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False, callback_retries=2)
        receiver.replies = [503] * 10
        created = open_account(bank, receiver).get_json()
        wait_until(lambda: receiver.requests_seen >= 3)
        stop_background_work(bank.application)
        assert receiver.requests_seen == 3
        # The decision stands even though nobody heard about it: polling is the way to find out.
        state = bank.get(f"/v1/account-openings/{created['id']}", headers=AUTH).get_json()
        assert state["status"] == "opened"

    def test_unreachable_receiver_does_not_break_the_bank(self, make_sandbox, receiver):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Nothing listens on the port once the probe is closed: every attempt is refused.
        bank = make_sandbox(callback_retries=1)
        dead_url = f"http://127.0.0.1:{port}/callbacks/bank"
        created = open_account(bank, receiver, callback_url=dead_url).get_json()
        path = f"/v1/account-openings/{created['id']}"
        wait_until(lambda: bank.get(path, headers=AUTH).get_json()["status"] == "opened")
        stop_background_work(bank.application)
        assert bank.get("/healthz").status_code == 200


class TestConfig:
    def test_defaults(self):
        config = SandboxBankConfig.from_env({})
        assert config.callback_secret == "sandbox-bank-callback-secret"
        assert config.api_key == "sandbox-bank-api-key"
        assert config.callback_delay_seconds == 1.0
        assert config.duplicate_callbacks is True
        assert (config.callback_timeout_seconds, config.callback_retries) == (5.0, 5)

    def test_environment_overrides(self):
        config = SandboxBankConfig.from_env(
            {
                "BANK_SANDBOX_CALLBACK_SECRET": "s3cret",
                "BANK_SANDBOX_API_KEY": "k3y",
                "BANK_SANDBOX_CALLBACK_DELAY_SECONDS": "0.25",
                "BANK_SANDBOX_DUPLICATE_CALLBACKS": "false",
                "BANK_SANDBOX_CALLBACK_TIMEOUT_SECONDS": "2",
                "BANK_SANDBOX_CALLBACK_RETRIES": "1",
            }
        )
        assert (config.callback_secret, config.api_key) == ("s3cret", "k3y")
        assert (config.callback_delay_seconds, config.duplicate_callbacks) == (0.25, False)
        assert (config.callback_timeout_seconds, config.callback_retries) == (2.0, 1)

    @pytest.mark.parametrize(
        "environ",
        [
            {"BANK_SANDBOX_CALLBACK_RETRIES": "many"},
            {"BANK_SANDBOX_DUPLICATE_CALLBACKS": "perhaps"},
            {"BANK_SANDBOX_CALLBACK_RETRIES": "-1"},
            {"BANK_SANDBOX_API_KEY": ""},
        ],
    )
    def test_bad_values_are_refused(self, environ):
        with pytest.raises(ConfigError):
            SandboxBankConfig.from_env(environ)

    def test_secrets_stay_out_of_repr(self):
        text = repr(sandbox_config())
        assert API_KEY not in text and CALLBACK_SECRET not in text


# --- transfers (payouts) -------------------------------------------------------------------------

PAID_RIB = make_rib("007", "780", "0000001234567890")


def with_wrong_key(rib: str) -> str:
    return rib[:22] + f"{(int(rib[22:]) + 1) % 100:02d}"


def transfer_body(receiver: CallbackReceiver, **fields: Any) -> dict[str, Any]:
    body = {
        "reference": f"po_{next(_references)}",
        "rib": PAID_RIB,
        "holder_name": "Fatima Zahra El Amrani",
        "amount": 125_000,
        "currency": "MAD",
        "callback_url": receiver.url,
    }
    body.update(fields)
    return body


def send_transfer(client, receiver: CallbackReceiver, **fields: Any):
    return client.post("/v1/transfers", json=transfer_body(receiver, **fields), headers=AUTH)


class TestTransfers:
    def test_a_transfer_is_accepted_as_pending_without_echoing_the_rib(self, bank, receiver):
        response = send_transfer(bank, receiver, reference="po_pending")
        assert response.status_code == 202
        body = response.get_json()
        assert body["id"].startswith("trf_")
        assert (body["reference"], body["status"], body["amount"], body["currency"]) == (
            "po_pending",
            "pending",
            125_000,
            "MAD",
        )
        assert body["rib_last4"] == PAID_RIB[-4:] and "rib" not in body

    def test_a_valid_rib_is_paid_and_the_signed_callback_says_so(self, make_sandbox, receiver):
        bank = make_sandbox(callback_delay_seconds=0.2)
        created = send_transfer(bank, receiver, reference="po_paid").get_json()
        delivery = receiver.wait_for(1)[0]
        verify(CALLBACK_SECRET, delivery.headers["Bank-Signature"], delivery.body)
        event = delivery.event
        assert event["type"] == "transfer.paid"
        assert event["data"] == {
            "transfer_id": created["id"],
            "reference": "po_paid",
            "status": "paid",
            "amount": 125_000,
            "currency": "MAD",
        }
        state = bank.get(f"/v1/transfers/{created['id']}", headers=AUTH).get_json()
        assert (state["status"], "failure_code" in state, "settled" in state) == ("paid", False, True)

    @pytest.mark.parametrize(
        ("rib", "code"),
        [
            (make_rib("007", "780", "0000000000000001"), "account_closed"),
            (make_rib("145", "001", "1234567890120002"), "name_mismatch"),
            (make_rib("230", "780", "0000000000000003"), "bank_unavailable"),
            (with_wrong_key(PAID_RIB), "invalid_rib"),
            (make_rib("999", "780", "0000001234567890"), "invalid_rib"),  # no such bank
            # Both a wrong key and a closed account: the first rule wins.
            (with_wrong_key(make_rib("007", "780", "0000000000000001")), "invalid_rib"),
        ],
    )
    def test_the_test_ribs_fail_the_transfer_with_their_code(self, bank, receiver, rib, code):
        created = send_transfer(bank, receiver, rib=rib).get_json()
        event = receiver.wait_for(1)[0].event
        assert event["type"] == "transfer.failed"
        assert (event["data"]["status"], event["data"]["failure_code"]) == ("failed", code)
        state = bank.get(f"/v1/transfers/{created['id']}", headers=AUTH).get_json()
        assert (state["status"], state["failure_code"]) == ("failed", code)

    @pytest.mark.parametrize(
        ("account_number", "code"),
        [
            ("0000000000000001", "account_closed"),
            ("0000000000000002", "name_mismatch"),
            ("0000000000000003", "bank_unavailable"),
            ("0000000000000004", None),
            ("0000000000010000", None),
            ("0001000000000000", None),
        ],
    )
    def test_rules(self, account_number, code):
        rib = make_rib("007", "780", account_number)
        assert failure_code(TransferRequest("po_1", rib, "A B", 100, "MAD", "http://x")) == code

    def test_the_same_reference_returns_the_same_transfer_and_one_callback(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False)
        body = transfer_body(receiver, reference="po_same")
        first = bank.post("/v1/transfers", json=body, headers=AUTH)
        again = bank.post("/v1/transfers", json=body, headers=AUTH)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.get_json()["id"] == first.get_json()["id"]
        receiver.wait_for(1)
        stop_background_work(bank.application)
        assert len(receiver.deliveries) == 1

    def test_the_same_reference_with_another_amount_is_a_conflict(self, bank, receiver):
        send_transfer(bank, receiver, reference="po_x")
        response = send_transfer(bank, receiver, reference="po_x", amount=1)
        assert response.status_code == 409
        assert response.get_json()["code"] == "reference_conflict"

    @pytest.mark.parametrize(
        ("fields", "code", "param"),
        [
            ({"reference": None}, "missing_field", "reference"),
            ({"rib": "12345"}, "invalid_field", "rib"),
            ({"rib": "٠" * 24}, "invalid_field", "rib"),  # Arabic-Indic digits are not a RIB
            ({"holder_name": " "}, "invalid_field", "holder_name"),
            ({"amount": None}, "missing_field", "amount"),
            ({"amount": 0}, "invalid_field", "amount"),
            ({"amount": 12.5}, "invalid_field", "amount"),
            ({"amount": True}, "invalid_field", "amount"),
            ({"amount": "100"}, "invalid_field", "amount"),
            ({"currency": "EUR"}, "unsupported_currency", "currency"),
            ({"callback_url": "/relative"}, "invalid_field", "callback_url"),
        ],
    )
    def test_invalid_fields_are_422_and_nothing_is_sent(self, bank, receiver, fields, code, param):
        body = {name: value for name, value in transfer_body(receiver, **fields).items() if value is not None}
        response = bank.post("/v1/transfers", json=body, headers=AUTH)
        assert response.status_code == 422
        assert (response.get_json()["code"], response.get_json()["param"]) == (code, param)
        stop_background_work(bank.application)
        assert receiver.requests_seen == 0

    def test_transfers_need_the_api_key(self, bank, receiver):
        assert bank.post("/v1/transfers", json=transfer_body(receiver)).status_code == 401
        assert bank.get("/v1/transfers/trf_any").status_code == 401

    def test_an_unknown_transfer_is_404(self, bank):
        response = bank.get("/v1/transfers/trf_doesnotexist", headers=AUTH)
        assert (response.status_code, response.get_json()["code"]) == (404, "not_found")


# --- account-holder verification -----------------------------------------------------------------


def verify_holder(client, rib: str, holder_name: str = "Fatima Zahra El Amrani", cin: str = "BE123456"):
    return client.post(
        "/v1/account-holder-verifications",
        json={"rib": rib, "holder_name": holder_name, "cin": cin},
        headers=AUTH,
    )


class TestHolderVerification:
    @pytest.mark.parametrize(
        ("account_number", "result"),
        [
            ("0000000000001234", "match"),
            ("0000000000000004", "unknown"),
            ("0000000000000005", "mismatch"),
        ],
    )
    def test_the_test_ribs_give_their_answer(self, bank, account_number, result):
        response = verify_holder(bank, make_rib("007", "780", account_number))
        assert response.status_code == 200
        assert response.get_json() == {"result": result}

    def test_an_account_the_sandbox_opened_matches_only_its_holder(self, make_sandbox, receiver):
        bank = make_sandbox(duplicate_callbacks=False)
        open_account(bank, receiver, reference="onb_verified", holder_name="Fatima Zahra El Amrani")
        rib = receiver.wait_for(1)[0].event["data"]["rib"]

        assert verify_holder(bank, rib, "EL AMRANI Fatima Zahra").get_json()["result"] == "match"
        assert verify_holder(bank, rib, "Fátima Zahra El Amrani", "be 123456").get_json()["result"] == "match"
        assert verify_holder(bank, rib, "Karim Benjelloun").get_json()["result"] == "mismatch"
        assert verify_holder(bank, rib, cin="BE654321").get_json()["result"] == "mismatch"

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"holder_name": "Fatima", "cin": "BE123456"}, "rib"),
            ({"rib": "12345", "holder_name": "Fatima", "cin": "BE123456"}, "rib"),
            # 24 digits, but the key (the last two) is wrong, or the bank code is no bank's.
            (
                {
                    "rib": make_rib("007", "780", "0000000000001234")[:22] + "00",
                    "holder_name": "F",
                    "cin": "BE1",
                },
                "rib",
            ),
            (
                {
                    "rib": "999780" + make_rib("007", "780", "0000000000001234")[6:],
                    "holder_name": "F",
                    "cin": "BE1",
                },
                "rib",
            ),
            ({"rib": make_rib("007", "780", "0000000000001234"), "cin": "BE123456"}, "holder_name"),
            ({"rib": make_rib("007", "780", "0000000000001234"), "holder_name": "Fatima"}, "cin"),
        ],
    )
    def test_a_request_that_is_not_a_verification_is_422(self, bank, body, param):
        response = bank.post("/v1/account-holder-verifications", json=body, headers=AUTH)
        assert response.status_code == 422
        assert response.get_json()["param"] == param

    def test_verification_needs_the_api_key(self, bank):
        response = bank.post(
            "/v1/account-holder-verifications",
            json={"rib": make_rib("007", "780", "0000000000001234"), "holder_name": "F", "cin": "BE123456"},
        )
        assert response.status_code == 401
