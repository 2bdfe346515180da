"""The back office's views of payments over HTTP: across every marketplace, for operators only
(a staff member holding the role, or an operator client); marketplaces and artisans are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from services.payments.adapters.orm import Dispute, Payment, WebhookDelivery
from services.payments.service_layer import back_office
from services.payments.service_layer.webhook_events import record_webhook_event
from shared.auth import Principal
from shared.auth.scopes import ROLE_SCOPES, Role, staff_scopes
from shared.db import utcnow
from shared.errors import PROBLEM_CONTENT_TYPE, Forbidden
from shared.ids import new_id
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE

pytestmark = pytest.mark.integration

BASE = "/v1/back-office"
LISTS = ("reversals-to-review", "stuck-payments", "disputes", "webhook-failures")


@pytest.fixture
def context(payments_app):
    return payments_app.extensions["hirfa"]


@pytest.fixture
def client(payments_app):
    return payments_app.test_client()


@pytest.fixture
def as_operator(issue_token):
    """Salma, a staff member holding the operator role: her token names her and carries her roles' scopes."""
    token = issue_token(Role.STAFF, client_id="stf_salma", scopes=staff_scopes([Role.OPERATOR]))
    return {"Authorization": f"Bearer {token}"}


def add_payment(context, *, marketplace=MARKETPLACE, **columns) -> str:
    now = utcnow()
    row = {
        "id": new_id("pay"),
        "marketplace_id": marketplace,
        "artisan_id": "art_back_office",
        "amount": 10_000,
        "currency": "MAD",
        "application_fee": 1_000,
        "payment_method_type": "card",
        "capture_method": "automatic",
        "status": "succeeded",
        "gateway": "fake",
        "created_at": now,
        "updated_at": now,
        **columns,
    }
    with context.uow_factory() as uow:
        uow.session.add(Payment(**row))
        uow.commit()
    return row["id"]


def get(client, headers, path: str, **query):
    response = client.get(f"{BASE}/{path}", headers=headers, query_string=query)
    return response


