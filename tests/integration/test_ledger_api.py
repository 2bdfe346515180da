"""The ledger's read API: artisan statements with running balances, journal entries, the integrity
check (including a balance corrupted behind the ledger's back) and ledger cases; who may see what."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount
from services.accounts.service_layer.money_events import release_due_holds
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.db import utcnow
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.ids import new_id
from tests.integration.conftest import OTHER_MARKETPLACE
from tests.ledger_support import (
    MARKETPLACE,
    LedgerDriver,
    bank_account_linked,
    dispute_closed,
    dispute_opened,
    payment_succeeded,
    refund_succeeded,
)

OPERATOR = "cli_test_operator"
BANK_PARTNER = "cli_test_bank"


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def auth(issue_token):
    """auth(role, client_id) -> request headers with a bearer token for that caller."""
    default_clients = {
        Role.MARKETPLACE: MARKETPLACE,
        Role.OPERATOR: OPERATOR,
        Role.BANK_PARTNER: BANK_PARTNER,
    }

    def headers(role: Role, client_id: str | None = None) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(role, client_id=client_id or default_clients[role])}

    return headers


def release_all(ledger: LedgerDriver) -> int:
    return release_due_holds(ledger.context.uow_factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))


def get_ok(client, path: str, headers: dict, **query) -> dict:
    response = client.get(path, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_problem(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    problem = response.get_json()
    assert problem["code"] == code
    if param is not None:
        assert problem["param"] == param
    return problem


def amounts(statement: dict) -> list[int]:
    return [item["amount"]["amount"] for item in statement["data"]]


def running(statement: dict) -> list[int]:
    return [item["running_balance"]["amount"] for item in statement["data"]]


@pytest.fixture
def history(ledger) -> dict:
    """Two payments, a refund from pending, both holds released, then a refund from available.

    pending:   +9,000  +4,500  -3,600  -5,400 (release 1)  -4,500 (release 2)
    available: +5,400 (release 1)  +4,500 (release 2)  -1,800
    """
    artisan_id = ledger.artisan_at_tier(3)
    first, second = payment_succeeded(artisan_id, 10_000, 1_000), payment_succeeded(artisan_id, 5_000, 500)
    ledger.deliver(first)
    ledger.deliver(second)
    early_refund = refund_succeeded(artisan_id, first.data["payment_id"], 4_000, 400)
    ledger.deliver(early_refund)
    assert release_all(ledger) == 2  # in payment id order: the first payment's hold, then the second's
    late_refund = refund_succeeded(artisan_id, second.data["payment_id"], 2_000, 200)
    ledger.deliver(late_refund)
    return {
        "artisan_id": artisan_id,
        "payments": [first.data["payment_id"], second.data["payment_id"]],
        "refunds": [early_refund.data["refund_id"], late_refund.data["refund_id"]],
    }


# --- statements -----------------------------------------------------------------------------------


def test_a_statement_lists_every_movement_with_its_running_balance(client, auth, history):
    artisan_id, (pay_1, pay_2), (refund_1, refund_2) = (
        history["artisan_id"],
        history["payments"],
        history["refunds"],
    )
    path = f"/v1/artisans/{artisan_id}/transactions"

    pending = get_ok(client, path, auth(Role.MARKETPLACE), account="pending")
    assert (pending["object"], pending["artisan_id"], pending["account"], pending["currency"]) == (
        "statement",
        artisan_id,
        "pending",
        "MAD",
    )
    assert pending["opening_balance"] == {"amount": 0, "currency": "MAD"}
    assert [(item["cause"], item["cause_id"]) for item in pending["data"]] == [
        ("payment", pay_1),
        ("payment", pay_2),
        ("refund", refund_1),
        ("release", pay_1),
        ("release", pay_2),
    ]
    assert amounts(pending) == [9_000, 4_500, -3_600, -5_400, -4_500]
    assert running(pending) == [9_000, 13_500, 9_900, 4_500, 0]
    assert (pending["has_more"], pending["next_cursor"]) == (False, None)
    first = pending["data"][0]
    assert first["object"] == "statement_line" and first["entry_id"].startswith("je_")
    assert first["description"].startswith(f"Payment {pay_1}")
    assert first["running_balance"]["currency"] == "MAD"

    available = get_ok(client, path, auth(Role.MARKETPLACE))  # the available account by default
    assert available["account"] == "available"
    assert [(item["cause"], item["cause_id"]) for item in available["data"]] == [
        ("release", pay_1),
        ("release", pay_2),
        ("refund", refund_2),
    ]
    assert amounts(available) == [5_400, 4_500, -1_800]
    assert running(available) == [5_400, 9_900, 8_100]

    balance = get_ok(client, f"/v1/artisans/{artisan_id}/balance", auth(Role.MARKETPLACE))
    assert (balance["pending"]["amount"], balance["available"]["amount"]) == (0, 8_100)


def test_pages_carry_the_running_balance_across(client, auth, history):
    path = f"/v1/artisans/{history['artisan_id']}/transactions"
    headers = auth(Role.OPERATOR)
    pages, cursor = [], None
    while True:
        page = get_ok(
            client,
            path,
            headers,
            account="pending",
            limit=2,
            **({"starting_after": cursor} if cursor else {}),
        )
        pages.append(page)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
        assert cursor == page["data"][-1]["id"]

    assert [page["opening_balance"]["amount"] for page in pages] == [0, 13_500, 4_500]
    assert [amounts(page) for page in pages] == [[9_000, 4_500], [-3_600, -5_400], [-4_500]]
    assert [running(page) for page in pages] == [[9_000, 13_500], [9_900, 4_500], [0]]
    whole = get_ok(client, path, headers, account="pending")
    assert [item["id"] for page in pages for item in page["data"]] == [item["id"] for item in whole["data"]]


def test_a_date_range_starts_from_the_balance_at_its_start(client, auth, history):
    path = f"/v1/artisans/{history['artisan_id']}/transactions"
    headers = auth(Role.MARKETPLACE)
    whole = get_ok(client, path, headers, account="pending")["data"]
    posted = [item["posted_at"] for item in whole]
    assert posted == sorted(posted)

    # `from` is inclusive, `to` exclusive.
    middle = get_ok(client, path, headers, account="pending", **{"from": posted[1], "to": posted[3]})
    assert [item["id"] for item in middle["data"]] == [whole[1]["id"], whole[2]["id"]]
    assert middle["opening_balance"]["amount"] == 9_000
    assert running(middle) == [13_500, 9_900]

    # A page inside a range: the cursor and the range's start together decide the opening balance.
    second_page = get_ok(
        client,
        path,
        headers,
        account="pending",
        limit=1,
        starting_after=middle["data"][0]["id"],
        **{"from": posted[1], "to": posted[3]},
    )
    assert (second_page["opening_balance"]["amount"], running(second_page), second_page["has_more"]) == (
        13_500,
        [9_900],
        False,
    )

    until = get_ok(client, path, headers, account="pending", to=posted[2])
    assert (until["opening_balance"]["amount"], running(until)) == (0, [9_000, 13_500])

    later = (dt.datetime.fromisoformat(posted[-1]) + dt.timedelta(seconds=1)).isoformat()
    after_everything = get_ok(client, path, headers, account="pending", **{"from": later})
    assert (after_everything["data"], after_everything["opening_balance"]["amount"]) == ([], 0)
    available_later = get_ok(client, path, headers, **{"from": later})
    assert (available_later["data"], available_later["opening_balance"]["amount"]) == ([], 8_100)


@pytest.mark.parametrize(
    "query, param",
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-01T00:00:00"}, "from"),  # no UTC offset: ambiguous, refused
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"account": "savings"}, "account"),
        ({"currency": "XYZ"}, "currency"),
        ({"limit": 0}, "limit"),
        ({"starting_after": "not-a-line"}, "starting_after"),
        ({"starting_after": "9" * 30}, "starting_after"),
    ],
)
def test_bad_statement_parameters_are_422_naming_the_parameter(client, auth, ledger, query, param):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 1_000, 100))
    response = client.get(
        f"/v1/artisans/{artisan_id}/transactions", headers=auth(Role.MARKETPLACE), query_string=query
    )
    assert_problem(response, 422, "validation_error", param)


def test_a_cursor_from_another_account_is_refused(client, auth, history):
    path = f"/v1/artisans/{history['artisan_id']}/transactions"
    pending_line = get_ok(client, path, auth(Role.MARKETPLACE), account="pending")["data"][0]["id"]
    response = client.get(path, headers=auth(Role.MARKETPLACE), query_string={"starting_after": pending_line})
    assert_problem(response, 422, "validation_error", "starting_after")


def test_an_artisan_reads_its_own_statement_and_balance_only(client, auth, ledger):
    artisan_id, other_id = ledger.artisan_at_tier(3), ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 2_000, 200))
    ledger.deliver(payment_succeeded(other_id, 3_000, 300))
    headers = auth(Role.ARTISAN, client_id=artisan_id)

    statement = get_ok(client, f"/v1/artisans/{artisan_id}/transactions", headers, account="pending")
    assert running(statement) == [1_800]
    assert get_ok(client, f"/v1/artisans/{artisan_id}/balance", headers)["pending"]["amount"] == 1_800

    for path in (f"/v1/artisans/{other_id}/transactions", f"/v1/artisans/{other_id}/balance"):
        assert_problem(client.get(path, headers=headers), 404, "resource_not_found", "artisan_id")


def test_a_marketplace_sees_only_its_own_artisans(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 2_000, 200))
    other = auth(Role.MARKETPLACE, client_id=OTHER_MARKETPLACE)
    for path in (f"/v1/artisans/{artisan_id}/transactions", f"/v1/artisans/{artisan_id}/balance"):
        assert_problem(client.get(path, headers=other), 404, "resource_not_found", "artisan_id")
        assert client.get(path, headers=auth(Role.MARKETPLACE)).status_code == 200


def test_an_artisan_without_accounts_has_no_statement(client, auth):
    response = client.get(f"/v1/artisans/{new_id('art')}/transactions", headers=auth(Role.OPERATOR))
    assert_problem(response, 404, "resource_not_found", "artisan_id")


# --- journal entries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, path",
    [
        (Role.MARKETPLACE, "/v1/journal-entries"),
        (Role.ARTISAN, "/v1/journal-entries"),
        (Role.MARKETPLACE, "/v1/journal-entries/je_01JD0000000000000000000000"),
        (Role.MARKETPLACE, "/v1/ledger/integrity"),
        (Role.BANK_PARTNER, "/v1/ledger/integrity"),
        (Role.BANK_PARTNER, "/v1/ledger/cases"),
        (Role.MARKETPLACE, "/v1/ledger/cases"),
    ],
)
def test_callers_without_the_scope_get_403(client, auth, role, path):
    headers = auth(role, client_id="art_01JD0000000000000000000000" if role == Role.ARTISAN else None)
    assert_problem(client.get(path, headers=headers), 403, "insufficient_scope")


def test_reading_the_ledger_needs_a_token(client):
    for path in (
        "/v1/journal-entries",
        "/v1/ledger/integrity",
        "/v1/ledger/cases",
        "/v1/artisans/art_01JD0000000000000000000000/transactions",
    ):
        assert_problem(client.get(path), 401, "unauthenticated")


def test_a_bank_partner_lists_journal_entries_with_filters(client, auth, ledger):
    artisan_id, other_id = ledger.artisan_at_tier(3), ledger.artisan_at_tier(3)
    # Both are paid at the bank partner's bank (145): a bank partner sees only such artisans.
    for paid_here in (artisan_id, other_id):
        ledger.deliver(bank_account_linked(paid_here, make_rib("145", "780", "0000001234567890")))
    payment = payment_succeeded(artisan_id, 10_000, 1_000)
    ledger.deliver(payment)
    ledger.deliver(payment_succeeded(other_id, 7_000, 700))
    ledger.deliver(payment_succeeded(artisan_id, 3_000, 300))
    refund = refund_succeeded(artisan_id, payment.data["payment_id"], 1_000, 100)
    ledger.deliver(refund)
    headers = auth(Role.BANK_PARTNER)

    everything = get_ok(client, "/v1/journal-entries", headers)
    assert len(everything["data"]) == 4 and everything["has_more"] is False
    ids = [entry["id"] for entry in everything["data"]]
    assert ids == sorted(ids)

    # The artisan's three entries, two per page.
    seen, cursor = [], None
    while True:
        page = get_ok(
            client,
            "/v1/journal-entries",
            headers,
            artisan_id=artisan_id,
            limit=2,
            **({"starting_after": cursor} if cursor else {}),
        )
        seen.extend(page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert [entry["cause"] for entry in seen] == ["payment", "payment", "refund"]
    assert {entry["artisan_id"] for entry in seen} == {artisan_id}

    [refund_entry] = get_ok(client, "/v1/journal-entries", headers, cause="refund")["data"]
    assert (refund_entry["object"], refund_entry["cause_id"], refund_entry["cause_event_id"]) == (
        "journal_entry",
        refund.data["refund_id"],
        refund.id,
    )
    assert refund_entry["posting_key"] == f"refund:{refund.data['refund_id']}:succeeded"
    assert {
        (line["owner_type"], line["owner_id"], line["kind"], line["amount"], line["currency"])
        for line in refund_entry["lines"]
    } == {
        ("platform", "platform", "gateway_receivable:m2t", -1_000, "MAD"),
        ("marketplace", MARKETPLACE, "commission", 100, "MAD"),
        ("artisan", artisan_id, "pending", 900, "MAD"),
    }
    assert all(line["account_id"].startswith("acct_") for line in refund_entry["lines"])
    assert get_ok(client, "/v1/journal-entries", headers, cause="refund", artisan_id=other_id)["data"] == []

    # Time filters: `from` inclusive, `to` exclusive.
    posted = [entry["posted_at"] for entry in everything["data"]]
    window = get_ok(client, "/v1/journal-entries", headers, **{"from": posted[1], "to": posted[3]})
    assert [entry["id"] for entry in window["data"]] == ids[1:3]

    one = get_ok(client, f"/v1/journal-entries/{refund_entry['id']}", headers)
    assert one == refund_entry
    assert get_ok(client, f"/v1/journal-entries/{ids[0]}", auth(Role.OPERATOR))["cause"] == "payment"


def test_an_unknown_journal_entry_is_404_and_bad_filters_422(client, auth):
    headers = auth(Role.OPERATOR)
    assert_problem(
        client.get("/v1/journal-entries/je_01JD0000000000000000000000", headers=headers),
        404,
        "resource_not_found",
        "entry_id",
    )
    assert_problem(
        client.get("/v1/journal-entries", headers=headers, query_string={"from": "last week"}),
        422,
        "validation_error",
        "from",
    )
    assert_problem(
        client.get("/v1/journal-entries", headers=headers, query_string={"limit": 1000}),
        422,
        "validation_error",
        "limit",
    )


# --- integrity ------------------------------------------------------------------------------------


def mixed_postings(ledger: LedgerDriver) -> str:
    """Payments, a refund covered partly by the reserve, a won and a lost dispute, releases and a
    refused payment (a case). Returns the tier-3 artisan's id."""
    artisan_id, capped_id = ledger.artisan_at_tier(3), ledger.artisan_at_tier(1)
    first, second = payment_succeeded(artisan_id, 10_000, 1_000), payment_succeeded(artisan_id, 8_000, 800)
    ledger.deliver(first)
    ledger.deliver(second)
    won = dispute_opened(artisan_id, second.data["payment_id"], 3_000)
    lost = dispute_opened(artisan_id, second.data["payment_id"], 2_000)
    ledger.deliver(won)
    ledger.deliver(lost)
    release_all(ledger)
    ledger.deliver(
        dispute_closed(artisan_id, second.data["payment_id"], won.data["dispute_id"], 3_000, "won")
    )
    ledger.deliver(
        dispute_closed(artisan_id, second.data["payment_id"], lost.data["dispute_id"], 2_000, "lost")
    )
    release_all(ledger)
    ledger.deliver(refund_succeeded(artisan_id, first.data["payment_id"], 10_000, 1_000))
    ledger.deliver(refund_succeeded(artisan_id, second.data["payment_id"], 6_000, 600))  # reserve covers part
    ledger.deliver(payment_succeeded(capped_id, 15_000, 0))
    ledger.deliver(payment_succeeded(capped_id, 10_000, 0))  # over the tier-1 cap: a case
    return artisan_id


