"""Adjustments and reversals with four-eyes (issue 12 §1): an operator proposes, a different one
approves above the configured amount; reversals negate an entry exactly, once."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, LedgerAdjustment, OutboxMessage
from services.accounts.domain.ledger import artisan, marketplace, platform
from services.accounts.service_layer.adjustments import propose_adjustment
from shared.auth import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from tests.integration.conftest import MARKETPLACE
from tests.integration.test_ledger_postings import assert_ledger_sound, entries, lines_of, release_all
from tests.ledger_support import LedgerDriver, payment_succeeded

ALICE, BOB = "cli_operator_alice", "cli_operator_bob"
URL = "/v1/ledger/adjustments"


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def auth(issue_token):
    def headers(
        client_id: str = ALICE, role: Role = Role.OPERATOR, idempotency_key: str | None = None
    ) -> dict:
        return {
            "Authorization": "Bearer " + issue_token(role, client_id=client_id),
            "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
        }

    return headers


def line(owner_type: str, owner_id: str, kind: str, amount: int) -> dict:
    return {"owner_type": owner_type, "owner_id": owner_id, "kind": kind, "amount": amount}


def move_commission_to_revenue(amount: int) -> list[dict]:
    return [
        line("marketplace", MARKETPLACE, "commission", amount),
        line("platform", "platform", "revenue", -amount),
    ]


def funded_artisan(ledger: LedgerDriver, amount: int = 10_000) -> str:
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, amount, 1_000))
    release_all(ledger)
    return artisan_id


def events(ledger: LedgerDriver, event_type: str) -> list[dict]:
    with ledger.context.session_factory() as session:
        rows = session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.seq)
        ).all()
    return [json.loads(row.payload)["data"] for row in rows]


def test_a_small_adjustment_posts_at_once(client, auth, ledger):
    funded_artisan(ledger)
    response = client.post(
        URL,
        json={"reason": "Commission taken twice on order 77", "lines": move_commission_to_revenue(300)},
        headers=auth(),
    )
    assert response.status_code == 201, response.json
    adjustment = response.json
    assert (adjustment["kind"], adjustment["status"], adjustment["proposed_by"]) == (
        "manual",
        "posted",
        ALICE,
    )
    assert adjustment["amount"] == {"amount": 300, "currency": "MAD"}
    [entry] = entries(ledger, cause="adjustment")
    assert entry.id == adjustment["entry_id"] and entry.cause_id == adjustment["id"]
    assert lines_of(ledger, entry.id) == {("marketplace", "commission"): 300, ("platform", "revenue"): -300}
    [posted] = events(ledger, "accounts.ledger.adjustment_posted")
    assert (posted["adjustment_id"], posted["entry_id"], posted["decided_by"]) == (
        adjustment["id"],
        entry.id,
        None,
    )
    assert response.headers["Location"] == f"{URL}/{adjustment['id']}"
    assert client.get(response.headers["Location"], headers=auth(BOB)).json["status"] == "posted"


def test_above_the_threshold_a_second_operator_must_approve(client, auth, ledger):
    artisan_id = funded_artisan(ledger, 1_000_000)
    body = {
        "reason": "Marketplace goodwill credit to the artisan",
        "lines": [
            line("marketplace", MARKETPLACE, "commission", 150_000),
            line("artisan", artisan_id, "available", -150_000),
        ],
    }
    proposed = client.post(URL, json=body, headers=auth(ALICE)).json
    assert proposed["status"] == "pending_approval" and proposed["entry_id"] is None
    assert entries(ledger, cause="adjustment") == []
    assert [e["adjustment_id"] for e in events(ledger, "accounts.ledger.adjustment_proposed")] == [
        proposed["id"]
    ]

    own = client.post(f"{URL}/{proposed['id']}/approve", json={}, headers=auth(ALICE))
    assert (own.status_code, own.json["code"]) == (403, "four_eyes_required")
    assert entries(ledger, cause="adjustment") == []

    approved = client.post(f"{URL}/{proposed['id']}/approve", json={"note": "Checked"}, headers=auth(BOB))
    assert approved.status_code == 200, approved.json
    assert (approved.json["status"], approved.json["decided_by"], approved.json["decision_note"]) == (
        "posted",
        BOB,
        "Checked",
    )
    assert ledger.shown("artisan", artisan_id, "available") == 999_000 + 150_000
    again = client.post(f"{URL}/{proposed['id']}/approve", json={}, headers=auth("cli_operator_carol"))
    assert (again.status_code, again.json["code"]) == (409, "adjustment_not_pending")
    assert len(entries(ledger, cause="adjustment")) == 1

    listed = client.get(f"{URL}?status=posted", headers=auth(BOB)).json
    assert [a["id"] for a in listed["data"]] == [proposed["id"]]
    assert_ledger_sound(ledger)


def test_a_waiting_adjustment_can_be_rejected(client, auth, ledger):
    funded_artisan(ledger)
    proposed = client.post(
        URL, json={"reason": "Too big", "lines": move_commission_to_revenue(100_001)}, headers=auth()
    ).json
    assert proposed["status"] == "pending_approval"
    rejected = client.post(f"{URL}/{proposed['id']}/reject", json={"note": "No"}, headers=auth(BOB))
    assert (rejected.status_code, rejected.json["status"]) == (200, "rejected")
    assert client.post(f"{URL}/{proposed['id']}/approve", json={}, headers=auth(BOB)).status_code == 409
    assert entries(ledger, cause="adjustment") == []
    assert [e["status"] for e in events(ledger, "accounts.ledger.adjustment_rejected")] == ["rejected"]


def test_a_reversal_negates_the_entry_exactly_and_only_once(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    [payment] = entries(ledger, cause="payment")
    response = client.post(
        URL,
        json={"reason": "Posted for a payment the gateway voided", "reverses_entry_id": payment.id},
        headers=auth(),
    )
    assert response.status_code == 201, response.json
    assert (response.json["kind"], response.json["status"]) == ("reversal", "posted")
    [reversal] = entries(ledger, cause="adjustment")
    assert reversal.reverses_entry_id == payment.id
    assert lines_of(ledger, reversal.id) == {
        key: -amount for key, amount in lines_of(ledger, payment.id).items()
    }
    assert ledger.shown("artisan", artisan_id, "pending") == 0
    posted = [e for e in events(ledger, "accounts.ledger.entry_posted") if e["entry_id"] == reversal.id]
    assert posted[0]["reverses_entry_id"] == payment.id
    assert client.get(f"/v1/journal-entries/{reversal.id}", headers=auth()).status_code == 200

    twice = client.post(URL, json={"reason": "Again", "reverses_entry_id": payment.id}, headers=auth(BOB))
    assert (twice.status_code, twice.json["code"]) == (409, "already_reversed")
    missing = client.post(URL, json={"reason": "Nothing", "reverses_entry_id": "je_nothing"}, headers=auth())
    assert missing.status_code == 404
    assert_ledger_sound(ledger)


def test_an_adjustment_the_balance_rules_refuse_is_refused_with_the_rules_code(client, auth, ledger):
    artisan_id = funded_artisan(ledger, 10_000)
    response = client.post(
        URL,
        json={
            "reason": "Claw back",
            "lines": [
                line("artisan", artisan_id, "available", 9_001),
                line("platform", "platform", "revenue", -9_001),
            ],
        },
        headers=auth(),
    )
    assert (response.status_code, response.json["code"]) == (409, "artisan_balance_negative")
    assert entries(ledger, cause="adjustment") == []
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LedgerAdjustment)) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {
                "reason": "x",
                "lines": [
                    line("platform", "platform", "revenue", 5),
                    line("platform", "platform", "revenue", -4),
                ],
            },
            "unbalanced_entry",
        ),
        (
            {
                "reason": "x",
                "lines": [
                    line("platform", "platform", "savings", 5),
                    line("platform", "platform", "revenue", -5),
                ],
            },
            "unknown_account",
        ),
        ({"reason": "x", "lines": [line("platform", "platform", "revenue", 5)]}, "validation_error"),
        ({"reason": "x"}, "validation_error"),
        (
            {"reason": "x", "reverses_entry_id": "je_1", "lines": move_commission_to_revenue(5)},
            "validation_error",
        ),
        ({"reason": "", "lines": move_commission_to_revenue(5)}, "validation_error"),
        (
            {
                "reason": "x",
                "lines": [
                    line("platform", "platform", "revenue", 1.5),
                    line("platform", "platform", "revenue", -1.5),
                ],
            },
            "validation_error",
        ),
    ],
)
def test_bad_adjustments_are_refused_clearly(client, auth, body, code):
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 422, response.json
    assert response.json["code"] == code


def test_proposing_is_idempotent_and_for_operators_only(client, auth, ledger, issue_token):
    funded_artisan(ledger)
    body = {"reason": "Fix", "lines": move_commission_to_revenue(200)}
    first = client.post(URL, json=body, headers=auth(idempotency_key="adj-1"))
    again = client.post(URL, json=body, headers=auth(idempotency_key="adj-1"))
    assert first.json["id"] == again.json["id"]
    assert len(entries(ledger, cause="adjustment")) == 1
    assert client.post(URL, json=body).status_code == 401
    no_key = auth()
    del no_key["Idempotency-Key"]
    assert client.post(URL, json=body, headers=no_key).status_code == 400
    marketplace_headers = auth(MARKETPLACE, role=Role.MARKETPLACE)
    assert client.post(URL, json=body, headers=marketplace_headers).status_code == 403
    assert client.get(URL, headers=marketplace_headers).status_code == 403


def test_reconciliation_proposes_inside_its_own_transaction(accounts_app, ledger):
    """``propose_adjustment`` neither opens nor commits: the caller's rollback takes it back."""
    artisan_id = funded_artisan(ledger)
    principal = Principal(ALICE, Role.OPERATOR, ROLE_SCOPES[Role.OPERATOR], token_id="t")
    context = accounts_app.extensions["hirfa"]
    lines = [(marketplace(MARKETPLACE, "commission"), 100), (platform("revenue"), -100)]
    with context.uow_factory() as uow:
        adjustment = propose_adjustment(uow, principal, reason="Write-off", lines=lines, case_id="case_1")
        assert adjustment.status == "posted"
        uow.rollback()
    assert entries(ledger, cause="adjustment") == []
    with context.uow_factory() as uow:
        adjustment = propose_adjustment(
            uow, principal, reason="Write-off", lines=lines, case_id="case_2", approval_above=50
        )
        assert adjustment.status == "pending_approval"
        small = propose_adjustment(
            uow,
            principal,
            reason="Small write-off",
            lines=[(artisan(artisan_id, "available"), 10), (platform("revenue"), -10)],
            case_id="case_3",
        )
        uow.commit()
    with context.session_factory() as session:
        rows = session.scalars(sa.select(LedgerAdjustment).order_by(LedgerAdjustment.id)).all()
        assert [(row.case_id, row.status) for row in rows] == [
            ("case_2", "pending_approval"),
            ("case_3", "posted"),
        ]
        assert session.get(JournalEntry, small.entry_id) is not None


