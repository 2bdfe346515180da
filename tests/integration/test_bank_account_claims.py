"""Bank-account squatting, closed from both sides: linking needs tier 1 and the bank's word on the
holder, and a RIB another artisan holds goes to compliance as a claim instead of blocking its real
owner. Also: the KYC audit log that records all of it cannot be rewritten, on either database.

The partner bank is ``FakeBankPartner``; the sandbox's own verification is tested over real HTTP
in the last tests.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sandbox.bank.app import create_app as create_bank_sandbox_app
from sandbox.bank.app import stop_background_work
from sandbox.bank.config import SandboxBankConfig
from services.onboarding.adapters.banks import HttpBankPartner
from services.onboarding.adapters.orm import Artisan, KycAuditEntry, KycReview
from services.onboarding.domain.ports import HolderVerificationRequest
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.config import PROJECT_ROOT
from shared.db import make_engine, run_migrations, utcnow
from tests.integration import test_bank_accounts_api as bank_accounts_api
from tests.integration.test_bank_accounts_api import (
    ARTISAN_NAME,
    DEFAULT_CHANGED,
    LINKED,
    OTHER_RIB,
    RIB,
    LocalServer,
    all_stored_accounts,
    bank_account_events,
    events,
    link,
    stored,
)

# The bank-account module's fixtures: a FakeBankPartner behind onboarding, tier-1 artisans.
app, bank, client, headers, register = (
    bank_accounts_api.app,
    bank_accounts_api.bank,
    bank_accounts_api.client,
    bank_accounts_api.headers,
    bank_accounts_api.register,
)

CLAIMANT_NAME = "Amina Tazi"
OFFICER = "cli_officer_claims"
OFFICER_2 = "cli_officer_claims_2"


@pytest.fixture
def officer(issue_token):
    def officer_headers(client_id: str = OFFICER) -> dict:
        return {
            "Authorization": "Bearer " + issue_token(Role.COMPLIANCE, client_id=client_id),
            "Idempotency-Key": uuid.uuid4().hex,
        }

    return officer_headers


def decide(client, officer_headers, review_id: str, decision: str, reason: str):
    return client.post(
        f"/v1/kyc-reviews/{review_id}/decision",
        json={"decision": decision, "reason_code": reason, "note": "Bank statement checked."},
        headers=officer_headers,
    )


def listed(client, marketplace_headers, artisan_id: str) -> dict[str, dict]:
    response = client.get(f"/v1/artisans/{artisan_id}/bank-accounts", headers=marketplace_headers())
    return {account["id"]: account for account in response.json["data"]}


def audit_actions(client, officer, artisan_id: str) -> list[str]:
    response = client.get(f"/v1/artisans/{artisan_id}/kyc/audit-log", headers=officer())
    assert response.status_code == 200, response.json
    return [entry["action"] for entry in response.json["data"]]


# --- who may link, and the bank's word on the holder ----------------------------------------------


def test_a_tier_0_artisan_cannot_link_and_the_bank_is_not_asked(app, client, headers, register, bank):
    artisan_id = register(tier=0)
    response = link(client, headers, artisan_id, rib=RIB)

    assert response.status_code == 409
    assert (response.json["code"], response.json["param"]) == ("kyc_tier_too_low", "mode")
    assert all_stored_accounts(app) == []
    assert bank.verifications == []
    assert bank_account_events(app) == []


def test_the_bank_is_asked_about_the_holder_and_its_match_is_recorded(app, client, headers, register, bank):
    artisan_id = register()
    response = link(client, headers, artisan_id, rib=RIB)

    assert response.status_code == 201, response.json
    assert response.json["holder_verification"] == "match"
    (asked,) = bank.verifications
    with app.extensions["hirfa"].session_factory() as session:
        cin = session.get(Artisan, artisan_id).cin
    assert (asked.rib, asked.holder_name, asked.cin) == (RIB, ARTISAN_NAME, cin)
    assert RIB not in repr(asked) and cin not in repr(asked)


def test_a_holder_the_bank_does_not_recognise_is_refused(app, client, headers, register, bank):
    bank.holders[RIB] = "mismatch"
    artisan_id = register()
    response = link(client, headers, artisan_id, rib=RIB)

    assert response.status_code == 422
    assert (response.json["code"], response.json["param"]) == ("account_holder_mismatch", "holder_name")
    assert all_stored_accounts(app) == []
    assert bank_account_events(app) == []


def test_a_bank_that_cannot_verify_leaves_the_name_check_and_marks_the_account(
    app, client, headers, register, bank
):
    bank.holders[RIB] = "unknown"
    artisan_id = register()
    refused = link(client, headers, artisan_id, rib=RIB, holder_name="Karim Benjelloun")
    assert (refused.status_code, refused.json["code"]) == (422, "holder_name_mismatch")

    response = link(client, headers, artisan_id, rib=RIB)
    assert response.status_code == 201, response.json
    assert (response.json["status"], response.json["holder_verification"]) == ("linked", "unknown")
    assert stored(app, response.json["id"]).holder_verification == "unknown"
    (event,) = events(app, LINKED)
    assert event["data"]["bank_account_id"] == response.json["id"]


def test_a_bank_that_cannot_be_reached_links_nothing_and_says_when_to_retry(
    app, client, headers, register, bank
):
    artisan_id = register()
    bank.down = True
    response = link(client, headers, artisan_id, rib=RIB)

    assert response.status_code == 503
    assert response.json["code"] == "bank_verification_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert all_stored_accounts(app) == []

    bank.down = False
    assert link(client, headers, artisan_id, rib=RIB).status_code == 201


# --- a RIB another artisan holds: a claim for compliance --------------------------------------------


@pytest.fixture
def squatted(client, headers, register):
    """A squatter holding the real owner's RIB as their default (and a second account of their own),
    and the real owner's claim on it: (squatter id, owner id, squatted account, claim answer)."""
    squatter = register()
    account = link(client, headers, squatter, rib=RIB).json
    assert link(client, headers, squatter, rib=OTHER_RIB).status_code == 201
    owner = register(full_name=CLAIMANT_NAME)
    claim = link(client, headers, owner, rib=RIB, holder_name=CLAIMANT_NAME, make_default=True)
    return squatter, owner, account, claim


