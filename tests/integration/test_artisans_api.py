"""Registering and reading artisans through onboarding's HTTP API, on a real database."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from services.onboarding.adapters.orm import Artisan, OutboxMessage
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.support import artisan_body


def count(app, model) -> int:
    with app.extensions["hirfa"].session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_registration_normalises_and_records_the_event(onboarding, onboarding_app, marketplace_headers):
    body = artisan_body(cin="ab 123456", phone="06 12 34 56 78")
    response = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("reg-1"))
    assert response.status_code == 201, response.json
    artisan = response.json
    assert artisan["id"].startswith("art_")
    assert artisan["cin"] == "AB123456"
    assert artisan["phone"] == "+212612345678"
    assert artisan["kyc_tier"] == 0
    assert response.headers["Location"] == f"/v1/artisans/{artisan['id']}"

    with onboarding_app.extensions["hirfa"].session_factory() as session:
        rows = session.scalars(sa.select(OutboxMessage)).all()
    assert [row.event_type for row in rows] == ["onboarding.artisan.registered"]
    event = json.loads(rows[0].payload)
    assert rows[0].key == artisan["id"]
    assert event["data"]["artisan_id"] == artisan["id"]
    assert event["data"]["marketplace_id"] == "cli_test_marketplace"
    assert event["data"]["tier_cap"] == {"amount": 0, "currency": "MAD"}
    assert "cin" not in event["data"] and "phone" not in event["data"]


def test_same_key_same_body_replays_without_a_second_effect(onboarding, onboarding_app, marketplace_headers):
    body = artisan_body()
    first = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("same"))
    second = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("same"))
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json == first.json
    assert count(onboarding_app, Artisan) == 1
    assert count(onboarding_app, OutboxMessage) == 1


def test_same_key_different_body_is_refused(onboarding, marketplace_headers):
    onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("k"))
    response = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("k"))
    assert response.status_code == 409
    assert response.json["code"] == "idempotency_key_reuse"
    assert response.mimetype == "application/problem+json"


def test_keys_are_scoped_per_client(onboarding, marketplace_headers):
    first = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("shared-key"))
    other = onboarding.post(
        "/v1/artisans",
        json=artisan_body(),
        headers=marketplace_headers("shared-key", client_id=OTHER_MARKETPLACE),
    )
    assert first.status_code == other.status_code == 201
    assert first.json["id"] != other.json["id"]


def test_missing_idempotency_key_is_refused(onboarding, marketplace_headers):
    response = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers())
    assert response.status_code == 400
    assert response.json["code"] == "idempotency_key_missing"


def test_a_failed_request_does_not_burn_its_key(onboarding, marketplace_headers):
    bad = onboarding.post(
        "/v1/artisans", json=artisan_body(phone="123"), headers=marketplace_headers("retry")
    )
    assert bad.status_code == 422
    good = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("retry"))
    assert good.status_code == 201


def test_twenty_concurrent_requests_with_one_key_create_one_artisan(onboarding_app, marketplace_headers):
    body = artisan_body()
    headers = marketplace_headers("race")
    barrier = threading.Barrier(20)

    def register(_):
        client = onboarding_app.test_client()
        barrier.wait()
        response = client.post("/v1/artisans", json=body, headers=headers)
        return response.status_code, response.json.get("id") if response.status_code < 300 else response.json

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(register, range(20)))
    assert {status for status, _ in results} == {201}, results
    assert len({artisan_id for _, artisan_id in results}) == 1
    assert count(onboarding_app, Artisan) == 1
    assert count(onboarding_app, OutboxMessage) == 1


def test_validation_lists_every_bad_field(onboarding, marketplace_headers):
    response = onboarding.post(
        "/v1/artisans",
        json={"full_name": "", "cin": 5, "region": "atlantis", "craft": "x", "date_of_birth": "yesterday"},
        headers=marketplace_headers("v"),
    )
    assert response.status_code == 422
    problem = response.json
    assert problem["code"] == "validation_error"
    params = {error["param"] for error in problem["errors"]}
    assert {"full_name", "cin", "region", "craft", "date_of_birth", "phone"} <= params


def test_identity_rules_have_stable_codes(onboarding, marketplace_headers):
    cases = [
        (artisan_body(phone="+33612345678"), "invalid_phone", "phone"),
        (artisan_body(phone="0522123456"), "invalid_phone", "phone"),
        (artisan_body(cin="1234567"), "invalid_cin", "cin"),
        (artisan_body(date_of_birth="2015-01-01"), "underage", "date_of_birth"),
    ]
    for index, (body, code, param) in enumerate(cases):
        response = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers(f"rule-{index}"))
        assert response.status_code == 422, body
        assert (response.json["code"], response.json["param"]) == (code, param)


def test_duplicates(onboarding, onboarding_app, marketplace_headers):
    body = artisan_body()
    first = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("d1"))
    again = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("d2"))
    assert again.status_code == 200 and again.json["id"] == first.json["id"]

    same_phone = onboarding.post(
        "/v1/artisans", json=artisan_body(phone=body["phone"]), headers=marketplace_headers("d3")
    )
    assert same_phone.status_code == 409
    assert (same_phone.json["code"], same_phone.json["param"]) == ("duplicate_identity", "phone")

    # Another marketplace with a different person's details on the same CIN: refused.
    impostor = dict(body, phone=artisan_body()["phone"])
    other = onboarding.post(
        "/v1/artisans", json=impostor, headers=marketplace_headers("d4", client_id=OTHER_MARKETPLACE)
    )
    assert other.status_code == 409 and other.json["code"] == "duplicate_identity"
    different_birthday = dict(body, date_of_birth="1970-01-01")
    other = onboarding.post(
        "/v1/artisans",
        json=different_birthday,
        headers=marketplace_headers("d5", client_id=OTHER_MARKETPLACE),
    )
    assert other.status_code == 409 and other.json["code"] == "duplicate_identity"
    assert count(onboarding_app, Artisan) == 1


def test_one_person_registered_by_two_marketplaces_is_one_artisan_linked_to_both(
    onboarding, onboarding_app, marketplace_headers
):
    body = artisan_body()
    first = onboarding.post("/v1/artisans", json=body, headers=marketplace_headers("l1")).json
    second = onboarding.post(
        "/v1/artisans", json=body, headers=marketplace_headers("l2", client_id=OTHER_MARKETPLACE)
    )
    assert second.status_code == 200 and second.json["id"] == first["id"]
    assert count(onboarding_app, Artisan) == 1
    for client_id in (MARKETPLACE, OTHER_MARKETPLACE):
        seen = onboarding.get(f"/v1/artisans/{first['id']}", headers=marketplace_headers(client_id=client_id))
        assert seen.status_code == 200
        listed = onboarding.get("/v1/artisans", headers=marketplace_headers(client_id=client_id)).json
        assert [a["id"] for a in listed["data"]] == [first["id"]]
    with onboarding_app.extensions["hirfa"].session_factory() as session:
        types = session.scalars(sa.select(OutboxMessage.event_type).order_by(OutboxMessage.seq)).all()
    assert types == ["onboarding.artisan.registered", "onboarding.artisan.marketplace_linked"]


def test_marketplaces_see_only_their_artisans(onboarding, marketplace_headers):
    mine = onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers("m1")).json
    theirs = onboarding.post(
        "/v1/artisans", json=artisan_body(), headers=marketplace_headers("m2", client_id=OTHER_MARKETPLACE)
    ).json
    assert onboarding.get(f"/v1/artisans/{mine['id']}", headers=marketplace_headers()).status_code == 200
    hidden = onboarding.get(f"/v1/artisans/{theirs['id']}", headers=marketplace_headers())
    assert hidden.status_code == 404 and hidden.json["code"] == "resource_not_found"
    listed = onboarding.get("/v1/artisans", headers=marketplace_headers()).json
    assert [a["id"] for a in listed["data"]] == [mine["id"]]


def test_cursor_pagination_walks_every_artisan_once(onboarding, marketplace_headers):
    created = [
        onboarding.post("/v1/artisans", json=artisan_body(), headers=marketplace_headers(f"p{i}")).json["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&starting_after={cursor}" if cursor else "")
        page = onboarding.get("/v1/artisans" + query, headers=marketplace_headers()).json
        seen += [a["id"] for a in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == created


def test_list_filters(onboarding, marketplace_headers):
    onboarding.post(
        "/v1/artisans", json=artisan_body(region="souss_massa"), headers=marketplace_headers("f1")
    )
    onboarding.post("/v1/artisans", json=artisan_body(region="fes_meknes"), headers=marketplace_headers("f2"))
    page = onboarding.get("/v1/artisans?region=souss_massa&tier=0", headers=marketplace_headers()).json
    assert [a["region"] for a in page["data"]] == ["souss_massa"]
    bad = onboarding.get("/v1/artisans?tier=9", headers=marketplace_headers())
    assert bad.status_code == 422 and bad.json["errors"][0]["param"] == "tier"


def test_service_endpoints(onboarding, onboarding_app):
    assert onboarding.get("/healthz").json["status"] == "ok"
    ready = onboarding.get("/readyz")
    assert ready.status_code == 503  # no broker in this test
    assert ready.json["checks"] == {"database": "ok", "broker": "unavailable"}
    assert "hirfa_outbox_backlog" in onboarding.get("/metrics").get_data(as_text=True)
    assert onboarding.get("/docs").status_code == 200
    assert onboarding.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    response = onboarding.get("/healthz", headers={"X-Request-Id": "client-chosen-id-123"})
    assert response.headers["X-Request-Id"] == "client-chosen-id-123"


def test_concurrent_requests_after_a_failure_never_error(onboarding_app, marketplace_headers):
    """The first request fails validation and releases the key while others wait on it."""
    body = artisan_body(date_of_birth="2015-01-01")
    headers = marketplace_headers("race-bad")
    barrier = threading.Barrier(10)

    def register(_):
        client = onboarding_app.test_client()
        barrier.wait()
        response = client.post("/v1/artisans", json=body, headers=headers)
        return response.status_code, response.json["code"]

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(register, range(10)))
    assert set(results) == {(422, "underage")}
