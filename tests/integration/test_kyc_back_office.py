"""What the back office asks of onboarding: the review queue filtered by region and age in the API
(so no match hides on a later page), and rescreening one artisan at an officer's request."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import KycAuditEntry, KycReview
from services.onboarding.service_layer.screening import load_list
from shared.auth.scopes import Role, staff_scopes
from shared.db import utcnow
from tests.integration.test_kyc_api import SAMPLE_LIST, Kyc, db_update, outbox_events
from tests.support import ROOT

pytestmark = pytest.mark.integration

TIER_CHANGED = "onboarding.artisan.kyc_tier_changed"


@pytest.fixture
def staff(issue_token):
    """staff(roles, who) -> headers of a staff member's token (with a fresh Idempotency-Key)."""

    def headers(roles=(Role.COMPLIANCE,), who: str = "stf_amina", key: str | None = None) -> dict:
        token = issue_token(Role.STAFF, client_id=who, scopes=staff_scopes(roles))
        return {"Authorization": f"Bearer {token}", "Idempotency-Key": key or str(uuid.uuid4())}

    return headers


def with_sample_list(onboarding_app):
    context = onboarding_app.extensions["hirfa"]
    load_list(context.uow_factory(), (ROOT / SAMPLE_LIST).read_bytes(), source="sample")
    return onboarding_app


def queue(client, headers, **query) -> list[dict]:
    """Every open case the filters let through, a page of one at a time."""
    found, cursor = [], None
    while True:
        response = client.get(
            "/v1/kyc-reviews", query_string={"limit": 1, "starting_after": cursor, **query}, headers=headers
        )
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        found += page["data"]
        if not page["has_more"]:
            return found
        cursor = page["next_cursor"]


# --- the review queue's filters ------------------------------------------------------------------


def test_the_queue_filters_by_region_and_age_before_the_page_is_cut(
    onboarding_app, marketplace_headers, staff
):
    app = with_sample_list(onboarding_app)
    client = app.test_client()
    regions = ("oriental", "fes_meknes", "oriental", "souss_massa", "oriental")
    hits = [Kyc(client, app, marketplace_headers, full_name="Khadija Amraoui", region=r) for r in regions]
    # The first two waited ten days, the third four.
    for kyc, days in zip(hits, (10, 10, 4), strict=False):
        db_update(
            app, KycReview, KycReview.artisan_id == kyc.id, created_at=utcnow() - dt.timedelta(days=days)
        )
    officer = staff()

    in_oriental = queue(client, officer, region="oriental")
    assert [r["artisan_id"] for r in in_oriental] == [hits[0].id, hits[2].id, hits[4].id]
    assert [r["artisan_id"] for r in queue(client, officer, min_age_days=3)] == [k.id for k in hits[:3]]
    assert [r["artisan_id"] for r in queue(client, officer, min_age_days=7, region="oriental")] == [
        hits[0].id
    ]
    assert queue(client, officer, region="dakhla_oued_ed_dahab") == []
    assert len(queue(client, officer, min_age_days=0)) == 5


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"region": "atlantis"}, "region"),
        ({"min_age_days": "-1"}, "min_age_days"),
        ({"min_age_days": "three"}, "min_age_days"),
        ({"min_age_days": "99999"}, "min_age_days"),
    ],
)
def test_queue_filters_are_validated_with_stable_codes(onboarding_app, staff, query, param):
    response = onboarding_app.test_client().get("/v1/kyc-reviews", query_string=query, headers=staff())
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["code"] == "validation_error" and [e["param"] for e in problem["errors"]] == [param]


# --- rescreening one artisan ---------------------------------------------------------------------


def rescreen(client, artisan_id: str, headers: dict):
    return client.post(f"/v1/artisans/{artisan_id}/screenings", headers=headers)


def test_only_compliance_rescreens(onboarding_app, marketplace_headers, staff, issue_token):
    app = with_sample_list(onboarding_app)
    client = app.test_client()
    kyc = Kyc(client, app, marketplace_headers, full_name="Amina Tazi")
    artisan = {
        "Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id=kyc.id),
        "Idempotency-Key": "k-artisan",
    }
    for refused in (
        marketplace_headers("k-marketplace"),
        artisan,
        staff(roles=(Role.OPERATOR,), who="stf_salma"),
    ):
        response = rescreen(client, kyc.id, refused)
        assert response.status_code == 403 and response.get_json()["code"] == "insufficient_scope"
    assert rescreen(client, kyc.id, staff()).status_code == 201
    no_key = {k: v for k, v in staff().items() if k != "Idempotency-Key"}
    assert rescreen(client, kyc.id, no_key).get_json()["code"] == "idempotency_key_missing"
    missing = rescreen(client, "art_nobody", staff())
    assert missing.status_code == 404 and missing.get_json()["param"] == "artisan_id"