def test_a_rib_held_by_another_artisan_becomes_a_claim_for_compliance(
    app, client, headers, officer, marketplace_headers, squatted
):
    squatter, owner, account, claim = squatted

    assert claim.status_code == 202, claim.json
    assert claim.json["status"] == "pending_review"
    assert (claim.json["id"], claim.json["artisan_id"], claim.json["rib"]) == (account["id"], owner, RIB)
    review_id = claim.json["review_id"]
    (case,) = client.get(
        "/v1/kyc-reviews", query_string={"kind": "bank_account_claim"}, headers=officer()
    ).json["data"]
    assert (case["id"], case["artisan_id"], case["status"]) == (review_id, owner, "open")

    # Until compliance decides, the account stays where it was, and asking again opens no second case.
    assert listed(client, marketplace_headers, squatter)[account["id"]]["is_default"] is True
    assert account["id"] not in listed(client, marketplace_headers, owner)
    again = link(client, headers, owner, rib=RIB, holder_name=CLAIMANT_NAME)
    assert (again.status_code, again.json["review_id"]) == (200, review_id)
    with app.extensions["hirfa"].session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(KycReview)) == 1
    assert len(events(app, LINKED)) == 2  # the squatter's two accounts, nothing for the claim
    assert "bank_account.claimed" in audit_actions(client, officer, squatter)


def test_an_approved_claim_moves_the_account_and_closes_the_previous_link(
    app, client, officer, marketplace_headers, squatted
):
    squatter, owner, account, claim = squatted
    decided = decide(client, officer(), claim.json["review_id"], "approve", "identity_confirmed")
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "approved"

    owners_accounts = listed(client, marketplace_headers, owner)
    moved = owners_accounts[account["id"]]
    assert (moved["status"], moved["rib"], moved["holder_name"], moved["is_default"]) == (
        "linked",
        RIB,
        CLAIMANT_NAME,
        True,
    )
    assert moved["holder_verification"] == "match"  # the bank's answer to the claimant
    squatters_accounts = listed(client, marketplace_headers, squatter)
    assert account["id"] not in squatters_accounts
    (remaining,) = squatters_accounts.values()
    assert (remaining["rib"], remaining["is_default"]) == (OTHER_RIB, True)

    # Payments and accounts follow with today's events: the account (same id) linked to the owner,
    # and the squatter's default passed on to their own account.
    *_, moved_event = events(app, LINKED)
    assert (moved_event["subject"], moved_event["data"]["artisan_id"]) == (owner, owner)
    assert (moved_event["data"]["bank_account_id"], moved_event["data"]["is_default"]) == (
        account["id"],
        True,
    )
    (default_event,) = events(app, DEFAULT_CHANGED)
    assert (default_event["data"]["artisan_id"], default_event["data"]["bank_account_id"]) == (
        squatter,
        remaining["id"],
    )
    assert "bank_account.closed" in audit_actions(client, officer, squatter)
    assert "bank_account.linked" in audit_actions(client, officer, owner)


