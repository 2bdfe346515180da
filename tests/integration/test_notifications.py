"""Notifications on a real database: one per money or KYC event, in the artisan's language; sent by
SMS from the worker with retries; the provider's receipts applied once; the artisan's inbox; and
problems in the reader's language."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import Artisan, Notification
from services.onboarding.adapters.sms import HttpSmsProvider
from services.onboarding.app import create_app
from services.onboarding.service_layer.api_clients import ensure_client
from services.onboarding.service_layer.notifications import (
    make_notification_handlers,
    send_due_notifications,
)
from shared.auth.scopes import Role
from shared.db import utcnow
from shared.events import make_event
from shared.ids import new_id
from shared.signatures import sign
from tests.integration.conftest import MARKETPLACE, MARKETPLACE_SECRET
from tests.support import artisan_body

pytestmark = pytest.mark.integration

RECEIPT_SECRET = "test-sms-receipt-secret"


class FakeResponse:
    def __init__(self, status_code: int, body: dict[str, Any] | None = None) -> None:
        self.status_code = status_code
        self._body = body or {}

    def json(self) -> dict[str, Any]:
        return self._body


class ScriptedProvider:
    """The SMS provider's HTTP API as a requests session: scripted statuses, then 201 with an id."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict[str, Any]] = []

    def post(
        self, url: str, *, json: dict[str, Any], headers: dict[str, str], timeout: float
    ) -> FakeResponse:
        self.requests.append({"body": json, "headers": headers, "timeout": timeout})
        status = self.statuses.pop(0) if self.statuses else 201
        return FakeResponse(status, {"id": f"msg_{len(self.requests)}"} if status == 201 else {})


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def app(onboarding_config, provider):
    sms = HttpSmsProvider(
        "https://sms.example/v1/messages",
        api_key="k",
        sender_id="Hirfa",
        timeout_seconds=3,
        receipt_url="http://127.0.0.1:8001/v1/sms/receipts",
        receipt_secrets=(RECEIPT_SECRET,),
        session=provider,  # type: ignore[arg-type]
    )
    app = create_app(onboarding_config, sms=sms)
    ensure_client(
        app.extensions["hirfa"].uow_factory(),
        client_id=MARKETPLACE,
        client_secret=MARKETPLACE_SECRET,
        name="Souk Digital",
        role=Role.MARKETPLACE,
    )
    yield app
    app.extensions["hirfa"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def register(client, marketplace_headers, *, language: str = "fr", verified: bool = True) -> dict:
    body = artisan_body(preferred_language=language)
    response = client.post("/v1/artisans", json=body, headers=marketplace_headers(f"reg-{body['cin']}"))
    assert response.status_code == 201, response.json
    artisan = response.json
    if verified:
        with client.application.extensions["hirfa"].session_factory() as session:
            session.execute(
                sa.update(Artisan).where(Artisan.id == artisan["id"]).values(phone_verified_at=utcnow())
            )
            session.commit()
    return artisan


def payment_succeeded(artisan_id: str, net: int = 123450) -> Any:
    return make_event(
        "payments.payment.succeeded",
        subject=artisan_id,
        data={
            "payment_id": new_id("pay"),
            "artisan_id": artisan_id,
            "marketplace_id": MARKETPLACE,
            "amount": {"amount": net + 5000, "currency": "MAD"},
            "application_fee": {"amount": 5000, "currency": "MAD"},
            "net": {"amount": net, "currency": "MAD"},
            "method": "card",
            "gateway": "m2t",
            "gateway_reference": "gw_1",
            "succeeded_at": utcnow().isoformat(),
        },
    )


def payout_failed(artisan_id: str) -> Any:
    return make_event(
        "accounts.payout.failed",
        subject=artisan_id,
        data={
            "payout_id": new_id("po"),
            "artisan_id": artisan_id,
            "amount": {"amount": 50000, "currency": "MAD"},
            "status": "failed",
            "bank_account_id": new_id("ba"),
            "bank_code": "190",
            "rib_last4": "4821",
            "source": "api",
            "bank_reference": None,
            "occurred_at": utcnow().isoformat(),
            "failure_code": "invalid_rib",
            "funds_returned": True,
            "entry_id": new_id("je"),
            "failed_at": utcnow().isoformat(),
        },
    )


def deliver(app, *events) -> None:
    """What onboarding's consumer does with each event: its handler, in a transaction."""
    handlers = make_notification_handlers()
    for event in events:
        with app.extensions["hirfa"].uow_factory() as uow:
            handlers[event.type](uow, event)
            uow.commit()


def notifications_of(app, artisan_id: str) -> list[Notification]:
    with app.extensions["hirfa"].session_factory() as session:
        query = sa.select(Notification).where(Notification.artisan_id == artisan_id).order_by(Notification.id)
        return list(session.scalars(query))


def send(app, now: dt.datetime | None = None) -> dict[str, int]:
    context = app.extensions["hirfa"]
    return send_due_notifications(context.uow_factory, context.sms, context.notifications, now=now)


def artisan_headers(issue_token, artisan_id: str, **extra: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id=artisan_id), **extra}