def test_a_rescreen_that_finds_a_new_listing_holds_the_artisan_once(
    onboarding_app, marketplace_headers, staff
):
    app = with_sample_list(onboarding_app)
    client = app.test_client()
    kyc = Kyc(client, app, marketplace_headers, full_name="Youssef Benali Chraibi")
    kyc.verify_phone()
    kyc.upload_all()
    assert kyc.view()["tier"] == 2

    clear = rescreen(client, kyc.id, staff())
    assert clear.status_code == 201, clear.get_json()
    assert (clear.get_json()["outcome"], clear.get_json()["kyc_tier"]) == ("clear", 2)
    assert not [e for e in outbox_events(app, TIER_CHANGED) if e["data"]["direction"] == "down"]

    # The lists in force now name the artisan.
    listed = (ROOT / SAMPLE_LIST).read_text(encoding="utf-8")
    listed = listed.replace(
        'dateGenerated="2026-11-01T00:00:00.000Z"', 'dateGenerated="2026-11-20T00:00:00.000Z"'
    )
    listed = listed.replace(
        "<INDIVIDUALS>",
        "<INDIVIDUALS><INDIVIDUAL><DATAID>9999</DATAID><VERSIONNUM>1</VERSIONNUM><FIRST_NAME>YOUSSEF</FIRST_NAME>"
        "<SECOND_NAME>BENALI</SECOND_NAME><THIRD_NAME>CHRAIBI</THIRD_NAME><UN_LIST_TYPE>FICTIONAL-TEST"
        "</UN_LIST_TYPE><REFERENCE_NUMBER>ZZi.099</REFERENCE_NUMBER><LISTED_ON>2026-11-20</LISTED_ON>"
        "</INDIVIDUAL>",
        1,
    )
    context = app.extensions["hirfa"]
    load_list(context.uow_factory(), listed.encode(), source="update")

    key = str(uuid.uuid4())
    hit = rescreen(client, kyc.id, staff(key=key))
    assert hit.status_code == 201
    body = hit.get_json()
    assert (body["outcome"], body["screening_status"], body["kyc_tier"]) == ("hit", "hit", 0)
    assert body["list_version"] == "2026-11-20T00:00:00.000Z"
    [match] = body["matches"]
    assert match["reference"] == "ZZi.099" and match["score"] >= 85
    [down] = [e for e in outbox_events(app, TIER_CHANGED) if e["data"]["direction"] == "down"]
    assert (down["subject"], down["data"]["kyc_tier"], down["data"]["reason_code"]) == (
        kyc.id,
        0,
        "screening_hit",
    )
    # The officer's rescreen caused the drop: the tier history and the event name her.
    assert down["data"]["actor"] == "stf_amina"
    [dropped] = [h for h in kyc.view()["history"] if h["to_tier"] == 0]
    assert (dropped["from_tier"], dropped["reason_code"], dropped["actor"]) == (
        2,
        "screening_hit",
        "stf_amina",
    )
    assert body["review_id"].startswith("rev_")

    # The same request again replays the answer; a new one screens again and changes nothing more.
    assert rescreen(client, kyc.id, staff(key=key)).get_json() == body
    again = rescreen(client, kyc.id, staff()).get_json()
    assert again["id"] != body["id"] and again["review_id"] == body["review_id"]
    assert len([e for e in outbox_events(app, TIER_CHANGED) if e["data"]["direction"] == "down"]) == 1
    with context.session_factory() as session:
        open_hits = session.scalars(
            sa.select(KycReview.id).where(
                KycReview.artisan_id == kyc.id, KycReview.kind == "screening_hit", KycReview.status == "open"
            )
        ).all()
        reruns = session.scalars(
            sa.select(KycAuditEntry).where(
                KycAuditEntry.artisan_id == kyc.id, KycAuditEntry.action == "screening.rerun"
            )
        ).all()
    assert open_hits == [body["review_id"]]
    # Audited under the officer's own name, each time it ran.
    assert [(entry.actor, entry.subject_id) for entry in reruns][-2:] == [
        ("stf_amina", body["id"]),
        ("stf_amina", again["id"]),
    ]


def newer_list_also_naming(full_name: tuple[str, str], reference: str, generated: str) -> bytes:
    """The sample list, published later, with one more entry for ``full_name`` (first, second)."""
    listed = (ROOT / SAMPLE_LIST).read_text(encoding="utf-8")
    listed = listed.replace('dateGenerated="2026-11-01T00:00:00.000Z"', f'dateGenerated="{generated}"')
    first, second = full_name
    return listed.replace(
        "<INDIVIDUALS>",
        f"<INDIVIDUALS><INDIVIDUAL><DATAID>9998</DATAID><VERSIONNUM>1</VERSIONNUM><FIRST_NAME>{first}"
        f"</FIRST_NAME><SECOND_NAME>{second}</SECOND_NAME><UN_LIST_TYPE>FICTIONAL-TEST</UN_LIST_TYPE>"
        f"<REFERENCE_NUMBER>{reference}</REFERENCE_NUMBER><LISTED_ON>2026-11-25</LISTED_ON></INDIVIDUAL>",
        1,
    ).encode()