def test_a_rejected_claim_changes_nothing_but_the_case(app, client, officer, marketplace_headers, squatted):
    squatter, owner, account, claim = squatted
    events_before = bank_account_events(app)
    decided = decide(client, officer(), claim.json["review_id"], "reject", "identity_mismatch")
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "rejected"

    assert listed(client, marketplace_headers, squatter)[account["id"]]["is_default"] is True
    assert listed(client, marketplace_headers, owner) == {}
    assert bank_account_events(app) == events_before
    assert events(app, "onboarding.artisan.kyc_rejected") == []
    with app.extensions["hirfa"].session_factory() as session:
        assert session.get(Artisan, owner).status == "active"
    assert "bank_account.claim_refused" in audit_actions(client, officer, owner)


def test_a_claim_on_an_account_that_changed_hands_meanwhile_cannot_be_approved(
    app, client, headers, register, officer, squatted
):
    _, _, _, claim = squatted
    rival = register(full_name="Amina Tazi Bennani")
    rival_claim = link(client, headers, rival, rib=RIB, holder_name="Amina Tazi Bennani")
    assert rival_claim.status_code == 202, rival_claim.json
    assert (
        decide(client, officer(), rival_claim.json["review_id"], "approve", "identity_confirmed").status_code
        == 200
    )

    stale = decide(client, officer(OFFICER_2), claim.json["review_id"], "approve", "identity_confirmed")
    assert stale.status_code == 409
    assert stale.json["code"] == "bank_account_claim_stale"


# --- the audit log is append-only in the database ---------------------------------------------------


def test_the_database_refuses_to_change_or_delete_audit_entries(app, client, headers, register, officer):
    artisan_id = register()
    link(client, headers, artisan_id, rib=RIB)
    with app.extensions["hirfa"].uow_factory() as uow:
        statements = [sa.update(KycAuditEntry).values(actor="someone else"), sa.delete(KycAuditEntry)]
        if uow.session.get_bind().dialect.name == "postgresql":  # TRUNCATE fires no row trigger
            statements.append(sa.text("TRUNCATE kyc_audit_log"))
        for statement in statements:
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with uow.session.begin_nested():
                    uow.session.execute(statement)
    assert audit_actions(client, officer, artisan_id) == ["bank_account.linked"]


def test_sqlite_refuses_to_change_or_delete_audit_entries_too(tmp_path):
    url = f"sqlite:///{tmp_path / 'onboarding.sqlite3'}"
    run_migrations(PROJECT_ROOT / "services" / "onboarding", url)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session:
            session.add(
                Artisan(
                    id="art_01J00000000000000000000000",
                    full_name=ARTISAN_NAME,
                    cin="BE123456",
                    phone="+212612345678",
                    date_of_birth=utcnow().date().replace(year=1990),
                    region="fes_meknes",
                    craft="pottery",
                )
            )
            session.add(
                KycAuditEntry(
                    id="aud_1",
                    artisan_id="art_01J00000000000000000000000",
                    action="tier.changed",
                    actor="system",
                )
            )
            session.commit()
        for statement in ("UPDATE kyc_audit_log SET actor = 'x'", "DELETE FROM kyc_audit_log"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as connection:
                    connection.exec_driver_sql(statement)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT actor FROM kyc_audit_log").scalars().all() == ["system"]
    finally:
        engine.dispose()


# --- the sandbox bank's answers, through the real HTTP adapter ---------------------------------------


def test_the_http_adapter_reads_the_sandbox_banks_answers(onboarding_config):
    sandbox = create_bank_sandbox_app(
        SandboxBankConfig(
            callback_secret=onboarding_config.bank_callback_secret,
            api_key=onboarding_config.bank_partner_api_key,
        )
    )
    server = LocalServer()
    server.serve(sandbox)
    try:
        adapter = HttpBankPartner.from_config(
            dataclasses.replace(onboarding_config, bank_partner_url=server.url)
        )

        def ask(account_number: str) -> str:
            rib = make_rib("007", "780", account_number)
            return adapter.verify_account_holder(HolderVerificationRequest(rib, ARTISAN_NAME, "BE123456"))

        assert ask("0000000000001234") == "match"
        assert ask("0000000000000004") == "unknown"
        assert ask("0000000000000005") == "mismatch"
    finally:
        stop_background_work(sandbox)
        server.stop()