def account_id(ledger: LedgerDriver, owner_type: str, owner_id: str, kind: str) -> str:
    with ledger.context.session_factory() as session:
        return session.scalar(
            sa.select(LedgerAccount.id).where(
                LedgerAccount.owner_type == owner_type,
                LedgerAccount.owner_id == owner_id,
                LedgerAccount.kind == kind,
            )
        )


def test_integrity_is_ok_after_a_mix_of_postings(client, auth, ledger):
    mixed_postings(ledger)
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") < 0  # the shortfall really happened
    report = get_ok(client, "/v1/ledger/integrity", auth(Role.OPERATOR))
    with ledger.context.session_factory() as session:
        accounts = session.scalar(sa.select(sa.func.count()).select_from(LedgerAccount))
        entries = session.scalar(sa.select(sa.func.count()).select_from(JournalEntry))
    assert (report["object"], report["ok"], report["differences"]) == ("ledger_integrity", True, [])
    assert (report["accounts_checked"], report["entries_checked"]) == (accounts, entries)
    assert entries >= 10
    checked_at = dt.datetime.fromisoformat(report["checked_at"])
    assert abs(checked_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.corrupts_ledger
def test_integrity_catches_a_balance_corrupted_in_the_database(client, auth, ledger):
    mixed_postings(ledger)
    receivable = account_id(ledger, "platform", "platform", "gateway_receivable:m2t")
    stored = ledger.shown("platform", "platform", "gateway_receivable:m2t")
    # ledger_accounts has no immutability trigger (balances change with every posting), so a
    # careless UPDATE goes through: exactly what the integrity check exists to notice.
    with ledger.context.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"), {"id": receivable}
        )

    report = get_ok(client, "/v1/ledger/integrity", auth(Role.OPERATOR))
    assert report["ok"] is False
    assert report["differences"] == [
        {
            "check": "stored_balance_matches_lines",
            "account_id": receivable,
            "currency": "MAD",
            "expected": stored,
            "actual": stored + 1,
        }
    ]