def test_a_retry_whose_answer_was_lost_replays_only_the_same_adjustment(accounts_app, ledger):
    """Past the idempotency layer (its answer lost), the key finds the adjustment it created:
    replayed for the same reason, lines and currency only; other lines or another currency with the
    key are refused."""
    import datetime as dt

    from services.accounts.service_layer.adjustments import ProposeAdjustment, request_adjustment
    from shared.errors import IdempotencyKeyReuse

    funded_artisan(ledger)
    principal = Principal(ALICE, Role.OPERATOR, ROLE_SCOPES[Role.OPERATOR], token_id="t")
    context = accounts_app.extensions["hirfa"]
    lines = ((marketplace(MARKETPLACE, "commission"), 200), (platform("revenue"), -200))

    def ask(**fields):
        command = ProposeAdjustment(
            **{"reason": "Fix", "lines": lines, "idempotency_key": "adj-lost", **fields}
        )
        return request_adjustment(context.uow_factory(), command, principal, key_ttl=dt.timedelta(hours=1))

    first = ask()
    assert ask(reason=" Fix ", currency="MAD").id == first.id
    other_lines = ((marketplace(MARKETPLACE, "commission"), 300), (platform("revenue"), -300))
    for other in ({"lines": other_lines}, {"currency": "EUR"}, {"lines": lines[::-1]}):
        with pytest.raises(IdempotencyKeyReuse):
            ask(**other)
    assert len(entries(ledger, cause="adjustment")) == 1


