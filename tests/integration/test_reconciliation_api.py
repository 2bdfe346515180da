"""``/v1/reconciliation/*`` over HTTP: uploads (idempotent on the file's hash, 422 for a malformed
file), runs, the three-way view, unmatched items, cases and their actions, scopes, and a bank
partner's view bound to its bank."""

from __future__ import annotations

import io
import uuid

import pytest

from services.accounts.service_layer import recon_cases, reconciliation
from services.accounts.service_layer.adjustments import approve_adjustment
from services.accounts.service_layer.recon_readers import UnreadableFile
from shared.auth.principal import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from tests.ledger_support import LedgerDriver
from tests.recon_support import (
    FakeReaders,
    capture,
    domestic_fee,
    entry,
    paid_payments,
    paid_payout,
    run_settlement,
    run_statement,
    settings_with,
    statement,
)

OPERATOR = "cli_test_operator"


@pytest.fixture
def context(accounts_app):
    return accounts_app.extensions["hirfa"]


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def readers(context) -> FakeReaders:
    readers = FakeReaders()
    settings_with(context, readers)
    return readers


@pytest.fixture
def auth(issue_token):
    def headers(role: Role = Role.OPERATOR, client_id: str = OPERATOR, key: bool = False) -> dict:
        h = {"Authorization": "Bearer " + issue_token(role, client_id=client_id)}
        if key:
            h["Idempotency-Key"] = uuid.uuid4().hex
        return h

    return headers


def upload(client, headers, data: bytes, **form):
    body = {"file": (io.BytesIO(data), "settlement-2026-12-06.csv"), "source": "gateway_settlement", **form}
    return client.post(
        "/v1/reconciliation/runs", data=body, headers=headers, content_type="multipart/form-data"
    )


def test_an_uploaded_settlement_file_runs_and_the_same_file_answers_its_run(client, auth, ledger, readers):
    artisan = ledger.artisan_at_tier(3)
    [payment] = paid_payments(ledger, artisan, 10_000)
    data = readers.settlement_file([capture(payment, 10_000), capture("pay_unknown", 900)])

    created = upload(client, auth(), data, gateway="m2t")
    assert created.status_code == 201, created.json
    run = created.json
    assert run["status"] == "completed" and run["bank_code"] == "145" and run["format"] == "csv"
    assert run["counts"]["matched"] == 1 and run["counts"]["missing_in_ledger"] == 1
    assert run["progress"] == {"lines_total": 2, "lines_done": 2, "percent": 100}
    assert len(run["file"]["sha256"]) == 64 and created.headers["Location"].endswith(run["id"])

    again = upload(client, auth(), data, gateway="m2t")
    assert again.status_code == 200 and again.json["id"] == run["id"]

    assert client.get(f"/v1/reconciliation/runs/{run['id']}", headers=auth()).json["id"] == run["id"]
    listed = client.get("/v1/reconciliation/runs", headers=auth()).json
    assert [r["id"] for r in listed["data"]] == [run["id"]] and listed["has_more"] is False


def test_upload_refusals_are_problems(client, auth, context, readers):
    def broken(stream):
        raise UnreadableFile(
            "The settlement file is malformed.", errors=[{"line": 3, "reason": "bad amount"}]
        )
        yield  # pragma: no cover

    settings_with(context, readers, read_settlement=broken)
    refused = upload(client, auth(), b"x", gateway="m2t")
    assert refused.status_code == 422 and refused.json["code"] == "malformed_file"
    assert refused.json["errors"] == [{"line": 3, "reason": "bad amount"}]
    assert client.get("/v1/reconciliation/runs", headers=auth()).json["data"] == []

    assert upload(client, auth(), b"x").json["code"] == "validation_error"  # no gateway
    assert upload(client, auth(), b"x", source="nonsense").status_code == 422
    no_file = client.post(
        "/v1/reconciliation/runs",
        data={"source": "bank_statement"},
        headers=auth(),
        content_type="multipart/form-data",
    )
    assert no_file.status_code == 422 and no_file.json["param"] == "file"