def test_a_waiting_screening_case_takes_the_matches_of_a_newer_list(
    onboarding_app, marketplace_headers, staff
):
    app = with_sample_list(onboarding_app)
    client = app.test_client()
    kyc = Kyc(client, app, marketplace_headers, full_name="Khadija Amraoui")
    [case] = queue(client, staff(), artisan_id=kyc.id, kind="screening_hit")
    assert case["details"]["list_version"] == "2026-11-01T00:00:00.000Z"
    assert [m["reference"] for m in case["details"]["matches"]] == ["ZZi.004"]

    # Rescreened against the same list: the case already says it all, nothing is rewritten.
    assert rescreen(client, kyc.id, staff()).status_code == 201

    # A newer list names her a second time: the officer deciding the case must see both entries.
    context = app.extensions["hirfa"]
    newer = "2026-11-25T00:00:00.000Z"
    load_list(
        context.uow_factory(),
        newer_list_also_naming(("KHADIJA", "AMRAOUI"), "ZZi.098", newer),
        source="update",
    )
    done = rescreen(client, kyc.id, staff(who="stf_youssef"))
    assert done.status_code == 201, done.get_json()
    body = done.get_json()
    assert body["review_id"] == case["id"]  # the same case, not a second one
    [updated] = queue(client, staff(), artisan_id=kyc.id, kind="screening_hit")
    assert updated["id"] == case["id"]
    assert updated["details"]["list_version"] == newer
    assert sorted(m["reference"] for m in updated["details"]["matches"]) == ["ZZi.004", "ZZi.098"]
    assert updated["details"]["screening_result_id"] == body["id"]

    # Audited under the officer who ran it, saying what the case said before; once.
    assert rescreen(client, kyc.id, staff(who="stf_youssef")).status_code == 201
    with context.session_factory() as session:
        changes = session.scalars(
            sa.select(KycAuditEntry).where(
                KycAuditEntry.artisan_id == kyc.id, KycAuditEntry.action == "review.matches_updated"
            )
        ).all()
    assert [(c.actor, c.subject_id) for c in changes] == [("stf_youssef", case["id"])]
    assert "2026-11-01T00:00:00.000Z (ZZi.004)" in changes[0].note and newer in changes[0].note


def test_an_artisan_screened_before_any_list_climbs_once_rescreened(
    onboarding_app, marketplace_headers, staff
):
    client = onboarding_app.test_client()
    kyc = Kyc(client, onboarding_app, marketplace_headers, full_name="Amina Tazi")
    kyc.verify_phone()
    kyc.upload_all()
    assert (kyc.view()["tier"], kyc.view()["screening_status"]) == (1, "pending")

    none_loaded = rescreen(client, kyc.id, staff())
    assert none_loaded.status_code == 409 and none_loaded.get_json()["code"] == "screening_list_unavailable"
    french = rescreen(client, kyc.id, {**staff(), "Accept-Language": "fr"}).get_json()
    assert french["detail"].startswith("Aucune liste de sanctions n'est encore chargée")

    with_sample_list(onboarding_app)
    done = rescreen(client, kyc.id, staff(who="stf_youssef")).get_json()
    assert (done["outcome"], done["screening_status"], done["kyc_tier"]) == ("clear", "clear", 2)
    [up] = [e for e in outbox_events(onboarding_app, TIER_CHANGED) if e["data"]["kyc_tier"] == 2]
    assert up["subject"] == kyc.id and up["data"]["actor"] == "stf_youssef"
    # The tier-3 case it opened is the officer's: four-eyes keeps them off it.
    [case] = queue(client, staff(), artisan_id=kyc.id, kind="tier_upgrade")
    assert case["submitted_by"] == "stf_youssef"


# --- the KYC funnel ------------------------------------------------------------------------------


def test_the_kyc_funnel_counts_every_tier_for_staff_and_a_marketplace_its_own(
    onboarding_app, marketplace_headers, staff, issue_token
):
    from tests.integration.conftest import OTHER_MARKETPLACE

    app = with_sample_list(onboarding_app)
    client = app.test_client()
    mine = [Kyc(client, app, marketplace_headers, full_name=name) for name in ("Amina Tazi", "Omar Berrada")]
    mine[0].verify_phone()
    Kyc(
        client,
        app,
        lambda key=None: marketplace_headers(key, client_id=OTHER_MARKETPLACE),
        full_name="Sara Alami",
    )

    def funnel(headers) -> dict:
        response = client.get("/v1/artisans/kyc-funnel", headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    everyone = funnel(staff(roles=(Role.OPERATOR,), who="stf_salma"))
    assert everyone["tiers"] == [
        {"tier": 0, "count": 2},
        {"tier": 1, "count": 1},
        {"tier": 2, "count": 0},
        {"tier": 3, "count": 0},
    ]
    assert (everyone["rejected"], everyone["suspended"]) == (0, 0)
    assert [row["count"] for row in funnel(marketplace_headers())["tiers"]] == [1, 1, 0, 0]
    artisan = {"Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id=mine[0].id)}
    refused = client.get("/v1/artisans/kyc-funnel", headers=artisan)
    assert refused.status_code == 403 and refused.get_json()["code"] == "insufficient_scope"