def page(client, headers, path: str, **query) -> dict:
    response = get(client, headers, path, **query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def every(client, headers, path: str, key: str = "id", **query) -> list[str]:
    """Every item of a list, following its cursor two at a time."""
    seen, cursor = [], None
    while True:
        answer = page(client, headers, path, limit=2, starting_after=cursor, **query)
        seen += [item[key] for item in answer["data"]]
        if not answer["has_more"]:
            return seen
        cursor = answer["next_cursor"]


# --- who may look --------------------------------------------------------------------------------


def test_marketplaces_and_artisans_are_refused_and_staff_operators_allowed(client, issue_token, as_operator):
    marketplace = {"Authorization": "Bearer " + issue_token(Role.MARKETPLACE)}
    artisan = {"Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id="art_1")}
    compliance_officer = {
        "Authorization": "Bearer "
        + issue_token(Role.STAFF, client_id="stf_amina", scopes=staff_scopes([Role.COMPLIANCE]))
    }
    operator_client = {"Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_ops")}
    since = {"created_gte": (utcnow() - dt.timedelta(days=1)).isoformat()}
    for path, query in [*((path, {}) for path in LISTS), ("payment-stats", since)]:
        for refused in (marketplace, artisan, compliance_officer):
            response = get(client, refused, path, **query)
            assert response.status_code == 403, path
            assert response.mimetype == PROBLEM_CONTENT_TYPE
            assert response.get_json()["code"] == "insufficient_scope"
        assert get(client, as_operator, path, **query).status_code == 200, path
        assert get(client, operator_client, path, **query).status_code == 200, path
        assert get(client, {}, path, **query).status_code == 401, path


def test_a_token_with_the_scope_but_not_the_role_is_refused(client, issue_token):
    # Only an operator's token can carry the scope; one forged onto a marketplace is still refused.
    forged = issue_token(Role.MARKETPLACE, scopes=frozenset({"payments:oversee", "payments:read"}))
    response = get(client, {"Authorization": f"Bearer {forged}"}, "reversals-to-review")
    assert response.status_code == 403 and response.get_json()["code"] == "role_not_allowed"


def test_the_scope_belongs_to_operators_only():
    assert "payments:oversee" in ROLE_SCOPES[Role.OPERATOR]
    assert all(
        "payments:oversee" not in ROLE_SCOPES[role]
        for role in Role
        if role not in (Role.OPERATOR, Role.STAFF)
    )
    principal = Principal("stf_salma", Role.STAFF, staff_scopes([Role.OPERATOR]), "t")
    back_office.require_operator(principal)  # a staff member holding the role acts as an operator
    with pytest.raises(Forbidden):
        back_office.require_operator(Principal("stf_amina", Role.STAFF, staff_scopes([Role.COMPLIANCE]), "t"))


# --- what needs attention ------------------------------------------------------------------------


def test_reversals_to_review_are_the_failed_ones_of_every_marketplace(client, context, as_operator):
    failed = [
        add_payment(context, status="failed", reversal_status="failed"),
        add_payment(context, status="canceled", reversal_status="failed", marketplace=OTHER_MARKETPLACE),
        add_payment(context, status="failed", reversal_status="failed", marketplace=OTHER_MARKETPLACE),
    ]
    for on_its_way in ("required", "refund_pending", "refunded", "voided"):
        add_payment(context, status="failed", reversal_status=on_its_way)
    add_payment(context, status="failed")  # nothing held

    assert every(client, as_operator, "reversals-to-review") == sorted(failed)
    item = page(client, as_operator, "reversals-to-review")["data"][0]
    assert item["requires_review"] is True and item["reversal_status"] == "failed"
    assert {item["marketplace_id"] for item in page(client, as_operator, "reversals-to-review")["data"]} == {
        MARKETPLACE,
        OTHER_MARKETPLACE,
    }


def test_stuck_payments_are_processing_longer_than_the_recovery_setting(client, context, as_operator):
    recovery = context.payments.recovery_after
    now = utcnow()
    long_ago, just_now = now - recovery - dt.timedelta(seconds=30), now - recovery / 3
    stuck = [
        add_payment(context, status="processing", confirmed_at=long_ago, gateway_checked_at=now),
        add_payment(context, status="processing", confirmed_at=long_ago, marketplace=OTHER_MARKETPLACE),
    ]
    # Confirmed long ago but asked to capture just now: recovery has not had its turn yet.
    add_payment(
        context,
        status="processing",
        confirmed_at=long_ago,
        capture_requested_at=just_now,
        capture_method="manual",
    )
    add_payment(context, status="processing", confirmed_at=just_now)
    add_payment(context, status="requires_action", confirmed_at=long_ago)  # waiting on the buyer
    add_payment(context, status="succeeded", confirmed_at=long_ago)

    assert every(client, as_operator, "stuck-payments") == sorted(stuck)
    first = page(client, as_operator, "stuck-payments")["data"][0]
    assert dt.datetime.fromisoformat(first["waiting_since"]) < now - recovery

    # The threshold is the recovery setting, not a fixed one: with a longer wait, none is stuck yet.
    patient = dataclasses.replace(context.payments, recovery_after=recovery + dt.timedelta(minutes=10))
    principal = Principal("stf_salma", Role.STAFF, staff_scopes([Role.OPERATOR]), "t")
    assert (
        back_office.stuck_payments(
            context.uow_factory(), principal, patient, limit=10, starting_after=None
        ).data
        == []
    )


def test_open_disputes_of_every_marketplace(client, context, as_operator):
    opened = []
    for marketplace, status in (
        (MARKETPLACE, "open"),
        (OTHER_MARKETPLACE, "open"),
        (MARKETPLACE, "won"),
        (OTHER_MARKETPLACE, "open"),
        (MARKETPLACE, "lost"),
    ):
        payment_id = add_payment(context, marketplace=marketplace)
        dispute_id = new_id("dp")
        with context.uow_factory() as uow:
            uow.session.add(
                Dispute(
                    id=dispute_id,
                    payment_id=payment_id,
                    marketplace_id=marketplace,
                    artisan_id="art_back_office",
                    amount=10_000,
                    currency="MAD",
                    reason="fraudulent",
                    status=status,
                    gateway="fake",
                    gateway_reference=f"dp_ref_{dispute_id}",
                    opened_at=utcnow(),
                )
            )
            uow.commit()
        if status == "open":
            opened.append(dispute_id)
    assert every(client, as_operator, "disputes") == sorted(opened)
    assert len(every(client, as_operator, "disputes", status="lost")) == 1
    assert page(client, as_operator, "disputes")["data"][0]["marketplace_id"] in (
        MARKETPLACE,
        OTHER_MARKETPLACE,
    )
    bad = get(client, as_operator, "disputes", status="closed")
    assert bad.status_code == 422 and bad.get_json()["code"] == "validation_error"
    assert bad.get_json()["errors"][0]["param"] == "status"


def test_failed_webhook_deliveries_are_counted_per_marketplace(
    client, context, as_operator, marketplace_headers
):
    endpoints = {}
    for marketplace in (MARKETPLACE, OTHER_MARKETPLACE, "cli_third_marketplace"):
        created = client.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hooks", "event_types": ["*"]},
            headers=marketplace_headers(str(uuid.uuid4()), client_id=marketplace),
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        endpoints[marketplace] = created.get_json()["id"]
    deliveries = {marketplace: [] for marketplace in endpoints}
    for marketplace in endpoints:
        for _ in range(4):
            with context.uow_factory() as uow:
                record_webhook_event(
                    uow.session,
                    marketplace_id=marketplace,
                    event_type="payment.succeeded",
                    object_type="payment",
                    object_id=new_id("pay"),
                    snapshot={"id": "pay_x", "object": "payment", "status": "succeeded"},
                )
                uow.commit()
        with context.session_factory() as session:
            deliveries[marketplace] = list(
                session.scalars(
                    sa.select(WebhookDelivery.id)
                    .where(WebhookDelivery.marketplace_id == marketplace)
                    .order_by(WebhookDelivery.id)
                )
            )
    last_attempt = utcnow().replace(microsecond=0)

    def set_delivery(delivery_id: str, **values) -> None:
        with context.uow_factory() as uow:
            uow.session.execute(
                sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
            )
            uow.commit()

    ours, theirs, third = (deliveries[m] for m in (MARKETPLACE, OTHER_MARKETPLACE, "cli_third_marketplace"))
    set_delivery(
        ours[0], status="failed", attempt_count=9, last_attempt_at=last_attempt, failed_at=last_attempt
    )
    set_delivery(
        ours[1], status="failed", attempt_count=9, last_attempt_at=last_attempt - dt.timedelta(hours=1)
    )
    set_delivery(
        ours[2], status="pending", attempt_count=2, last_attempt_at=last_attempt - dt.timedelta(hours=2)
    )
    # ours[3] waits for its first attempt: nothing failed yet.
    set_delivery(theirs[0], status="pending", attempt_count=1, last_attempt_at=last_attempt)
    for delivered in (*theirs[1:], *third):
        set_delivery(delivered, status="delivered", attempt_count=1, last_attempt_at=last_attempt)

    summary = page(client, as_operator, "webhook-failures")
    by_marketplace = {row["marketplace_id"]: row for row in summary["data"]}
    assert set(by_marketplace) == {MARKETPLACE, OTHER_MARKETPLACE}  # the third has nothing failing
    assert (by_marketplace[MARKETPLACE]["failed"], by_marketplace[MARKETPLACE]["retrying"]) == (2, 1)
    assert (by_marketplace[OTHER_MARKETPLACE]["failed"], by_marketplace[OTHER_MARKETPLACE]["retrying"]) == (
        0,
        1,
    )
    assert dt.datetime.fromisoformat(by_marketplace[MARKETPLACE]["last_attempt_at"]) == last_attempt
    # One marketplace a page: the cursor is the marketplace's id.
    assert every(client, as_operator, "webhook-failures", key="marketplace_id") == sorted(by_marketplace)


# --- the figures of a period ---------------------------------------------------------------------


def test_payment_stats_count_volume_and_success_rate_by_method(client, context, as_operator):
    now = utcnow()
    start = now - dt.timedelta(hours=6)
    card, wallet = "card", "mobile_wallet"
    for method, status, captured, marketplace in (
        (card, "succeeded", 15_000, MARKETPLACE),
        (card, "succeeded", 5_000, OTHER_MARKETPLACE),
        (card, "failed", 0, MARKETPLACE),
        (card, "canceled", 0, MARKETPLACE),
        (wallet, "succeeded", 2_500, MARKETPLACE),
        (wallet, "processing", 0, OTHER_MARKETPLACE),
    ):
        add_payment(
            context,
            payment_method_type=method,
            status=status,
            amount_captured=captured,
            marketplace=marketplace,
            created_at=now - dt.timedelta(hours=1),
        )
    add_payment(
        context, status="succeeded", amount_captured=99_000, created_at=start - dt.timedelta(seconds=1)
    )

    stats = page(client, as_operator, "payment-stats", created_gte=start.isoformat())
    assert stats["object"] == "payment_stats" and stats["count"] == 6
    assert stats["volume"] == [{"amount": 22_500, "currency": "MAD"}]
    methods = {row["payment_method_type"]: row for row in stats["by_method"]}
    assert methods[card] == {
        "payment_method_type": card,
        "count": 4,
        "succeeded": 2,
        "failed": 1,
        "success_rate": 0.6667,  # the canceled one counts neither way
        "volume": [{"amount": 20_000, "currency": "MAD"}],
    }
    assert (methods[wallet]["count"], methods[wallet]["success_rate"]) == (2, 1.0)

    # An empty period still names every method, with no rate to show.
    empty = page(
        client,
        as_operator,
        "payment-stats",
        created_gte=(start - dt.timedelta(days=3)).isoformat(),
        created_lt=(start - dt.timedelta(days=2)).isoformat(),
    )
    assert empty["count"] == 0 and empty["volume"] == []
    assert [(row["payment_method_type"], row["success_rate"]) for row in empty["by_method"]] == [
        (card, None),
        (wallet, None),
    ]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({}, "created_gte"),
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"created_gte": "2026-12-01T00:00:00"}, "created_gte"),  # no offset: whose midnight?
        (
            {"created_gte": "2026-12-02T00:00:00+00:00", "created_lt": "2026-12-01T00:00:00+00:00"},
            "created_lt",
        ),
        (
            {"created_gte": "2026-01-01T00:00:00+00:00", "created_lt": "2026-12-01T00:00:00+00:00"},
            "created_gte",
        ),
    ],
)
def test_a_period_of_figures_is_validated_with_stable_codes(client, as_operator, query, param):
    response = get(client, as_operator, "payment-stats", **query)
    assert response.status_code == 422 and response.mimetype == PROBLEM_CONTENT_TYPE
    problem = response.get_json()
    assert problem["code"] == "validation_error"
    assert param in [problem.get("param"), *(error["param"] for error in problem.get("errors", []))]


def test_french_problems_for_the_back_office(client, as_operator):
    response = get(
        client,
        {**as_operator, "Accept-Language": "fr"},
        "payment-stats",
        created_gte="2026-12-02T00:00:00+00:00",
        created_lt="2026-12-01T00:00:00+00:00",
    )
    assert response.get_json()["detail"] == "created_lt doit être postérieur à created_gte."


def test_the_openapi_document_describes_the_back_office(client):
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").get_json()
    validate(document)
    for path in (*LISTS, "payment-stats"):
        operation = document["paths"][f"{BASE}/{path}"]["get"]
        assert "200" in operation["responses"] and operation["summary"], path
    stats = document["components"]["schemas"]["PaymentStats"]["properties"]
    assert {"count", "volume", "by_method"} <= set(stats)