def test_reading_and_acting_need_their_scopes(client, auth, readers):
    marketplace = auth(Role.MARKETPLACE, client_id="cli_test_marketplace")
    assert client.get("/v1/reconciliation/runs", headers=marketplace).status_code == 403
    bank = auth(Role.BANK_PARTNER, client_id="cli_test_bank")
    assert client.get("/v1/reconciliation/cases", headers=bank).status_code == 200
    assert upload(client, bank, b"x", gateway="m2t").status_code == 403


def test_the_three_way_view_shows_each_leg_with_its_proof(client, auth, context, ledger, readers):
    artisan = ledger.artisan_at_tier(3)
    [payment] = paid_payments(ledger, artisan, 10_000)
    settled, _ = run_settlement(context, readers.settlement_file([capture(payment, 10_000, batch="B7")]))
    net = 10_000 - 300
    payout = paid_payout(ledger, artisan, 2_000)
    credited, _ = run_statement(
        context,
        readers.statement_file(
            [statement([entry(net, "B7"), entry(-2_000, payout.id)], closing=net - 2_000)]
        ),
    )

    view = client.get(f"/v1/reconciliation/items?object_id={payment}", headers=auth()).json
    assert view["fully_matched"] is True
    # The payment, its release from the hold, and its settlement.
    assert sorted(leg["cause"] for leg in view["legs"]["ledger"]) == ["payment", "release", "settlement"]
    [acquirer] = view["legs"]["acquirer"]
    assert (acquirer["run_id"], acquirer["state"], acquirer["batch_reference"]) == (
        settled.id,
        "matched",
        "B7",
    )
    [bank_leg] = view["legs"]["bank"]
    assert (bank_leg["run_id"], bank_leg["kind"], bank_leg["state"]) == (credited.id, "batch", "matched")

    payout_view = client.get(f"/v1/reconciliation/items?object_id={payout.id}", headers=auth()).json
    assert payout_view["fully_matched"] is True
    assert [leg["posting_key"].rsplit(":", 1)[-1] for leg in payout_view["legs"]["ledger"]] == [
        "created",
        "paid",
    ]
    assert payout_view["legs"]["bank"][0]["amount"] == -2_000

    missing = client.get("/v1/reconciliation/items?object_id=pay_nothing", headers=auth())
    assert missing.status_code == 404
    assert client.get("/v1/reconciliation/items", headers=auth()).status_code == 422


def test_the_three_way_view_shows_a_fee_mismatch_as_a_break_until_its_case_is_closed(
    client, auth, context, ledger, readers
):
    artisan = ledger.artisan_at_tier(3)
    [payment] = paid_payments(ledger, artisan, 10_000)
    fee = domestic_fee(10_000) + 50  # the acquirer took 50 centimes above its schedule
    settled, _ = run_settlement(
        context, readers.settlement_file([capture(payment, 10_000, fee=fee, batch="B7")])
    )
    run_statement(
        context, readers.statement_file([statement([entry(10_000 - fee, "B7")], closing=10_000 - fee)])
    )

    # Posted as the acquirer took it, and the bank's batch credit matches: but the case is open.
    view = client.get(f"/v1/reconciliation/items?object_id={payment}", headers=auth()).json
    assert [(item["kind"], item["state"]) for item in view["breaks"]] == [("capture", "fee_mismatch")]
    assert view["fully_matched"] is False
    case_id = view["breaks"][0]["case_id"]

    resolved = client.post(
        f"/v1/reconciliation/cases/{case_id}/resolve",
        json={"note": "M2T confirms the surcharge on this card", "run_id": settled.id},
        headers=auth(key=True),
    )
    assert resolved.status_code == 200, resolved.json
    view = client.get(f"/v1/reconciliation/items?object_id={payment}", headers=auth()).json
    assert view["fully_matched"] is True


