"""KYC over HTTP: tiers 0 → 3, OTP limits, encrypted documents, screening, four-eyes reviews,
downgrades and the audit log. Bank accounts have their own module."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import (
    Artisan,
    KycDocument,
    KycReview,
    OutboxMessage,
    PhoneVerification,
)
from services.onboarding.adapters.sms import FileSmsOutbox
from services.onboarding.service_layer.documents import rewrap_all_documents
from services.onboarding.service_layer.screening import load_list, rescreen_all
from shared.auth.scopes import Role
from tests.integration.conftest import OTHER_MARKETPLACE
from tests.support import artisan_body

SAMPLE_LIST = "services/onboarding/screening_lists/un_consolidated_sample.xml"
OFFICER_A = "cli_officer_a"
OFFICER_B = "cli_officer_b"

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"jpeg body " * 50
PNG = b"\x89PNG\r\n\x1a\n" + b"png body " * 50
PDF = b"%PDF-1.7\n" + b"selfie as pdf " * 50


@pytest.fixture
def app(onboarding_app):
    from tests.support import ROOT

    context = onboarding_app.extensions["hirfa"]
    load_list(context.uow_factory(), (ROOT / SAMPLE_LIST).read_bytes(), source="sample")
    return onboarding_app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def officer(issue_token):
    def headers(client_id: str = OFFICER_A, idempotency_key: str | None = None) -> dict:
        h = {"Authorization": "Bearer " + issue_token(Role.COMPLIANCE, client_id=client_id)}
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        return h

    return headers


def sms_outbox(app) -> FileSmsOutbox:
    return app.extensions["hirfa"].sms


def outbox_events(app, event_type: str | None = None) -> list[dict]:
    with app.extensions["hirfa"].session_factory() as session:
        query = sa.select(OutboxMessage).order_by(OutboxMessage.seq)
        if event_type:
            query = query.where(OutboxMessage.event_type == event_type)
        return [json.loads(row.payload) for row in session.scalars(query)]


def db_update(app, model, where, **values) -> None:
    with app.extensions["hirfa"].session_factory() as session:
        session.execute(sa.update(model).where(where).values(**values))
        session.commit()


class Kyc:
    """Drives one artisan through the KYC steps over HTTP."""

    def __init__(self, client, app, headers, **body) -> None:
        self.client, self.app, self.headers = client, app, headers
        self.body = artisan_body(**body)
        response = client.post("/v1/artisans", json=self.body, headers=headers(f"reg-{self.body['cin']}"))
        assert response.status_code == 201, response.json
        self.artisan = response.json
        self.id = self.artisan["id"]
        self.sends = 0

    def view(self, headers=None) -> dict:
        response = self.client.get(f"/v1/artisans/{self.id}/kyc", headers=headers or self.headers())
        assert response.status_code == 200, response.json
        return response.json

    def send_code(self):
        self.sends += 1
        return self.client.post(
            f"/v1/artisans/{self.id}/phone-verification", headers=self.headers(f"otp-{self.id}-{self.sends}")
        )

    def last_code(self) -> str:
        messages = sms_outbox(self.app).messages(to=self.artisan["phone"])
        return re.search(r"\b(\d{6})\b", messages[-1]["text"]).group(1)

    def confirm(self, code: str):
        return self.client.post(
            f"/v1/artisans/{self.id}/phone-verification/confirm", json={"code": code}, headers=self.headers()
        )

    def verify_phone(self) -> None:
        assert self.send_code().status_code == 201
        response = self.confirm(self.last_code())
        assert response.status_code == 200, response.json

    def upload(self, kind: str, data: bytes, headers: dict | None = None, filename: str = "scan.bin"):
        self.sends += 1
        return self.client.post(
            f"/v1/artisans/{self.id}/documents",
            data={"kind": kind, "file": (io.BytesIO(data), filename, "application/octet-stream")},
            headers=headers or self.headers(f"doc-{self.id}-{self.sends}"),
            content_type="multipart/form-data",
        )

    def upload_all(self) -> None:
        for kind, data in (("id_front", JPEG), ("id_back", PNG), ("selfie", PDF)):
            response = self.upload(kind, data)
            assert response.status_code == 201, response.json


def requirement_codes(view: dict) -> list[str]:
    return [r["code"] for r in view["requirements"]]


def open_reviews(client, officer, **filters) -> list[dict]:
    response = client.get("/v1/kyc-reviews", query_string=filters, headers=officer())
    assert response.status_code == 200, response.json
    return response.json["data"]


def decide(
    client, officer_headers, review_id, decision="approve", reason="documents_verified", note="Checked."
):
    return client.post(
        f"/v1/kyc-reviews/{review_id}/decision",
        json={"decision": decision, "reason_code": reason, "note": note},
        headers=officer_headers,
    )


# --- tiers 0 → 3 -------------------------------------------------------------------------------


def test_new_artisan_is_tier_0_and_needs_phone_verification(client, app, marketplace_headers):
    view = Kyc(client, app, marketplace_headers).view()
    assert view["tier"] == 0 and view["status"] == "active"
    assert view["limits"] == {"balance_cap": {"amount": 0, "currency": "MAD"}}
    assert view["next_tier_limits"] == {"balance_cap": {"amount": 20000, "currency": "MAD"}}
    assert view["requirements"] == [{"code": "phone_verification", "status": "missing"}]
    assert view["screening_status"] == "clear" and view["history"] == []


def test_whole_ladder_with_history_and_events(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    view = kyc.view()
    assert view["tier"] == 1
    assert requirement_codes(view) == ["id_document_front", "id_document_back", "selfie"]

    kyc.upload_all()
    view = kyc.view()
    assert view["tier"] == 2 and view["requirements"] == [{"code": "manual_review", "status": "in_review"}]

    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    assert review["kind"] == "tier_upgrade" and review["requested_tier"] == 3
    assert review["submitted_by"] == "cli_test_marketplace"
    decided = decide(client, officer(OFFICER_A, "decide-1"), review["id"])
    assert decided.status_code == 200 and decided.json["status"] == "approved"

    view = kyc.view()
    assert view["tier"] == 3 and view["requirements"] == [] and view["next_tier"] is None
    assert view["limits"]["balance_cap"]["amount"] == 2000000
    assert [(h["from_tier"], h["to_tier"], h["reason_code"], h["actor"]) for h in view["history"]] == [
        (0, 1, "phone_verified", "cli_test_marketplace"),
        (1, 2, "automated_checks_passed", "cli_test_marketplace"),
        (2, 3, "compliance_approved", OFFICER_A),
    ]
    events = [e for e in outbox_events(app, "onboarding.artisan.kyc_tier_changed") if e["subject"] == kyc.id]
    assert [
        (e["data"]["kyc_tier"], e["data"]["tier_cap"]["amount"], e["data"]["kyc_version"]) for e in events
    ] == [
        (1, 20000, 1),
        (2, 500000, 2),
        (3, 2000000, 3),
    ]
    assert all(e["data"]["direction"] == "up" for e in events)
    # The artisan's record says the same.
    assert client.get(f"/v1/artisans/{kyc.id}", headers=marketplace_headers()).json["kyc_tier"] == 3


def test_documents_before_phone_verification_climb_two_tiers_at_once(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.upload_all()
    assert kyc.view()["tier"] == 0
    kyc.verify_phone()
    view = kyc.view()
    assert view["tier"] == 2
    assert [(h["from_tier"], h["to_tier"]) for h in view["history"]] == [(0, 1), (1, 2)]


def test_another_marketplace_cannot_see_or_act_on_the_kyc(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    other = marketplace_headers(client_id=OTHER_MARKETPLACE)
    assert client.get(f"/v1/artisans/{kyc.id}/kyc", headers=other).status_code == 404
    sent = client.post(
        f"/v1/artisans/{kyc.id}/phone-verification", headers={**other, "Idempotency-Key": "x1"}
    )
    assert sent.status_code == 404 and sent.json["code"] == "resource_not_found"
    uploaded = kyc.upload("id_front", JPEG, headers={**other, "Idempotency-Key": "x2"})
    assert uploaded.status_code == 404


# --- phone verification ------------------------------------------------------------------------


def test_sms_is_in_the_artisans_language_and_only_a_hash_is_stored(client, app, marketplace_headers):
    french = Kyc(client, app, marketplace_headers)
    arabic = Kyc(client, app, marketplace_headers, preferred_language="ar")
    for kyc in (french, arabic):
        response = kyc.send_code()
        assert response.status_code == 201
        assert response.json["status"] == "pending" and "•" in response.json["phone"]
    french_text = sms_outbox(app).messages(to=french.artisan["phone"])[-1]["text"]
    arabic_text = sms_outbox(app).messages(to=arabic.artisan["phone"])[-1]["text"]
    assert "code de vérification" in french_text
    assert "رمز التحقق" in arabic_text
    code = french.last_code()
    with app.extensions["hirfa"].session_factory() as session:
        row = session.scalar(sa.select(PhoneVerification).where(PhoneVerification.artisan_id == french.id))
        assert code not in row.code_hash and row.code_hash != hashlib.sha256(code.encode()).hexdigest()
        assert (row.expires_at - row.created_at) == dt.timedelta(minutes=5)


def test_five_wrong_codes_lock_the_code(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.send_code()
    right = kyc.last_code()
    wrong = "000000" if right != "000000" else "111111"
    for remaining in (4, 3, 2, 1, 0):
        response = kyc.confirm(wrong)
        assert response.status_code == 422
        assert (response.json["code"], response.json["param"]) == ("otp_incorrect", "code")
        assert response.json["attempts_remaining"] == remaining
    locked = kyc.confirm(right)  # even the right code is refused now
    assert locked.status_code == 429 and locked.json["code"] == "otp_attempts_exceeded"
    assert int(locked.headers["Retry-After"]) >= 1
    assert kyc.view()["tier"] == 0
    # A new code works.
    kyc.send_code()
    assert kyc.confirm(kyc.last_code()).status_code == 200
    assert kyc.view()["tier"] == 1


def test_three_sends_per_hour(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    for _ in range(3):
        assert kyc.send_code().status_code == 201
    refused = kyc.send_code()
    assert refused.status_code == 429 and refused.json["code"] == "otp_send_limit"
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert len(sms_outbox(app).messages(to=kyc.artisan["phone"])) == 3
    # Only the newest code is valid.
    assert kyc.confirm(kyc.last_code()).status_code == 200


def test_sends_older_than_an_hour_no_longer_count(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    for _ in range(3):
        kyc.send_code()
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61)
    db_update(app, PhoneVerification, PhoneVerification.artisan_id == kyc.id, created_at=an_hour_ago)
    assert kyc.send_code().status_code == 201


def test_expired_code_is_refused(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.send_code()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db_update(app, PhoneVerification, PhoneVerification.artisan_id == kyc.id, expires_at=past)
    response = kyc.confirm(kyc.last_code())
    assert response.status_code == 422 and response.json["code"] == "otp_expired"


def test_otp_edge_cases(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    nothing_sent = kyc.confirm("123456")
    assert nothing_sent.status_code == 409 and nothing_sent.json["code"] == "no_pending_verification"
    malformed = kyc.confirm("12ab56")
    assert malformed.status_code == 422 and malformed.json["errors"][0]["param"] == "code"
    kyc.verify_phone()
    again = kyc.send_code()
    assert again.status_code == 409 and again.json["code"] == "phone_already_verified"


# --- documents -----------------------------------------------------------------------------------


def test_documents_are_sniffed_hashed_and_encrypted_at_rest(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    uploaded = kyc.upload("id_front", JPEG, filename="front.png")
    assert uploaded.status_code == 201
    assert uploaded.json["content_type"] == "image/jpeg"  # from the bytes, not the name
    assert uploaded.json["sha256"] == hashlib.sha256(JPEG).hexdigest()
    with app.extensions["hirfa"].session_factory() as session:
        stored = session.get(KycDocument, uploaded.json["id"])
        assert JPEG not in stored.ciphertext and b"jpeg body" not in stored.ciphertext
        assert stored.key_id.startswith("mk_")

    assert (
        client.get(
            f"/v1/artisans/{kyc.id}/documents/{uploaded.json['id']}/content", headers=marketplace_headers()
        ).status_code
        == 403
    )
    downloaded = client.get(
        f"/v1/artisans/{kyc.id}/documents/{uploaded.json['id']}/content", headers=officer()
    )
    assert downloaded.status_code == 200 and downloaded.data == JPEG
    assert downloaded.headers["Content-Type"] == "image/jpeg"
    assert downloaded.headers["Cache-Control"] == "no-store"
    audit = client.get(f"/v1/artisans/{kyc.id}/kyc/audit-log", headers=officer()).json["data"]
    assert [(a["action"], a["actor"]) for a in audit if a["action"] == "document.downloaded"] == [
        ("document.downloaded", OFFICER_A)
    ]
    listed = client.get(f"/v1/artisans/{kyc.id}/documents", headers=marketplace_headers()).json["data"]
    assert [d["id"] for d in listed] == [uploaded.json["id"]] and "ciphertext" not in listed[0]


@pytest.mark.parametrize(
    ("kind", "data", "code", "param"),
    [
        ("id_front", b"GIF89a" + b"x" * 100, "unsupported_document_type", "file"),
        ("id_front", b"<html><body>hi</body></html>", "unsupported_document_type", "file"),
        ("id_front", b"", "empty_document", "file"),
        ("passport", JPEG, "validation_error", "kind"),
    ],
)
def test_document_refusals(client, app, marketplace_headers, kind, data, code, param):
    kyc = Kyc(client, app, marketplace_headers)
    response = kyc.upload(kind, data, filename="photo.jpg")
    assert response.status_code == 422, response.json
    assert response.json["code"] == code
    assert param in {response.json.get("param"), *(e.get("param") for e in response.json.get("errors", []))}
    with app.extensions["hirfa"].session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(KycDocument)) == 0


def test_document_size_limit(client, app, marketplace_headers):
    kyc = Kyc(client, app, marketplace_headers)
    limit = app.extensions["hirfa"].config.max_document_bytes
    just_over = kyc.upload("id_front", JPEG[:4] + b"\x00" * (limit - 3))
    assert just_over.status_code == 422 and just_over.json["code"] == "document_too_large"
    far_over = kyc.upload("id_front", JPEG[:4] + b"\x00" * (limit + 200_000))
    assert far_over.status_code == 413
    at_limit = kyc.upload("id_front", JPEG[:4] + b"\x00" * (limit - 4))
    assert at_limit.status_code == 201


def test_master_key_rotation_rewraps_without_reencrypting(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    document_id = kyc.upload("id_back", PNG).json["id"]
    context = app.extensions["hirfa"]
    cipher = context.cipher
    with context.session_factory() as session:
        before = session.get(KycDocument, document_id)
        old_kid, old_ciphertext = before.key_id, before.ciphertext
    new_kid = cipher.keyring.generate()
    assert rewrap_all_documents(context.uow_factory, cipher) == 1
    cipher.keyring.retire(old_kid)
    with context.session_factory() as session:
        after = session.get(KycDocument, document_id)
        assert after.key_id == new_kid and after.ciphertext == old_ciphertext
    downloaded = client.get(f"/v1/artisans/{kyc.id}/documents/{document_id}/content", headers=officer())
    assert downloaded.status_code == 200 and downloaded.data == PNG
    assert rewrap_all_documents(context.uow_factory, cipher) == 0  # nothing left to re-wrap


# --- four-eyes and rejections ----------------------------------------------------------------------


def test_four_eyes_the_submitter_cannot_decide(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload("id_front", JPEG)
    kyc.upload("id_back", PNG)
    # Officer A uploads the last document at a branch (assisted onboarding): A submitted the case.
    response = kyc.upload("selfie", PDF, headers=officer(OFFICER_A, "branch-selfie"))
    assert response.status_code == 201
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    assert review["submitted_by"] == OFFICER_A

    refused = decide(client, officer(OFFICER_A, "a-decides"), review["id"])
    assert refused.status_code == 403 and refused.json["code"] == "four_eyes_violation"
    assert kyc.view()["tier"] == 2
    assert decide(client, officer(OFFICER_B, "b-decides"), review["id"]).status_code == 200
    assert kyc.view()["tier"] == 3
    again = decide(client, officer(OFFICER_B, "b-again"), review["id"], decision="reject", reason="other")
    assert again.status_code == 409 and again.json["code"] == "review_already_decided"


def test_decision_validation(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload_all()
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    wrong_reason = decide(
        client, officer(idempotency_key="v1"), review["id"], decision="approve", reason="document_forged"
    )
    assert wrong_reason.status_code == 422 and wrong_reason.json["param"] == "reason_code"
    no_note = client.post(
        f"/v1/kyc-reviews/{review['id']}/decision",
        json={"decision": "approve", "reason_code": "documents_verified"},
        headers=officer(idempotency_key="v2"),
    )
    assert no_note.status_code == 422 and no_note.json["errors"][0]["param"] == "note"
    marketplace = client.get("/v1/kyc-reviews", headers=marketplace_headers())
    assert marketplace.status_code == 403 and marketplace.json["code"] == "insufficient_scope"
    missing = decide(client, officer(idempotency_key="v3"), "rev_01JD8Z6W5Q0T2C7S9K3M4N5P6R")
    assert missing.status_code == 404


def test_remediable_rejection_keeps_the_tier_and_new_documents_reopen_review(
    client, app, marketplace_headers, officer
):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload_all()
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    rejected = decide(
        client, officer(idempotency_key="r1"), review["id"], decision="reject", reason="document_unreadable"
    )
    assert rejected.status_code == 200
    view = kyc.view()
    assert view["tier"] == 2 and view["status"] == "active"
    assert view["requirements"] == [{"code": "manual_review", "status": "missing"}]
    [event] = [e for e in outbox_events(app, "onboarding.artisan.kyc_rejected") if e["subject"] == kyc.id]
    assert event["data"]["reason_code"] == "document_unreadable" and event["data"]["kyc_status"] == "active"
    kyc.upload("id_front", JPEG + b"sharper")
    [again] = open_reviews(client, officer, artisan_id=kyc.id)
    assert again["id"] != review["id"] and again["kind"] == "tier_upgrade"


def test_disqualifying_rejection_closes_the_kyc(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload_all()
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    decide(
        client,
        officer(idempotency_key="f1"),
        review["id"],
        decision="reject",
        reason="document_forged",
        note="Hologram missing.",
    )
    view = kyc.view()
    assert view["status"] == "rejected" and view["tier"] == 0 and view["requirements"] == []
    assert view["history"][-1]["reason_code"] == "document_forged"
    tier_events = [
        e for e in outbox_events(app, "onboarding.artisan.kyc_tier_changed") if e["subject"] == kyc.id
    ]
    last = tier_events[-1]["data"]
    assert (last["kyc_tier"], last["direction"], last["kyc_status"]) == (0, "down", "rejected")
    assert [e["data"]["kyc_status"] for e in outbox_events(app, "onboarding.artisan.kyc_rejected")] == [
        "rejected"
    ]
    blocked = kyc.upload("id_front", JPEG)
    assert blocked.status_code == 409 and blocked.json["code"] == "artisan_rejected"
    audit = client.get(f"/v1/artisans/{kyc.id}/kyc/audit-log", headers=officer()).json["data"]
    rejection = [a for a in audit if a["action"] == "review.rejected"]
    assert rejection[0]["actor"] == OFFICER_A and rejection[0]["note"] == "Hologram missing."


def test_downgrade_for_a_forged_document(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload_all()
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    decide(client, officer(idempotency_key="d0"), review["id"])
    front = next(
        d
        for d in client.get(f"/v1/artisans/{kyc.id}/documents", headers=officer()).json["data"]
        if d["kind"] == "id_front"
    )
    response = client.post(
        f"/v1/artisans/{kyc.id}/kyc/downgrades",
        json={
            "tier": 1,
            "reason_code": "document_forged",
            "note": "Found forged on re-check.",
            "document_ids": [front["id"]],
        },
        headers=officer(OFFICER_B, "down-1"),
    )
    assert response.status_code == 201 and response.json["tier"] == 1
    view = kyc.view()
    assert view["tier"] == 1 and requirement_codes(view) == ["id_document_front"]
    last = outbox_events(app, "onboarding.artisan.kyc_tier_changed")[-1]["data"]
    assert (last["previous_tier"], last["kyc_tier"], last["direction"], last["reason_code"]) == (
        3,
        1,
        "down",
        "document_forged",
    )
    not_lower = client.post(
        f"/v1/artisans/{kyc.id}/kyc/downgrades",
        json={"tier": 2, "reason_code": "other", "note": "Up is not down."},
        headers=officer(OFFICER_B, "down-2"),
    )
    assert not_lower.status_code == 422 and not_lower.json["param"] == "tier"


# --- screening ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Khadija Amraoui", "Amraoui Khadija", "خديجة العمراوي"])
def test_screening_hit_goes_to_review_and_holds_the_artisan(client, app, marketplace_headers, officer, name):
    kyc = Kyc(client, app, marketplace_headers, full_name=name)
    assert kyc.artisan["screening_status"] == "hit"
    [review] = open_reviews(client, officer, artisan_id=kyc.id)
    assert review["kind"] == "screening_hit"
    [match] = review["details"]["matches"]
    assert match["reference"] == "ZZi.004" and match["score"] >= 85
    kyc.verify_phone()  # a hit earns nothing until compliance has looked
    view = kyc.view()
    assert view["tier"] == 0
    assert view["requirements"] == [{"code": "screening_clear", "status": "in_review"}]
    # Cleared as a false positive, the artisan gets every tier the facts earn.
    assert (
        decide(
            client, officer(idempotency_key=f"fp-{kyc.id}"), review["id"], reason="false_positive"
        ).status_code
        == 200
    )
    view = kyc.view()
    assert view["tier"] == 1 and view["screening_status"] == "clear"


def test_a_different_name_is_not_a_hit(client, app, marketplace_headers, officer):
    kyc = Kyc(client, app, marketplace_headers, full_name="Amina Tazi")
    assert kyc.artisan["screening_status"] == "clear"
    assert open_reviews(client, officer, artisan_id=kyc.id, kind="screening_hit") == []


def test_rescreen_against_a_new_list_demotes_hits(client, app, marketplace_headers, officer):
    from tests.support import ROOT

    kyc = Kyc(client, app, marketplace_headers, full_name="Youssef Benali Chraibi")
    bystander = Kyc(client, app, marketplace_headers, full_name="Amina Tazi")
    for artisan in (kyc, bystander):
        artisan.verify_phone()
        artisan.upload_all()
        assert artisan.view()["tier"] == 2
    # A new list version names the artisan (transliterated in Arabic script in the list).
    new_list = (ROOT / SAMPLE_LIST).read_text(encoding="utf-8")
    new_list = new_list.replace(
        'dateGenerated="2026-11-01T00:00:00.000Z"', 'dateGenerated="2026-11-20T00:00:00.000Z"'
    )
    addition = """<INDIVIDUAL><DATAID>9999</DATAID><VERSIONNUM>1</VERSIONNUM><FIRST_NAME>YOUSSEF</FIRST_NAME>
      <SECOND_NAME>BENALI</SECOND_NAME><THIRD_NAME>CHRAIBI</THIRD_NAME><UN_LIST_TYPE>FICTIONAL-TEST</UN_LIST_TYPE>
      <REFERENCE_NUMBER>ZZi.099</REFERENCE_NUMBER><LISTED_ON>2026-11-20</LISTED_ON>
      <NAME_ORIGINAL_SCRIPT>يوسف بنعلي الشرايبي</NAME_ORIGINAL_SCRIPT></INDIVIDUAL>"""
    new_list = new_list.replace("<INDIVIDUALS>", "<INDIVIDUALS>" + addition, 1)
    context = app.extensions["hirfa"]
    version, is_new = load_list(context.uow_factory(), new_list.encode(), source="update")
    assert is_new and version == "2026-11-20T00:00:00.000Z"
    report = rescreen_all(context.uow_factory, context.screening, threshold=85.0, tiers=context.tiers)
    assert report.list_version == version and report.hits == 1 and report.demoted == 1

    view = kyc.view()
    assert view["tier"] == 0 and view["screening_status"] == "hit"
    assert view["history"][-1]["reason_code"] == "screening_hit"
    assert bystander.view()["tier"] == 2
    down = [e for e in outbox_events(app, "onboarding.artisan.kyc_tier_changed") if e["subject"] == kyc.id][
        -1
    ]
    assert (down["data"]["kyc_tier"], down["data"]["direction"], down["data"]["tier_cap"]["amount"]) == (
        0,
        "down",
        0,
    )
    [review] = open_reviews(client, officer, artisan_id=kyc.id, kind="screening_hit")
    assert review["details"]["matches"][0]["reference"] == "ZZi.099"
    # The pending tier-3 case is closed: tier 3 will need a fresh review after clearance.
    assert open_reviews(client, officer, artisan_id=kyc.id, kind="tier_upgrade") == []

    # Cleared as a false positive: tiers 1 and 2 come back, and the same entry is not raised again.
    decide(client, officer(idempotency_key="rs-fp"), review["id"], reason="false_positive")
    assert kyc.view()["tier"] == 2
    again = rescreen_all(context.uow_factory, context.screening, threshold=85.0, tiers=context.tiers)
    assert again.hits == 0 and kyc.view()["tier"] == 2


# --- registration details ----------------------------------------------------------------------------


def _ice_with_key(first_13: str) -> str:
    key = 97 - (int(first_13) * 100) % 97
    return f"{first_13}{key:02d}"


def test_ice_checksum_warns_but_does_not_reject(client, app, marketplace_headers):
    good = _ice_with_key("0012345670000")
    assert int(good) % 97 == 0
    ok = client.post(
        "/v1/artisans", json=artisan_body(cooperative_ice=good), headers=marketplace_headers("ice1")
    )
    assert ok.status_code == 201 and ok.json["cooperative_ice"] == good and ok.json["warnings"] == []
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    warned = client.post(
        "/v1/artisans", json=artisan_body(cooperative_ice=bad), headers=marketplace_headers("ice2")
    )
    assert warned.status_code == 201 and warned.json["warnings"] == ["ice_checksum_mismatch"]
    short = client.post(
        "/v1/artisans",
        json=artisan_body(cooperative_ice="12345678901234X"),
        headers=marketplace_headers("ice3"),
    )
    assert short.status_code == 422 and (short.json["code"], short.json["param"]) == (
        "invalid_ice",
        "cooperative_ice",
    )


def test_every_rule_broken_at_once_is_listed(client, marketplace_headers):
    body = artisan_body(phone="0522123456", cin="123456", date_of_birth="2015-01-01", cooperative_ice="123")
    response = client.post("/v1/artisans", json=body, headers=marketplace_headers("all-bad"))
    assert response.status_code == 422
    assert {(e["param"], e["code"]) for e in response.json["errors"]} == {
        ("phone", "invalid_phone"),
        ("cin", "invalid_cin"),
        ("date_of_birth", "underage"),
        ("cooperative_ice", "invalid_ice"),
    }


def test_artisan_card_number_is_kept(client, marketplace_headers):
    response = client.post(
        "/v1/artisans",
        json=artisan_body(artisan_card_number="RNA-2024/00123"),
        headers=marketplace_headers("rna"),
    )
    assert response.status_code == 201 and response.json["artisan_card_number"] == "RNA-2024/00123"


def test_review_queue_is_oldest_first_and_filterable(client, app, marketplace_headers, officer):
    hits = [Kyc(client, app, marketplace_headers, full_name="Khadija Amraoui") for _ in range(3)]
    listed = open_reviews(client, officer, kind="screening_hit")
    assert [r["artisan_id"] for r in listed] == [k.id for k in hits]
    page = client.get("/v1/kyc-reviews", query_string={"limit": 2}, headers=officer()).json
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = client.get(
        "/v1/kyc-reviews", query_string={"limit": 2, "starting_after": page["next_cursor"]}, headers=officer()
    ).json
    assert [r["id"] for r in page["data"] + rest["data"]] == [r["id"] for r in listed]
    with app.extensions["hirfa"].session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(KycReview)) == 3
        assert session.scalar(sa.select(sa.func.count()).select_from(Artisan)) == 3


@pytest.mark.parametrize(
    "name",
    [
        "Fatima Zahra El Idrissi",
        "فاطمة الزهراء الإدريسي",
        "Aït Oufella — Brahim".replace(" —", ""),
        "M'barek Ben-Ali",
        "يُوسُف Amrani",
    ],
)
def test_names_in_latin_or_arabic_script_are_accepted(client, marketplace_headers, name):
    response = client.post(
        "/v1/artisans", json=artisan_body(full_name=f"  {name}  "), headers=marketplace_headers(name)
    )
    assert response.status_code == 201, response.json
    assert response.json["full_name"] == " ".join(name.split())


@pytest.mark.parametrize("name", ["Fatima 3ezzahra", "Привет Мир", "Fatima <b>", "张伟 Li", "--", "A"])
def test_names_outside_latin_and_arabic_letters_are_refused(client, marketplace_headers, name):
    response = client.post(
        "/v1/artisans", json=artisan_body(full_name=name), headers=marketplace_headers(f"n-{name}")
    )
    assert response.status_code == 422
    assert response.json["code"] in ("invalid_full_name", "validation_error")
    params = {response.json.get("param"), *(e.get("param") for e in response.json.get("errors", []))}
    assert "full_name" in params