@pytest.mark.corrupts_ledger
def test_integrity_catches_unbalanced_and_one_line_entries_and_negative_artisans(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 5_000, 500))
    pending = account_id(ledger, "artisan", artisan_id, "pending")
    available = account_id(ledger, "artisan", artisan_id, "available")
    commission = account_id(ledger, "marketplace", MARKETPLACE, "commission")
    one_line, overdrawn = new_id("je"), new_id("je")
    # Written behind the posting code's back (inserting is allowed; only changes are refused).
    with ledger.context.session_factory() as session:
        session.add(
            JournalEntry(
                id=one_line,
                cause="adjustment",
                cause_id="manual-1",
                posting_key="manual:1",
                description="a hand-made single line",
            )
        )
        session.add(
            JournalEntry(
                id=overdrawn,
                cause="adjustment",
                cause_id="manual-2",
                posting_key="manual:2",
                description="balanced, but takes the artisan below zero",
            )
        )
        session.flush()
        # Each line's balance_after follows its account's lines, so only the rules below are broken.
        for entry, account, amount, after in (
            (one_line, commission, -7, -507),
            (overdrawn, available, 300, 300),
            (overdrawn, pending, -300, -4_800),
        ):
            session.add(
                JournalLine(
                    entry_id=entry,
                    account_id=account,
                    amount=amount,
                    currency="MAD",
                    posted_at=utcnow(),
                    balance_after=after,
                )
            )
        # Stored balances follow the second entry, so only its artisan rule is broken.
        session.execute(sa.update(LedgerAccount).where(LedgerAccount.id == available).values(balance=300))
        session.execute(sa.update(LedgerAccount).where(LedgerAccount.id == pending).values(balance=-4_800))
        session.commit()

    report = get_ok(client, "/v1/ledger/integrity", auth(Role.OPERATOR))
    assert report["ok"] is False
    by_check = sorted(report["differences"], key=lambda difference: difference["check"])
    assert by_check == [
        {
            "check": "artisan_balance_not_negative",
            "account_id": available,
            "currency": "MAD",
            "expected": 0,
            "actual": -300,
        },
        {"check": "entry_balanced", "entry_id": one_line, "currency": "MAD", "expected": 0, "actual": -7},
        {"check": "entry_has_two_lines", "entry_id": one_line, "expected": 2, "actual": 1},
        {"check": "lines_sum_to_zero", "currency": "MAD", "expected": 0, "actual": -7},
        {
            "check": "stored_balance_matches_lines",
            "account_id": commission,
            "currency": "MAD",
            "expected": -507,
            "actual": -500,
        },
    ]
    assert report["entries_checked"] == 3