def test_unmatched_items_after_n_days(client, auth, context, readers):
    run_settlement(
        context, readers.settlement_file([capture("pay_unknown_1", 900), capture("pay_unknown_2", 800)])
    )
    page = client.get("/v1/reconciliation/items?unmatched_after_days=0&limit=1", headers=auth()).json
    assert len(page["data"]) == 1 and page["has_more"] is True
    rest = client.get(
        f"/v1/reconciliation/items?unmatched_after_days=0&starting_after={page['next_cursor']}",
        headers=auth(),
    ).json
    assert [i["object_id"] for i in page["data"] + rest["data"]] == ["pay_unknown_1", "pay_unknown_2"]
    assert client.get("/v1/reconciliation/items?unmatched_after_days=3", headers=auth()).json["data"] == []
    # A break someone resolved is explained: it leaves the list.
    case_id = page["data"][0]["case_id"]
    resolved = client.post(
        f"/v1/reconciliation/cases/{case_id}/resolve",
        json={"note": "a test charge", "run_id": page["data"][0]["run_id"]},
        headers=auth(key=True),
    )
    assert resolved.status_code == 200
    left = client.get("/v1/reconciliation/items?unmatched_after_days=0", headers=auth()).json["data"]
    assert [i["object_id"] for i in left] == ["pay_unknown_2"]


@pytest.mark.parametrize("cursor", ["99999999999999999999", "\u00b2", "1\n", "-1"])
def test_an_items_cursor_that_is_no_item_id_is_refused(client, auth, context, readers, cursor):
    answer = client.get(
        "/v1/reconciliation/items",
        query_string={"unmatched_after_days": 0, "starting_after": cursor},
        headers=auth(),
    )
    assert answer.status_code == 422 and answer.json["param"] == "starting_after"


@pytest.mark.parametrize("item_id", ["99999999999999999999", "\u00b2", "1\n", "-1"])
def test_a_case_resolved_by_what_is_no_item_id_is_refused(client, auth, context, readers, item_id):
    run_settlement(context, readers.settlement_file([capture("pay_unknown_1", 900)]))
    [case] = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    answer = client.post(
        f"/v1/reconciliation/cases/{case['id']}/resolve",
        json={"note": "a test charge", "item_id": item_id},
        headers=auth(key=True),
    )
    assert answer.status_code == 422 and answer.json["code"] == "validation_error", answer.json
    assert client.get(f"/v1/reconciliation/cases/{case['id']}", headers=auth()).json["state"] == "open"


def test_cases_are_listed_filtered_assigned_noted_and_resolved(client, auth, context, ledger, readers):
    artisan = ledger.artisan_at_tier(3)
    [payment] = paid_payments(ledger, artisan, 10_000)
    run, _ = run_settlement(
        context, readers.settlement_file([capture(payment, 10_000, fee=500), capture("pay_unknown", 900)])
    )
    listed = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    assert sorted(c["kind"] for c in listed) == ["fee_mismatch", "missing_in_ledger"]
    fee_case = client.get("/v1/reconciliation/cases?kind=fee_mismatch", headers=auth()).json["data"]
    assert [c["amount"] for c in fee_case] == [{"amount": 200, "currency": "MAD"}]
    assert client.get("/v1/reconciliation/cases?amount_min=300", headers=auth()).json["data"][0]["kind"] == (
        "missing_in_ledger"
    )
    assert client.get("/v1/reconciliation/cases?min_age_days=1", headers=auth()).json["data"] == []
    assert client.get("/v1/reconciliation/cases?state=bogus", headers=auth()).status_code == 422
    case_id = fee_case[0]["id"]

    assigned = client.post(
        f"/v1/reconciliation/cases/{case_id}/assign", json={"assignee": "amina"}, headers=auth()
    )
    assert assigned.status_code == 200 and assigned.json["state"] == "investigating"
    noted = client.post(
        f"/v1/reconciliation/cases/{case_id}/note", json={"note": "M2T asked"}, headers=auth(key=True)
    )
    assert noted.json["notes"] == ["M2T asked"]
    resolved = client.post(
        f"/v1/reconciliation/cases/{case_id}/resolve",
        json={"note": "M2T's promo fee", "run_id": run.id},
        headers=auth(key=True),
    )
    assert resolved.status_code == 200 and resolved.json["state"] == "resolved"
    assert resolved.json["resolution"] == {"run_id": run.id, "note": "M2T's promo fee"}
    again = client.post(
        f"/v1/reconciliation/cases/{case_id}/resolve",
        json={"note": "x", "run_id": run.id},
        headers=auth(key=True),
    )
    assert again.status_code == 409 and again.json["code"] == "case_state_conflict"
    detail = client.get(f"/v1/reconciliation/cases/{case_id}", headers=auth()).json
    assert [h["action"] for h in detail["history"]] == ["opened", "assigned", "noted", "resolved"]
    assert detail["items"][0]["object_id"] == payment
    assert client.get("/v1/reconciliation/cases/rc_nothing", headers=auth()).status_code == 404