def signed_receipt(
    message_id: str, status: str = "delivered", receipt_id: str | None = None
) -> tuple[bytes, dict]:
    body = json.dumps(
        {
            "id": receipt_id or new_id("evt"),
            "type": f"message.{status}",
            "created": 0,
            "data": {"message_id": message_id, "status": status, "error_code": None},
        }
    ).encode()
    return body, {"Sms-Signature": sign(RECEIPT_SECRET, body), "Content-Type": "application/json"}


# --- one notification per event, in the artisan's language --------------------------------------


def test_a_payment_tells_the_artisan_in_french_and_in_arabic_once_per_event(app, client, marketplace_headers):
    french = register(client, marketplace_headers, language="fr")
    arabic = register(client, marketplace_headers, language="ar")
    event = payment_succeeded(french["id"])

    deliver(app, event, event, payment_succeeded(arabic["id"]))

    [to_french] = notifications_of(app, french["id"])
    assert (to_french.kind, to_french.language, to_french.status, to_french.channel) == (
        "payment_received",
        "fr",
        "queued",
        "sms",
    )
    assert to_french.text.startswith("Hirfa : paiement de 1\u202f234,50\u00a0MAD de Souk Digital")
    [to_arabic] = notifications_of(app, arabic["id"])
    assert to_arabic.text.startswith("حرفة: دفعة") and "Souk Digital" in to_arabic.text


def test_an_artisan_without_a_verified_phone_reads_it_in_the_inbox_only(
    app, client, marketplace_headers, provider
):
    artisan = register(client, marketplace_headers, verified=False)

    deliver(app, payment_succeeded(artisan["id"]))
    send(app)

    [notification] = notifications_of(app, artisan["id"])
    assert (notification.channel, notification.status) == ("inbox", "delivered")
    assert provider.requests == []


# --- sending, retries, receipts ------------------------------------------------------------------