# --- cases ----------------------------------------------------------------------------------------


def test_cases_are_listed_after_a_cap_violation(client, auth, ledger):
    capped_id, other_id = ledger.artisan_at_tier(1), ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(capped_id, 15_000, 0))
    over = [payment_succeeded(capped_id, 10_000, 0), payment_succeeded(capped_id, 6_000, 0)]
    for event in over:
        ledger.deliver(event)
    headers = auth(Role.OPERATOR)

    listed = get_ok(client, "/v1/ledger/cases", headers, status="waiting", artisan_id=capped_id)
    assert [
        (case["object"], case["kind"], case["status"], case["cause"], case["cause_id"], case["event_id"])
        for case in listed["data"]
    ] == [
        ("ledger_case", "tier_cap_exceeded", "waiting", "payment", event.data["payment_id"], event.id)
        for event in over
    ]
    details = listed["data"][0]["details"]
    assert (details["cap"], details["total_after"], details["artisan_id"]) == (20_000, 25_000, capped_id)
    assert details["posting_key"] == f"payment:{over[0].data['payment_id']}:succeeded"

    first_page = get_ok(client, "/v1/ledger/cases", headers, limit=1)
    second_page = get_ok(
        client, "/v1/ledger/cases", headers, limit=1, starting_after=first_page["next_cursor"]
    )
    assert [first_page["data"][0]["id"], second_page["data"][0]["id"]] == [
        case["id"] for case in listed["data"]
    ]
    assert second_page["has_more"] is False
    assert get_ok(client, "/v1/ledger/cases", headers, artisan_id=other_id)["data"] == []
    assert get_ok(client, "/v1/ledger/cases", headers, status="resolved")["data"] == []