def test_a_runs_cases_are_listed_by_run_page_after_page(client, auth, context, readers):
    first, _ = run_settlement(
        context, readers.settlement_file([capture(f"pay_first_{n}", 900 + n) for n in range(3)])
    )
    second, _ = run_settlement(context, readers.settlement_file([capture("pay_second", 700)]))

    def cases_of(run_id: str) -> list[dict]:
        found, cursor = [], None
        while True:
            page = client.get(
                "/v1/reconciliation/cases",
                query_string={"run_id": run_id, "limit": 1, "starting_after": cursor},
                headers=auth(),
            )
            assert page.status_code == 200, page.json
            found += page.json["data"]
            if not page.json["has_more"]:
                return found
            cursor = page.json["next_cursor"]

    firsts = cases_of(first.id)
    assert [c["object_id"] for c in firsts] == [f"pay_first_{n}" for n in range(3)]
    assert {c["run_id"] for c in firsts} == {first.id}
    assert [c["object_id"] for c in cases_of(second.id)] == ["pay_second"]
    # With the other filters, and a run that opened none.
    assert [
        c["object_id"]
        for c in client.get(
            "/v1/reconciliation/cases", query_string={"run_id": first.id, "amount_min": 902}, headers=auth()
        ).json["data"]
    ] == ["pay_first_2"]
    assert cases_of("rr_01JD8Z6W5Q0T2C7S9K3M4N5P6R") == []
    for bad in ("rc_01JD8Z6W5Q0T2C7S9K3M4N5P6R", "rr_x", "rr_01JD8Z6W5Q0T2C7S9K3M4N5P6R\n", ""):
        refused = client.get("/v1/reconciliation/cases", query_string={"run_id": bad}, headers=auth())
        assert (refused.status_code, refused.json["code"]) == (422, "validation_error"), bad
        assert refused.json["errors"][0]["param"] == "run_id"