def test_an_adjustment_in_another_currency_than_the_ledgers_is_refused(client, auth, ledger):
    # The ledger's accounts are kept in MAD: lines in euros would open euro accounts beside them.
    funded_artisan(ledger)
    body = {"reason": "Commission in euros", "currency": "EUR", "lines": move_commission_to_revenue(300)}
    refused = client.post(URL, json=body, headers=auth())
    assert (refused.status_code, refused.json["code"], refused.json["param"]) == (
        422,
        "unsupported_currency",
        "currency",
    ), refused.json
    french = client.post(URL, json=body, headers={**auth(), "Accept-Language": "fr"}).json
    arabic = client.post(URL, json=body, headers={**auth(), "Accept-Language": "ar"}).json
    assert french["code"] == arabic["code"] == "unsupported_currency"
    assert (
        "EUR" in french["detail"] and "MAD" in french["detail"] and french["detail"] != refused.json["detail"]
    )
    assert "EUR" in arabic["detail"] and arabic["detail"] not in (refused.json["detail"], french["detail"])
    assert entries(ledger, cause="adjustment") == []
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LedgerAdjustment)) == 0

    # In the ledger's own currency, named or not, it posts.
    posted = client.post(URL, json={**body, "currency": "MAD"}, headers=auth())
    assert (posted.status_code, posted.json["status"]) == (201, "posted"), posted.json
    assert_ledger_sound(ledger)
