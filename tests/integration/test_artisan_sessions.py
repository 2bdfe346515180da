"""Artisans signing in with their phone, over HTTP: the SMS code, the tokens, refresh rotation and
reuse detection, logout, devices, the lockout after wrong codes, the rate limits, sessions ended by
KYC, and what an artisan token reaches in onboarding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import threading
import time

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import (
    Artisan,
    ArtisanDevice,
    ArtisanRefreshToken,
    ArtisanSignIn,
    OutboxMessage,
    SignInLockout,
)
from services.onboarding.domain.artisans import normalise_moroccan_mobile
from services.onboarding.domain.ports import SmsDeliveryError
from services.onboarding.service_layer.artisan_sessions import (
    SMS_SENDERS,
    _count_failure,
    _record_device,
    start_sign_in,
    wait_for_pending_sends,
)
from services.onboarding.service_layer.screening import load_list, rescreen_all
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.db import utcnow
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeBankPartner
from tests.integration.test_bank_accounts_api import start_onboarding_app
from tests.support import ROOT, artisan_body, random_phone
from tests.tokens_forge import unverified_claims

SAMPLE_LIST = "services/onboarding/screening_lists/un_consolidated_sample.xml"
DEVICE = "3f0c9a7e-5b1d-4e2a-9c61-0d2b7e8f4a10"
OTHER_DEVICE = "android-7d1e0b2c9a44"
MAX_FAILED_CODES = 4
MAX_STARTS_PER_IP = 8
MAX_SENDS_PER_HOUR = 4


@pytest.fixture
def onboarding_config(onboarding_config):
    # No response floor (the tests would only wait), and low limits the tests can reach.
    return dataclasses.replace(
        onboarding_config,
        sign_in_min_response_ms=0,
        sign_in_max_failed_codes=MAX_FAILED_CODES,
        sign_in_max_starts_per_ip_per_hour=MAX_STARTS_PER_IP,
        otp_max_sends_per_hour=MAX_SENDS_PER_HOUR,
    )


@pytest.fixture
def app(onboarding_config):
    partners = PartnerRegistry(
        {slug: FakeBankPartner("test-bank-callback-secret") for slug in onboarding_config.partner_bank_slugs}
    )
    app = start_onboarding_app(onboarding_config, bank_partners=partners)
    context = app.extensions["hirfa"]
    load_list(context.uow_factory(), (ROOT / SAMPLE_LIST).read_bytes(), source="sample")
    yield app
    context.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def register(client, marketplace_headers, **body) -> dict:
    body = artisan_body(**body)
    response = client.post("/v1/artisans", json=body, headers=marketplace_headers(f"reg-{body['cin']}"))
    assert response.status_code == 201, response.json
    return response.json


def sms_to(app, phone: str) -> list[str]:
    # Sign-in codes are sent beside the answer: what is on its way has arrived once its send ends.
    wait_for_pending_sends(timeout=10)
    return [message["text"] for message in app.extensions["hirfa"].sms.messages(to=phone)]


def last_code(app, phone: str) -> str:
    return re.search(r"\b(\d{6})\b", sms_to(app, phone)[-1]).group(1)


def outbox_events(app, event_type: str) -> list[dict]:
    with app.extensions["hirfa"].session_factory() as session:
        rows = session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.seq)
        )
        return [json.loads(row.payload) for row in rows]


def start(client, phone: str, ip: str = "198.51.100.7"):
    return client.post("/v1/artisan-sessions", json={"phone": phone}, environ_base={"REMOTE_ADDR": ip})


def verify(client, sign_in_id: str, code: str, device_id: str = DEVICE):
    return client.post(
        f"/v1/artisan-sessions/{sign_in_id}/verify", json={"code": code, "device_id": device_id}
    )


def sign_in(client, app, phone: str, device_id: str = DEVICE) -> dict:
    started = start(client, phone)
    assert started.status_code == 202, started.json
    response = verify(client, started.json["id"], last_code(app, phone), device_id)
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, refresh_token: str, device_id: str = DEVICE):
    return client.post(
        "/v1/artisan-sessions/refresh", json={"refresh_token": refresh_token, "device_id": device_id}
    )


def bearer(tokens: dict) -> dict:
    return {"Authorization": "Bearer " + tokens["access_token"]}


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# --- signing in ------------------------------------------------------------------------------------


def test_sign_in_by_sms_code_gives_an_artisan_token_for_every_service(
    client, app, marketplace_headers, caplog, capfd
):
    artisan = register(client, marketplace_headers, preferred_language="ar")
    started = start(client, artisan["phone"])
    assert started.status_code == 202
    assert started.json["id"].startswith("asn_") and started.json["status"] == "pending"
    assert artisan["phone"] not in json.dumps(started.json)  # masked
    [text] = sms_to(app, artisan["phone"])
    assert "حرفة" in text  # in the artisan's language

    code = last_code(app, artisan["phone"])
    bad = verify(client, started.json["id"], wrong(code))
    assert bad.status_code == 422 and bad.json["code"] == "otp_incorrect"
    assert bad.json["attempts_remaining"] == 4

    response = verify(client, started.json["id"], code)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    tokens = response.json
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("hrt_") and tokens["device_id"] == DEVICE
    claims = unverified_claims(tokens["access_token"])
    assert claims["role"] == "artisan" and claims["sub"] == artisan["id"] and claims["device_id"] == DEVICE
    assert sorted(claims["aud"]) == ["hirfa-accounts", "hirfa-onboarding", "hirfa-payments"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["lang"] == "ar"  # every service answers the artisan in their language
    # Only a hash of the refresh token is kept.
    with app.extensions["hirfa"].session_factory() as session:
        stored = session.scalars(sa.select(ArtisanRefreshToken.token_hash)).all()
    assert stored and tokens["refresh_token"] not in stored

    # The code is used up.
    again = verify(client, started.json["id"], code)
    assert again.status_code == 409 and again.json["code"] == "sign_in_not_pending"
    # Neither the code nor a token ever reaches a log line.
    logged = capfd.readouterr().err + "".join(repr(vars(record)) for record in caplog.records)
    assert "/v1/artisan-sessions" in logged
    for secret in (code, tokens["refresh_token"], tokens["access_token"]):
        assert secret not in logged


def test_every_answer_to_a_sign_in_takes_the_same_minimum_time(app, marketplace_headers, client):
    artisan = register(client, marketplace_headers)
    context = app.extensions["hirfa"]
    policy = dataclasses.replace(context.sign_in, min_response=dt.timedelta(milliseconds=250))
    for phone in (artisan["phone"], random_phone()):
        began = time.monotonic()
        start_sign_in(context.uow_factory, phone, client_ip=None, policy=policy, sms=context.sms)
        assert time.monotonic() - began >= 0.25


def test_a_slow_sms_provider_does_not_hold_up_a_registered_numbers_answer(app, marketplace_headers, client):
    artisan = register(client, marketplace_headers)
    context = app.extensions["hirfa"]
    policy = dataclasses.replace(context.sign_in, min_response=dt.timedelta(milliseconds=50))
    provider_answers = threading.Event()
    sent: list[str] = []

    class SlowProvider:
        def send(self, to: str, text: str) -> None:
            provider_answers.wait(timeout=10)
            sent.append(to)

    answer = start_sign_in(
        context.uow_factory, artisan["phone"], client_ip=None, policy=policy, sms=SlowProvider()
    )
    # The answer came back while the provider still had the code: like an unknown number's.
    assert answer["status"] == "pending" and sent == []
    provider_answers.set()
    sms_to(app, artisan["phone"])  # waits for the sender
    assert sent == [normalise_moroccan_mobile(artisan["phone"])]


def test_an_unknown_number_gets_the_same_answer_and_no_sms(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    unknown = random_phone()
    known_answer, unknown_answer = start(client, artisan["phone"]), start(client, unknown)
    assert known_answer.status_code == unknown_answer.status_code == 202
    assert set(known_answer.json) == set(unknown_answer.json)
    assert sms_to(app, normalise_moroccan_mobile(unknown)) == []
    for code in ("000000", "123456"):
        refused = verify(client, unknown_answer.json["id"], code)
        assert refused.status_code == 422 and refused.json["code"] == "otp_incorrect"
    malformed = start(client, "12")
    assert malformed.status_code == 422


def test_codes_per_number_are_limited_whether_or_not_it_is_registered(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    unknown = random_phone()
    for phone in (artisan["phone"], unknown):
        for _ in range(MAX_SENDS_PER_HOUR):
            assert start(client, phone, ip="203.0.113.1").status_code == 202
        limited = start(client, phone, ip="203.0.113.2")
        assert limited.status_code == 429 and limited.json["code"] == "otp_send_limit"
        assert int(limited.headers["Retry-After"]) > 0


def test_sign_ins_per_network_are_limited(client):
    for _ in range(MAX_STARTS_PER_IP):
        assert start(client, random_phone(), ip="192.0.2.50").status_code == 202
    limited = start(client, random_phone(), ip="192.0.2.50")
    assert limited.status_code == 429 and limited.json["code"] == "sign_in_ip_limit"
    assert start(client, random_phone(), ip="192.0.2.51").status_code == 202


def test_too_many_wrong_codes_lock_sign_in_for_the_number(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    phone = artisan["phone"]
    first = start(client, phone)
    code = last_code(app, phone)
    for _ in range(MAX_FAILED_CODES - 1):
        assert verify(client, first.json["id"], wrong(code)).json["code"] == "otp_incorrect"
    second = start(client, phone)  # a new code does not start the count over
    last = verify(client, second.json["id"], wrong(last_code(app, phone)))
    assert last.json["code"] == "otp_incorrect"

    locked = verify(client, second.json["id"], last_code(app, phone))  # even the right code
    assert locked.status_code == 429 and locked.json["code"] == "sign_in_locked"
    assert int(locked.headers["Retry-After"]) > 60
    refused = start(client, phone)
    assert refused.status_code == 429 and refused.json["code"] == "sign_in_locked"

    # Once the lock is over, the artisan signs in, and the count starts over.
    with app.extensions["hirfa"].session_factory() as session:
        session.execute(
            sa.update(SignInLockout)
            .where(SignInLockout.phone == phone)
            .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    assert verify(client, second.json["id"], last_code(app, phone)).status_code == 200
    with app.extensions["hirfa"].session_factory() as session:
        assert session.get(SignInLockout, phone) is None


# --- refresh tokens ----------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_of_an_old_token_ends_the_session(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    first = sign_in(client, app, artisan["phone"])
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.json
    assert second.json["refresh_token"] != first["refresh_token"]
    assert unverified_claims(second.json["access_token"])["sub"] == artisan["id"]
    third = refresh(client, second.json["refresh_token"])
    assert third.status_code == 200

    # The first token again (rotated long ago, its successor used): stolen. The family is revoked.
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401 and reused.json["code"] == "refresh_token_reused"
    ended = refresh(client, third.json["refresh_token"])
    assert ended.status_code == 401 and ended.json["code"] == "refresh_token_revoked"


def test_a_retried_refresh_whose_answer_was_lost_is_not_a_theft(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    first = sign_in(client, app, artisan["phone"])
    lost = refresh(client, first["refresh_token"])  # the phone never got this answer
    assert lost.status_code == 200
    retried = refresh(client, first["refresh_token"])
    assert retried.status_code == 200, retried.json
    assert refresh(client, lost.json["refresh_token"]).status_code == 401  # given way to the retry
    assert refresh(client, retried.json["refresh_token"]).status_code == 200


def test_a_refresh_token_works_only_on_its_device(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    tokens = sign_in(client, app, artisan["phone"])
    copied = refresh(client, tokens["refresh_token"], device_id=OTHER_DEVICE)
    assert copied.status_code == 401 and copied.json["code"] == "invalid_refresh_token"
    assert refresh(client, tokens["refresh_token"]).status_code == 401  # the session is over
    assert refresh(client, "hrt_not-a-token").status_code == 401
    malformed = client.post("/v1/artisan-sessions/refresh", json={"refresh_token": "x", "device_id": "a b"})
    assert malformed.status_code == 422


def test_logout_ends_the_session(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers)
    tokens = sign_in(client, app, artisan["phone"])
    assert (
        client.post(
            "/v1/artisan-sessions/logout", json={"refresh_token": tokens["refresh_token"]}
        ).status_code
        == 204
    )
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    # Logging out twice, or with nonsense, changes nothing.
    assert (
        client.post(
            "/v1/artisan-sessions/logout", json={"refresh_token": tokens["refresh_token"]}
        ).status_code
        == 204
    )
    assert client.post("/v1/artisan-sessions/logout", json={"refresh_token": "hrt_x"}).status_code == 204


# --- devices ------------------------------------------------------------------------------------------


def test_devices_listed_and_revoked_by_the_artisan_or_an_operator(
    client, app, marketplace_headers, issue_token
):
    artisan = register(client, marketplace_headers)
    someone_else = register(client, marketplace_headers)
    phone_a = sign_in(client, app, artisan["phone"], DEVICE)
    sign_in(client, app, artisan["phone"], DEVICE)  # the same phone again: not news
    phone_b = sign_in(client, app, artisan["phone"], OTHER_DEVICE)
    events = outbox_events(app, "onboarding.artisan.device_signed_in")
    assert [(e["data"]["artisan_id"], e["data"]["device_id"]) for e in events] == [
        (artisan["id"], DEVICE),
        (artisan["id"], OTHER_DEVICE),
    ]

    listed = client.get(f"/v1/artisans/{artisan['id']}/devices", headers=bearer(phone_b))
    assert listed.status_code == 200
    assert [(d["device_id"], d["signed_in"]) for d in listed.json["data"]] == [
        (DEVICE, True),
        (OTHER_DEVICE, True),
    ]

    # The artisan signs the lost phone out from the other one.
    revoked = client.delete(f"/v1/artisans/{artisan['id']}/devices/{DEVICE}", headers=bearer(phone_b))
    assert revoked.status_code == 204
    assert refresh(client, phone_a["refresh_token"], DEVICE).status_code == 401
    assert refresh(client, phone_b["refresh_token"], OTHER_DEVICE).status_code == 200
    listed = client.get(f"/v1/artisans/{artisan['id']}/devices", headers=bearer(phone_b)).json["data"]
    assert [(d["device_id"], d["signed_in"], d["revoked_at"] is not None) for d in listed] == [
        (DEVICE, False, True),
        (OTHER_DEVICE, True, False),
    ]
    # Signing in again on the revoked phone is news again.
    sign_in(client, app, artisan["phone"], DEVICE)
    assert len(outbox_events(app, "onboarding.artisan.device_signed_in")) == 3

    # Another artisan: not found. An operator: yes. A marketplace: no.
    other = sign_in(client, app, someone_else["phone"], "device-of-someone-else")
    assert client.get(f"/v1/artisans/{artisan['id']}/devices", headers=bearer(other)).status_code == 404
    stolen = client.delete(f"/v1/artisans/{artisan['id']}/devices/{OTHER_DEVICE}", headers=bearer(other))
    assert stolen.status_code == 404
    operator = {"Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_ops")}
    assert client.get(f"/v1/artisans/{artisan['id']}/devices", headers=operator).status_code == 200
    assert (
        client.delete(f"/v1/artisans/{artisan['id']}/devices/{OTHER_DEVICE}", headers=operator).status_code
        == 204
    )
    assert refresh(client, phone_b["refresh_token"], OTHER_DEVICE).status_code == 401
    assert (
        client.get(f"/v1/artisans/{artisan['id']}/devices", headers=marketplace_headers()).status_code == 403
    )
    missing = client.delete(f"/v1/artisans/{artisan['id']}/devices/never-seen-device", headers=operator)
    assert missing.status_code == 404


# --- KYC ends sessions --------------------------------------------------------------------------------


def test_a_disqualifying_kyc_rejection_ends_every_session(client, app, marketplace_headers, issue_token):
    artisan = register(client, marketplace_headers, full_name="Khadija Amraoui")  # a screening hit
    assert artisan["screening_status"] == "hit"
    tokens = [sign_in(client, app, artisan["phone"], device) for device in (DEVICE, OTHER_DEVICE)]
    officer = {"Authorization": "Bearer " + issue_token(Role.COMPLIANCE, client_id="cli_officer")}
    [review] = client.get(
        "/v1/kyc-reviews", query_string={"artisan_id": artisan["id"]}, headers=officer
    ).json["data"]
    decided = client.post(
        f"/v1/kyc-reviews/{review['id']}/decision",
        json={"decision": "reject", "reason_code": "sanctions_match", "note": "Confirmed."},
        headers={**officer, "Idempotency-Key": "reject-1"},
    )
    assert decided.status_code == 200, decided.json
    for session_tokens, device in zip(tokens, (DEVICE, OTHER_DEVICE), strict=True):
        ended = refresh(client, session_tokens["refresh_token"], device)
        assert ended.status_code == 401 and ended.json["code"] == "refresh_token_revoked"
    # A rejected artisan gets no new code (and the answer looks like any other).
    sent_before = len(sms_to(app, artisan["phone"]))
    assert start(client, artisan["phone"]).status_code == 202
    assert len(sms_to(app, artisan["phone"])) == sent_before


def test_a_sanctions_hit_on_rescreening_ends_every_session(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers, full_name="Youssef Benali Chraibi")
    bystander = register(client, marketplace_headers, full_name="Amina Tazi")
    tokens = sign_in(client, app, artisan["phone"])
    bystander_tokens = sign_in(client, app, bystander["phone"], OTHER_DEVICE)
    new_list = (ROOT / SAMPLE_LIST).read_text(encoding="utf-8")
    new_list = new_list.replace(
        'dateGenerated="2026-11-01T00:00:00.000Z"', 'dateGenerated="2026-11-20T00:00:00.000Z"'
    )
    addition = """<INDIVIDUAL><DATAID>9999</DATAID><VERSIONNUM>1</VERSIONNUM><FIRST_NAME>YOUSSEF</FIRST_NAME>
      <SECOND_NAME>BENALI</SECOND_NAME><THIRD_NAME>CHRAIBI</THIRD_NAME><UN_LIST_TYPE>FICTIONAL-TEST</UN_LIST_TYPE>
      <REFERENCE_NUMBER>ZZi.099</REFERENCE_NUMBER><LISTED_ON>2026-11-20</LISTED_ON></INDIVIDUAL>"""
    new_list = new_list.replace("<INDIVIDUALS>", "<INDIVIDUALS>" + addition, 1)
    context = app.extensions["hirfa"]
    load_list(context.uow_factory(), new_list.encode(), source="update")
    report = rescreen_all(context.uow_factory, context.screening, threshold=85.0, tiers=context.tiers)
    assert report.hits == 1
    ended = refresh(client, tokens["refresh_token"])
    assert ended.status_code == 401 and ended.json["code"] == "refresh_token_revoked"
    assert refresh(client, bystander_tokens["refresh_token"], OTHER_DEVICE).status_code == 200


# --- what an artisan token reaches in onboarding ----------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"jpeg body " * 50


def test_an_artisan_token_reaches_its_own_onboarding_data_only(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers, full_name="Youssef Amrani")
    other = register(client, marketplace_headers, full_name="Amina Tazi")
    headers = bearer(sign_in(client, app, artisan["phone"]))
    own, others = f"/v1/artisans/{artisan['id']}", f"/v1/artisans/{other['id']}"

    profile = client.get(own, headers=headers)
    assert profile.status_code == 200 and profile.json["id"] == artisan["id"]
    kyc = client.get(f"{own}/kyc", headers=headers)
    assert kyc.status_code == 200 and "requirements" in kyc.json
    uploaded = client.post(
        f"{own}/documents",
        data={"kind": "id_front", "file": (io.BytesIO(JPEG), "front.jpg")},
        headers={**headers, "Idempotency-Key": "doc-front"},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.json
    assert client.get(f"{own}/documents", headers=headers).status_code == 200
    assert client.get(f"{own}/bank-accounts", headers=headers).json == {"data": []}

    for path in (
        others,
        f"{others}/kyc",
        f"{others}/documents",
        f"{others}/bank-accounts",
        f"{others}/devices",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, (path, response.json)
    upload_elsewhere = client.post(
        f"{others}/documents",
        data={"kind": "id_front", "file": (io.BytesIO(JPEG), "front.jpg")},
        headers={**headers, "Idempotency-Key": "doc-elsewhere"},
        content_type="multipart/form-data",
    )
    assert upload_elsewhere.status_code == 404
    link_elsewhere = client.post(
        f"{others}/bank-accounts",
        json={"mode": "link", "holder_name": "Amina Tazi", "rib": make_rib("007", "780", "0000000000000077")},
        headers={**headers, "Idempotency-Key": "link-elsewhere"},
    )
    assert link_elsewhere.status_code == 404
    # Nothing marketplace- or compliance-only.
    assert client.get("/v1/artisans", headers=headers).status_code == 403
    assert (
        client.post(
            "/v1/artisans", json=artisan_body(), headers={**headers, "Idempotency-Key": "r"}
        ).status_code
        == 403
    )
    assert client.get("/v1/kyc-reviews", headers=headers).status_code == 403


def test_an_artisan_links_their_own_bank_accounts_and_picks_the_default(client, app, marketplace_headers):
    artisan = register(client, marketplace_headers, full_name="Youssef Amrani")
    other = register(client, marketplace_headers, full_name="Amina Tazi")
    with app.extensions["hirfa"].session_factory() as session:  # linking needs tier 1
        for artisan_id in (artisan["id"], other["id"]):
            session.get(Artisan, artisan_id).kyc_tier = 1
        session.commit()
    headers = bearer(sign_in(client, app, artisan["phone"]))
    base = f"/v1/artisans/{artisan['id']}/bank-accounts"
    first_rib, second_rib = (
        make_rib("007", "780", "0000000000001234"),
        make_rib("001", "810", "0000000000005678"),
    )
    ids = []
    for rib, key in ((first_rib, "link-1"), (second_rib, "link-2")):
        linked = client.post(
            base,
            json={"mode": "link", "holder_name": "Youssef Amrani", "rib": rib},
            headers={**headers, "Idempotency-Key": key},
        )
        assert linked.status_code == 201, linked.json
        ids.append(linked.json["id"])
    made_default = client.post(f"{base}/{ids[1]}/default", headers=headers)
    assert made_default.status_code == 200 and made_default.json["is_default"] is True
    listed = client.get(base, headers=headers).json["data"]
    assert {(a["id"], a["is_default"]) for a in listed} == {(ids[0], False), (ids[1], True)}
    assert client.get(f"{base}/{ids[0]}", headers=headers).status_code == 200
    # Another artisan's account, through either artisan's path: not found.
    elsewhere = f"/v1/artisans/{other['id']}/bank-accounts"
    assert client.get(elsewhere, headers=headers).status_code == 404
    assert client.post(f"{elsewhere}/{ids[0]}/default", headers=headers).status_code == 404


def test_behind_the_ingress_each_artisan_network_has_its_own_sign_in_budget(client, app):
    context = app.extensions["hirfa"]
    context.config = dataclasses.replace(context.config, trust_forwarded_for=True)
    ingress = "10.0.0.9"

    def start_via_ingress(forwarded: str):
        return client.post(
            "/v1/artisan-sessions",
            json={"phone": random_phone()},
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": ingress},
        )

    for _ in range(MAX_STARTS_PER_IP):
        assert start_via_ingress("192.0.2.60").status_code == 202
    # The last hop is the one the ingress added: what a client writes before it does not count.
    limited = start_via_ingress("198.51.100.1, 192.0.2.60")
    assert limited.status_code == 429 and limited.json["code"] == "sign_in_ip_limit"
    assert start_via_ingress("192.0.2.60, 192.0.2.61").status_code == 202


def test_a_failing_sms_provider_is_logged_and_a_refused_send_frees_the_number(
    app, marketplace_headers, client, caplog
):
    artisan = register(client, marketplace_headers)
    context = app.extensions["hirfa"]

    class BrokenProvider:
        def send(self, to: str, text: str) -> None:
            raise RuntimeError("provider client bug")

    class RefusingProvider:
        def send(self, to: str, text: str) -> None:
            raise SmsDeliveryError("provider down")

    with caplog.at_level("WARNING"):
        broken = start_sign_in(
            context.uow_factory,
            artisan["phone"],
            client_ip=None,
            policy=context.sign_in,
            sms=BrokenProvider(),
        )
        refused = start_sign_in(
            context.uow_factory,
            artisan["phone"],
            client_ip=None,
            policy=context.sign_in,
            sms=RefusingProvider(),
        )
        wait_for_pending_sends(timeout=10)
    assert broken["status"] == refused["status"] == "pending"
    assert "sign-in SMS failed unexpectedly" in caplog.text
    assert "sign-in SMS delivery failed" in caplog.text
    with context.uow_factory() as uow:
        assert uow.session.get(ArtisanSignIn, refused["id"]).status == "send_failed"


def test_codes_waiting_for_a_slow_provider_share_a_few_sender_threads(app, marketplace_headers, client):
    artisans = [register(client, marketplace_headers) for _ in range(SMS_SENDERS + 3)]
    context = app.extensions["hirfa"]
    provider_answers = threading.Event()

    class SlowProvider:
        def send(self, to: str, text: str) -> None:
            provider_answers.wait(timeout=10)

    try:
        for artisan in artisans:
            start_sign_in(
                context.uow_factory,
                artisan["phone"],
                client_ip=None,
                policy=context.sign_in,
                sms=SlowProvider(),
            )
        senders = [thread for thread in threading.enumerate() if thread.name.startswith("sign-in-sms")]
        assert 0 < len(senders) <= SMS_SENDERS
    finally:
        provider_answers.set()
        wait_for_pending_sends(timeout=10)


def _read_missing_once(session, monkeypatch, insert_meanwhile) -> None:
    """The session's next get() finds nothing, as it would just before a concurrent request
    commits the same row (which insert_meanwhile does)."""
    real_get = session.get

    def get(*args, **kwargs):
        monkeypatch.setattr(session, "get", real_get)
        insert_meanwhile()
        return None

    monkeypatch.setattr(session, "get", get)


def test_a_wrong_code_counted_at_the_same_moment_elsewhere_is_added_not_a_crash(app, monkeypatch):
    context = app.extensions["hirfa"]
    phone = normalise_moroccan_mobile(random_phone())
    now = utcnow()

    def insert_meanwhile():
        with context.uow_factory() as other:
            other.session.add(SignInLockout(phone=phone, failed_codes=1, window_started_at=now))
            other.commit()

    with context.uow_factory() as uow:
        _read_missing_once(uow.session, monkeypatch, insert_meanwhile)
        _count_failure(uow.session, phone, now, context.sign_in.lockout)
        uow.commit()
    with context.uow_factory() as uow:
        assert uow.session.get(SignInLockout, phone).failed_codes == 2


def test_a_device_recorded_at_the_same_moment_elsewhere_is_updated_not_a_crash(
    client, app, marketplace_headers, monkeypatch
):
    context = app.extensions["hirfa"]
    artisan = register(client, marketplace_headers)
    seen, now = utcnow() - dt.timedelta(seconds=5), utcnow()

    def insert_meanwhile():
        with context.uow_factory() as other:
            other.session.add(
                ArtisanDevice(
                    artisan_id=artisan["id"],
                    device_id=DEVICE,
                    first_signed_in_at=seen,
                    last_signed_in_at=seen,
                )
            )
            other.commit()

    with context.uow_factory() as uow:
        _read_missing_once(uow.session, monkeypatch, insert_meanwhile)
        _record_device(uow, artisan["id"], DEVICE, now)
        uow.commit()
    with context.uow_factory() as uow:
        device = uow.session.get(ArtisanDevice, (artisan["id"], DEVICE))
        assert device.first_signed_in_at == seen and device.last_signed_in_at == now