def test_a_write_off_posts_an_adjustment_and_the_case_is_written_off(client, auth, context, ledger, readers):
    run_settlement(context, readers.settlement_file([capture("pay_unknown", 900)]))
    [case] = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    lines = [
        {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": 900},
        {"owner_type": "platform", "owner_id": "platform", "kind": "revenue", "amount": -900},
    ]

    written = client.post(
        f"/v1/reconciliation/cases/{case['id']}/write-off",
        json={"reason": "acquirer settled a test charge", "lines": lines},
        headers=auth(key=True),
    )

    assert written.status_code == 200, written.json
    assert written.json["state"] == "written_off"
    resolution = written.json["resolution"]
    assert resolution["adjustment_id"].startswith("adj_") and resolution["entry_id"].startswith("je_")
    assert ledger.shown("platform", "platform", "revenue") == 900
    assert [h["action"] for h in written.json["history"]] == ["opened", "write_off_proposed", "written_off"]
    again = client.post(
        f"/v1/reconciliation/cases/{case['id']}/write-off",
        json={"reason": "again", "lines": lines},
        headers=auth(key=True),
    )
    assert again.status_code == 409


def test_a_write_off_takes_whole_minor_units_only(client, auth, context, readers):
    run_settlement(context, readers.settlement_file([capture("pay_unknown", 900)]))
    [case] = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    for amount in ("900", 900.0, True):
        lines = [
            {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": amount},
            {"owner_type": "platform", "owner_id": "platform", "kind": "revenue", "amount": -900},
        ]
        refused = client.post(
            f"/v1/reconciliation/cases/{case['id']}/write-off",
            json={"reason": "test", "lines": lines},
            headers=auth(key=True),
        )
        assert refused.status_code == 422 and refused.json["code"] == "validation_error", amount
    assert client.get(f"/v1/reconciliation/cases/{case['id']}", headers=auth()).json["state"] == "open"


def test_a_write_off_above_the_threshold_waits_for_a_second_operator(client, auth, context, readers):
    run_settlement(context, readers.settlement_file([capture("pay_unknown", 250_000)]))
    [case] = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    lines = [
        {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": 250_000},
        {"owner_type": "platform", "owner_id": "platform", "kind": "revenue", "amount": -250_000},
    ]
    proposed = client.post(
        f"/v1/reconciliation/cases/{case['id']}/write-off",
        json={"reason": "large unknown settlement", "lines": lines},
        headers=auth(key=True),
    )
    assert proposed.status_code == 200, proposed.json
    assert proposed.json["state"] == "investigating"
    [step] = [h for h in proposed.json["history"] if h["action"] == "write_off_proposed"]
    assert step["detail"]["status"] == "pending_approval"
    assert recon_cases.close_approved_write_offs(context.uow_factory) == 0

    second = Principal("cli_second_operator", Role.OPERATOR, ROLE_SCOPES[Role.OPERATOR], "t")
    approve_adjustment(context.uow_factory(), step["detail"]["adjustment_id"], second)
    # The approval closes the case in its own transaction: the worker's pass finds nothing left.
    assert recon_cases.close_approved_write_offs(context.uow_factory) == 0
    closed = client.get(f"/v1/reconciliation/cases/{case['id']}", headers=auth()).json
    assert closed["state"] == "written_off"
    assert closed["resolution"]["adjustment_id"] == step["detail"]["adjustment_id"]
    assert closed["history"][-1]["actor"] == "cli_second_operator"
    assert recon_cases.close_approved_write_offs(context.uow_factory) == 0


def test_without_adjustments_a_write_off_is_unavailable_and_adjustment_posted_closes_a_case(
    client, auth, context, readers
):
    settings_with(context, readers, propose_adjustment=None)
    run_settlement(context, readers.settlement_file([capture("pay_unknown", 900)]))
    [case] = client.get("/v1/reconciliation/cases", headers=auth()).json["data"]
    unavailable = client.post(
        f"/v1/reconciliation/cases/{case['id']}/write-off", json={"reason": "test"}, headers=auth(key=True)
    )
    assert unavailable.status_code == 503 and unavailable.json["code"] == "adjustments_unavailable"
    with context.uow_factory() as uow:
        recon_cases.adjustment_posted(uow, "adj_1", case["id"], "je_1", "cli_ops_2")
        recon_cases.adjustment_posted(uow, "adj_1", case["id"], "je_1", "cli_ops_2")  # twice: no change
        uow.commit()
    detail = client.get(f"/v1/reconciliation/cases/{case['id']}", headers=auth()).json
    assert detail["state"] == "written_off" and [h["action"] for h in detail["history"]] == [
        "opened",
        "written_off",
    ]


def test_a_bank_partner_sees_only_its_own_banks_runs_and_cases(context, ledger, readers):
    run, _ = run_settlement(context, readers.settlement_file([capture("pay_unknown", 900)]))
    ours = Principal("cli_bank_145", Role.BANK_PARTNER, ROLE_SCOPES[Role.BANK_PARTNER], "t", bank_code="145")
    theirs = Principal(
        "cli_bank_007", Role.BANK_PARTNER, ROLE_SCOPES[Role.BANK_PARTNER], "t", bank_code="007"
    )
    assert reconciliation.get_run(context.uow_factory(), run.id, ours)["id"] == run.id
    with pytest.raises(Exception) as hidden:
        reconciliation.get_run(context.uow_factory(), run.id, theirs)
    assert getattr(hidden.value, "status", None) == 404
    assert reconciliation.list_runs(context.uow_factory(), theirs, limit=10, starting_after=None).data == []
    [case] = recon_cases.list_cases(context.uow_factory(), ours, limit=10, starting_after=None).data
    assert recon_cases.list_cases(context.uow_factory(), theirs, limit=10, starting_after=None).data == []
    with pytest.raises(Exception) as hidden:
        recon_cases.get_case(context.uow_factory(), case["id"], theirs)
    assert getattr(hidden.value, "status", None) == 404
    with pytest.raises(Exception) as hidden:
        reconciliation.three_way(context.uow_factory(), "pay_unknown", theirs)
    assert getattr(hidden.value, "status", None) == 404
    # A bank partner whose token names no bank sees nothing at all.
    unbound = Principal("cli_bank", Role.BANK_PARTNER, ROLE_SCOPES[Role.BANK_PARTNER], "t")
    assert reconciliation.list_runs(context.uow_factory(), unbound, limit=10, starting_after=None).data == []