def test_the_worker_sends_it_and_the_receipt_marks_it_delivered_once(
    app, client, marketplace_headers, provider
):
    artisan = register(client, marketplace_headers)
    deliver(app, payment_succeeded(artisan["id"]))

    assert send(app) == {"sent": 1, "retried": 0, "failed": 0}

    [sent] = notifications_of(app, artisan["id"])
    assert (sent.status, sent.provider_message_id, sent.attempts) == ("sent", "msg_1", 1)
    [request] = provider.requests
    assert request["body"]["to"] == artisan["phone"] and request["headers"]["Idempotency-Key"] == sent.id
    assert request["body"]["text"].startswith("Hirfa : paiement de 1 234,50 MAD")  # plain spaces over SMS
    body, headers = signed_receipt("msg_1")
    first = client.post("/v1/sms/receipts", data=body, headers=headers)
    again = client.post("/v1/sms/receipts", data=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert (first.json["applied"], again.json["applied"]) == (True, False)
    assert again.json["status"] == "delivered"
    [delivered] = notifications_of(app, artisan["id"])
    assert delivered.status == "delivered" and delivered.delivered_at is not None


def test_a_late_failed_receipt_does_not_undo_a_delivered_one(app, client, marketplace_headers):
    artisan = register(client, marketplace_headers)
    deliver(app, payment_succeeded(artisan["id"]))
    send(app)
    body, headers = signed_receipt("msg_1", "delivered")
    client.post("/v1/sms/receipts", data=body, headers=headers)

    body, headers = signed_receipt("msg_1", "failed")
    response = client.post("/v1/sms/receipts", data=body, headers=headers)

    assert response.status_code == 200 and response.json == {
        "received": True,
        "applied": False,
        "status": "delivered",
    }


def test_a_provider_5xx_is_retried_with_backoff_and_a_4xx_is_not(app, client, marketplace_headers, provider):
    flaky = register(client, marketplace_headers)
    deliver(app, payment_succeeded(flaky["id"]))
    provider.statuses = [503, 502]
    now = utcnow()

    assert send(app, now) == {"sent": 0, "retried": 1, "failed": 0}
    [waiting] = notifications_of(app, flaky["id"])
    assert (waiting.status, waiting.attempts) == ("queued", 1)
    assert waiting.last_error == "the SMS provider answered 503"
    assert dt.timedelta(seconds=29) < waiting.next_attempt_at - now <= dt.timedelta(seconds=30)
    assert send(app, now + dt.timedelta(seconds=10))["retried"] == 0  # not due yet
    assert send(app, now + dt.timedelta(seconds=31))["retried"] == 1
    [again] = notifications_of(app, flaky["id"])
    assert dt.timedelta(seconds=59) < again.next_attempt_at - (now + dt.timedelta(seconds=31))  # doubled
    assert send(app, now + dt.timedelta(seconds=200))["sent"] == 1
    assert notifications_of(app, flaky["id"])[0].status == "sent"
    assert {r["headers"]["Idempotency-Key"] for r in provider.requests} == {waiting.id}

    refused = register(client, marketplace_headers)
    deliver(app, payment_succeeded(refused["id"]))
    provider.statuses = [400]
    assert send(app, now + dt.timedelta(seconds=300))["failed"] == 1
    assert notifications_of(app, refused["id"])[0].status == "failed"


def test_a_provider_that_is_down_stops_the_pass_at_the_first_failure(
    app, client, marketplace_headers, provider
):
    artisan = register(client, marketplace_headers)
    deliver(app, payment_succeeded(artisan["id"]), payment_succeeded(artisan["id"], net=500))
    provider.statuses = [503]

    assert send(app) == {"sent": 0, "retried": 1, "failed": 0}

    assert sorted(n.attempts for n in notifications_of(app, artisan["id"])) == [0, 1]
    assert len(provider.requests) == 1


def test_a_send_that_keeps_failing_ends_failed(app, client, marketplace_headers, provider, onboarding_config):
    artisan = register(client, marketplace_headers)
    deliver(app, payment_succeeded(artisan["id"]))
    provider.statuses = [503] * 10
    moment = utcnow()
    for _ in range(onboarding_config.notification_max_attempts):
        send(app, moment)
        moment += dt.timedelta(hours=2)

    [failed] = notifications_of(app, artisan["id"])
    assert (failed.status, failed.attempts) == ("failed", onboarding_config.notification_max_attempts)


def test_a_receipt_with_a_bad_signature_is_refused(app, client, marketplace_headers):
    body, headers = signed_receipt("msg_1")
    headers["Sms-Signature"] = sign("not-the-secret", body)

    response = client.post("/v1/sms/receipts", data=body, headers=headers)

    assert response.status_code == 401 and response.json["code"] == "invalid_signature"


def test_a_receipt_for_a_message_not_recorded_yet_asks_for_a_retry(client):
    body, headers = signed_receipt("msg_unknown")

    response = client.post("/v1/sms/receipts", data=body, headers=headers)

    assert response.status_code == 503 and response.json["code"] == "sms_message_unknown"


# --- the inbox -----------------------------------------------------------------------------------


def test_the_artisan_reads_their_own_inbox_newest_first_and_marks_read(
    app, client, marketplace_headers, issue_token
):
    artisan = register(client, marketplace_headers)
    other = register(client, marketplace_headers)
    deliver(
        app, payment_succeeded(artisan["id"]), payout_failed(artisan["id"]), payment_succeeded(other["id"])
    )
    headers = artisan_headers(issue_token, artisan["id"])

    first = client.get("/v1/notifications?limit=1", headers=headers)
    assert first.status_code == 200, first.json
    assert [n["kind"] for n in first.json["data"]] == ["payout_failed"] and first.json["has_more"]
    assert "le RIB est faux" in first.json["data"][0]["text"] and first.json["data"][0]["read"] is False
    second = client.get(
        f"/v1/notifications?limit=1&starting_after={first.json['next_cursor']}", headers=headers
    )
    assert [n["kind"] for n in second.json["data"]] == ["payment_received"] and not second.json["has_more"]

    read = client.post(f"/v1/notifications/{first.json['data'][0]['id']}/read", headers=headers)
    assert read.status_code == 200 and read.json["read"] is True
    unread = client.get("/v1/notifications?unread=true", headers=headers)
    assert [n["kind"] for n in unread.json["data"]] == ["payment_received"]

    others = notifications_of(app, other["id"])[0].id
    assert client.post(f"/v1/notifications/{others}/read", headers=headers).status_code == 404


def test_the_inbox_is_for_artisans(client, marketplace_headers):
    response = client.get("/v1/notifications", headers=marketplace_headers())
    assert response.status_code == 403


# --- problems in the reader's language -----------------------------------------------------------


def test_accept_language_ar_gives_an_arabic_detail_with_the_same_code_on_a_validation_error(
    client, marketplace_headers
):
    body = artisan_body()
    del body["phone"]
    english = client.post("/v1/artisans", json=body, headers=marketplace_headers("v-en"))
    arabic = client.post(
        "/v1/artisans", json=body, headers={**marketplace_headers("v-ar"), "Accept-Language": "ar"}
    )

    assert english.status_code == arabic.status_code == 422
    assert english.json["code"] == arabic.json["code"] == "validation_error"
    assert arabic.json["title"] == "الطلب غير صالح"
    assert arabic.json["detail"] == "phone: حقل إلزامي مفقود."
    assert arabic.json["errors"][0]["message"] == "حقل إلزامي مفقود."
    assert english.json["detail"] == "phone: Missing data for required field."
    assert arabic.headers["Content-Language"] == "ar"


def test_accept_language_ar_gives_an_arabic_detail_with_the_same_code_on_a_business_error(
    client, marketplace_headers
):
    artisan = register(client, marketplace_headers, verified=False)
    url = f"/v1/artisans/{artisan['id']}/phone-verification/confirm"

    english = client.post(url, json={"code": "123456"}, headers=marketplace_headers())
    arabic = client.post(
        url, json={"code": "123456"}, headers={**marketplace_headers(), "Accept-Language": "ar"}
    )
    french = client.post(
        url, json={"code": "123456"}, headers={**marketplace_headers(), "Accept-Language": "fr"}
    )

    assert english.status_code == arabic.status_code == 409
    assert english.json["code"] == arabic.json["code"] == french.json["code"] == "no_pending_verification"
    assert english.json["detail"] == "No code is waiting: request one first."
    assert arabic.json["detail"] == "لا يوجد رمز في الانتظار: اطلب رمزا أولا."
    assert french.json["detail"] == "Aucun code n'est en attente : demandez-en d'abord un."
    assert arabic.json["title"] == "تعارض"


def test_an_artisan_token_defaults_to_the_artisans_preferred_language(
    client, marketplace_headers, issue_token
):
    artisan = register(client, marketplace_headers, language="ar")
    headers = artisan_headers(issue_token, artisan["id"])

    missing = client.post("/v1/notifications/ntf_nothing/read", headers=headers)
    asked = client.post("/v1/notifications/ntf_nothing/read", headers={**headers, "Accept-Language": "fr"})
    bad_page = client.get("/v1/notifications?limit=0", headers=headers)

    assert missing.status_code == 404 and missing.json["detail"] == "لا يوجد إشعار ntf_nothing."
    assert asked.json["detail"] == "Aucune notification ntf_nothing."
    assert bad_page.status_code == 422
    assert bad_page.json["errors"][0]["message"] == "يجب أن يكون أكبر من أو يساوي 1 وأصغر من أو يساوي 100."


def test_payments_and_accounts_answer_an_artisan_in_the_language_of_their_token(
    accounts_app, payments_app, signing_keys
):
    from shared.auth.scopes import ROLE_SCOPES
    from shared.auth.tokens import TokenIssuer
    from tests.conftest import ISSUER

    token, _ = TokenIssuer(signing_keys, ISSUER).issue(
        client_id=new_id("art"),
        role=Role.ARTISAN,
        scopes=ROLE_SCOPES[Role.ARTISAN],
        audiences=["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"],
        lang="ar",
    )
    for app in (accounts_app, payments_app):
        client = app.test_client()
        arabic = client.get("/v1/no-such-thing", headers={"Authorization": f"Bearer {token}"})
        french = client.get(
            "/v1/no-such-thing", headers={"Authorization": f"Bearer {token}", "Accept-Language": "fr"}
        )
        anonymous = client.get("/v1/no-such-thing")

        assert arabic.status_code == 404 and arabic.json["code"] == french.json["code"] == "route_not_found"
        assert arabic.json["title"] == "هذا العنوان غير موجود"
        assert french.json["title"] == "Cette adresse n'existe pas"
        assert anonymous.json["title"] == "No such endpoint"


def test_registration_rules_are_explained_in_french(client, marketplace_headers):
    body = artisan_body(cin="12345678", date_of_birth="2100-01-01")

    french = client.post(
        "/v1/artisans", json=body, headers={**marketplace_headers("r-fr"), "Accept-Language": "fr"}
    )

    assert french.status_code == 422 and french.json["code"] == "validation_error"
    assert french.json["detail"] == "Certaines informations enfreignent les règles d'inscription."
    assert {e["message"] for e in french.json["errors"]} == {
        "Ce n'est pas un numéro de CIN valide.",
        "La date de naissance est dans le futur.",
    }
