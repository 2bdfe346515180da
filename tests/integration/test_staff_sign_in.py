"""Staff sign in to onboarding with email, password and TOTP, and act with their own token.

Enrolment of the first admin, one answer for every wrong credential, no replayed code, lockout,
secrets at rest and out of the logs; then the staff token at work: a compliance officer decides a
KYC review under four-eyes by person, an operator requests a payout in accounts, and a staff
member without the compliance role gets no review.
"""

from __future__ import annotations

import datetime as dt
import logging

import jwt
import pyotp
import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import StaffMember, StaffRefreshToken
from services.onboarding.cli import DEMO_STAFF, DEMO_STAFF_PASSWORD
from services.onboarding.service_layer.documents import rewrap_all_documents
from services.onboarding.service_layer.screening import load_list
from services.onboarding.service_layer.staff import (
    create_staff,
    disable_staff,
    ensure_demo_staff,
    reset_second_factor,
    rewrap_totp_secrets,
)
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.errors import Conflict
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank
from tests.integration.test_kyc_api import JPEG, PDF, PNG, SAMPLE_LIST, Kyc, decide, open_reviews
from tests.integration.test_payouts import PARTNER_BANK, ready_artisan, request_payout
from tests.ledger_support import LedgerDriver
from tests.support import ROOT

PASSWORD = "correct horse battery staple"
SIGN_IN = "/v1/staff-sessions"
AMINA, YOUSSEF, SALMA, KARIM = (email for email, *_ in DEMO_STAFF)
SECRETS = {email: secret for email, _name, _roles, secret in DEMO_STAFF}


@pytest.fixture
def accounts_bank_partners() -> PartnerRegistry:
    return PartnerRegistry({PARTNER_BANK: FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)})


@pytest.fixture
def context(onboarding_app):
    return onboarding_app.extensions["hirfa"]


@pytest.fixture
def client(onboarding):
    return onboarding


@pytest.fixture
def demo_staff(context):
    """The demo staff, enrolled with their published secrets (as `hirfa stack init` makes them)."""
    for email, name, roles, secret in DEMO_STAFF:
        ensure_demo_staff(
            context.uow_factory(),
            email=email,
            name=name,
            roles=list(roles),
            password=DEMO_STAFF_PASSWORD,
            totp_secret=secret,
            policy=context.staff,
        )


def code(secret: str, steps_ahead: int = 0) -> str:
    """The authenticator's code now, or ``steps_ahead`` 30-second steps on (still within the window)."""
    return pyotp.TOTP(secret).at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * steps_ahead))


def sign_in(client, email: str, password: str = DEMO_STAFF_PASSWORD, totp_code: str | None = None, **kw):
    body = {"email": email, "password": password}
    body["totp_code"] = code(SECRETS[email], **kw) if totp_code is None else totp_code
    return client.post(SIGN_IN, json=body)


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def bearer(response, idempotency_key: str | None = None) -> dict:
    assert response.status_code == 200, response.json
    headers = {"Authorization": "Bearer " + response.json["access_token"]}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def member(context, email: str) -> StaffMember:
    with context.session_factory() as session:
        return session.scalar(sa.select(StaffMember).where(StaffMember.email == email))


# --- enrolment and sign-in ---------------------------------------------------------------------------


def test_the_first_admin_enrols_an_authenticator_then_signs_in(client, context):
    created = create_staff(
        context.uow_factory(),
        email="  Nadia.Admin@Hirfa.test ",
        name="Nadia Tazi",
        roles=["operator", "compliance"],
        password=PASSWORD,
        policy=context.staff,
    )
    staff_id = created.staff["id"]
    assert staff_id.startswith("stf_") and created.staff["email"] == "nadia.admin@hirfa.test"

    # The password alone, before any second factor: a new enrolment token to enrol with.
    first = client.post(SIGN_IN, json={"email": "nadia.admin@hirfa.test", "password": PASSWORD})
    assert first.status_code == 403 and first.json["code"] == "totp_enrolment_required"
    assert first.headers["Cache-Control"] == "no-store"
    token = first.json["enrolment_token"]
    assert token != created.enrolment_token

    started = client.post("/v1/staff-enrolments", json={"enrolment_token": token})
    assert started.status_code == 200 and started.headers["Cache-Control"] == "no-store"
    secret = started.json["secret"]
    assert started.json["otpauth_uri"].startswith("otpauth://totp/Hirfa:nadia.admin%40hirfa.test?")
    assert f"secret={secret}" in started.json["otpauth_uri"]

    wrong = client.post(
        "/v1/staff-enrolments/confirm", json={"enrolment_token": token, "totp_code": "000000"}
    )
    assert wrong.status_code == 422 and wrong.json["code"] == "totp_code_incorrect"
    confirmed = client.post(
        "/v1/staff-enrolments/confirm",
        json={"enrolment_token": token, "totp_code": code(secret)},
    )
    assert confirmed.status_code == 204, confirmed.json
    # The token is spent with the enrolment.
    again = client.post("/v1/staff-enrolments", json={"enrolment_token": token})
    assert again.status_code == 401 and again.json["code"] == "invalid_enrolment_token"
    assert again.headers["Cache-Control"] == "no-store"

    # The code that confirmed the enrolment is spent too; the next one signs in.
    body = {"email": "NADIA.admin@hirfa.test", "password": PASSWORD, "totp_code": code(secret)}
    assert client.post(SIGN_IN, json=body).status_code == 401
    signed_in = client.post(SIGN_IN, json={**body, "totp_code": code(secret, 1)})
    assert signed_in.status_code == 200, signed_in.json
    assert signed_in.headers["Cache-Control"] == "no-store"
    answer = signed_in.json
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900
    assert answer["staff"] == {
        "id": staff_id,
        "name": "Nadia Tazi",
        "email": "nadia.admin@hirfa.test",
        "roles": ["compliance", "operator"],
    }
    token_claims = claims(answer["access_token"])
    assert token_claims["sub"] == staff_id and token_claims["role"] == "staff"
    assert token_claims["name"] == "Nadia Tazi"
    assert set(token_claims["aud"]) == {"hirfa-onboarding", "hirfa-payments", "hirfa-accounts"}
    assert set(token_claims["scope"].split()) == ROLE_SCOPES[Role.COMPLIANCE] | ROLE_SCOPES[Role.OPERATOR]
    assert member(context, "nadia.admin@hirfa.test").last_signed_in_at is not None


def test_the_enrolment_token_printed_at_creation_enrols_too(client, context):
    created = create_staff(
        context.uow_factory(),
        email="karim@hirfa.test",
        name="Karim",
        roles=["compliance"],
        password=PASSWORD,
        policy=context.staff,
    )
    started = client.post("/v1/staff-enrolments", json={"enrolment_token": created.enrolment_token})
    assert started.status_code == 200
    assert (
        client.post(
            "/v1/staff-enrolments/confirm",
            json={"enrolment_token": created.enrolment_token, "totp_code": code(started.json["secret"])},
        ).status_code
        == 204
    )
    body = {"email": "karim@hirfa.test", "password": PASSWORD, "totp_code": code(started.json["secret"], 1)}
    assert set(client.post(SIGN_IN, json=body).json["staff"]["roles"]) == {"compliance"}


def test_emails_are_unique_whatever_their_case(context):
    make = dict(name="A", roles=["operator"], password=PASSWORD, policy=context.staff)
    create_staff(context.uow_factory(), email="Leila@Hirfa.test", **make)
    with pytest.raises(Conflict) as refused:
        create_staff(context.uow_factory(), email="leila@HIRFA.TEST", **make)
    assert refused.value.code == "staff_email_taken"


def test_a_staff_member_created_twice_at_the_same_moment_is_a_conflict_not_a_crash(context):
    make = dict(name="A", roles=["operator"], password=PASSWORD, policy=context.staff)
    uow = context.uow_factory()

    class CreatedMeanwhile(type(uow)):
        def __enter__(self):
            entered = super().__enter__()
            check = entered.session.scalar

            def scalar(*args, **kwargs):
                # The check runs before the other creation commits: it sees no row.
                entered.session.scalar = check
                create_staff(context.uow_factory(), email="nadia@hirfa.test", **make)
                return None

            entered.session.scalar = scalar
            return entered

    uow.__class__ = CreatedMeanwhile
    with pytest.raises(Conflict) as refused:
        create_staff(uow, email="Nadia@hirfa.test", **make)
    assert refused.value.code == "staff_email_taken"


def test_every_wrong_credential_gets_the_same_answer(client, context, demo_staff):
    disable_staff(context.uow_factory(), YOUSSEF)
    attempts = [
        sign_in(client, "nobody@hirfa.test", totp_code="123456"),
        sign_in(client, "not an email", totp_code="123456"),
        sign_in(client, AMINA, password="wrong password, long enough"),
        sign_in(client, AMINA, totp_code="000000" if code(SECRETS[AMINA]) != "000000" else "111111"),
        sign_in(client, AMINA, totp_code="12345"),
        sign_in(client, AMINA, totp_code=""),
        sign_in(client, YOUSSEF),  # disabled
    ]
    answers = {(r.status_code, r.json["code"], r.json["title"], r.json["detail"]) for r in attempts}
    assert answers == {
        (
            401,
            "invalid_credentials",
            "Wrong email, password or code",
            "The email, password or code is not correct.",
        )
    }


def test_a_code_is_taken_once_even_within_its_window(client, demo_staff):
    assert sign_in(client, SALMA).status_code == 200
    replayed = sign_in(client, SALMA)
    assert replayed.status_code == 401 and replayed.json["code"] == "invalid_credentials"
    # The next step's code (the window is one step either side) still works, once.
    assert sign_in(client, SALMA, steps_ahead=1).status_code == 200
    # And an earlier step's code is refused once a later one was used.
    assert sign_in(client, SALMA, steps_ahead=0).status_code == 401


def test_too_many_failures_lock_the_account_even_for_the_right_credentials(client, context, demo_staff):
    for _ in range(5):  # ONBOARDING_STAFF_MAX_FAILED_SIGN_INS
        assert sign_in(client, AMINA, password="not the right password").status_code == 401
    locked = sign_in(client, AMINA)
    assert locked.status_code == 429 and locked.json["code"] == "sign_in_locked"
    assert 1 <= int(locked.headers["Retry-After"]) <= 900

    with context.session_factory() as session:
        session.execute(
            sa.update(StaffMember)
            .where(StaffMember.email == AMINA)
            .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    assert sign_in(client, AMINA).status_code == 200
    assert member(context, AMINA).failed_attempts == 0


def test_secrets_are_kept_hashed_or_sealed(context, demo_staff):
    row = member(context, AMINA)
    assert row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    secret = SECRETS[AMINA]
    assert secret.encode() not in row.totp_ciphertext and row.totp_key_id
    assert DEMO_STAFF_PASSWORD not in row.password_hash


def test_a_document_key_rotation_rewraps_totp_secrets_and_they_still_work(client, context, demo_staff):
    cipher = context.cipher
    old = cipher.keyring.active_kid()
    cipher.keyring.generate()
    assert rewrap_all_documents(context.uow_factory, cipher) == 0
    assert rewrap_totp_secrets(context.uow_factory, cipher) == len(DEMO_STAFF)
    cipher.keyring.retire(old)
    assert sign_in(client, YOUSSEF).status_code == 200


def test_sign_ins_are_logged_without_any_secret(client, context, demo_staff, caplog):
    caplog.set_level(logging.DEBUG)
    good = sign_in(client, AMINA)
    bad = sign_in(client, AMINA, password="a wrong password here")
    unknown = sign_in(client, "ghost@hirfa.test", totp_code="123456")
    assert (good.status_code, bad.status_code, unknown.status_code) == (200, 401, 401)

    records = [r for r in caplog.records if r.getMessage().startswith("staff sign-in")] + [
        r for r in caplog.records if r.getMessage() == "staff signed in"
    ]
    assert {getattr(r, "reason", None) for r in records} >= {"wrong_password", "unknown_email", None}
    assert any(getattr(r, "staff_id", None) == good.json["staff"]["id"] for r in records)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (
        DEMO_STAFF_PASSWORD,
        "a wrong password here",
        SECRETS[AMINA],
        good.json["access_token"],
        "ghost@hirfa.test",
    ):
        assert secret not in logged


# --- staying signed in: the staff refresh token ----------------------------------------------------------

REFRESH, LOGOUT = "/v1/staff-sessions/refresh", "/v1/staff-sessions/logout"


def refresh(client, refresh_token: str):
    return client.post(REFRESH, json={"refresh_token": refresh_token})


def age_refresh_tokens(context, email: str, **moved: dt.timedelta) -> None:
    """Move the person's refresh tokens' clocks back (``rotated_at=``, ``expires_at=``, …): time
    passing, without waiting."""
    staff_id = member(context, email).id
    with context.session_factory() as session:
        for row in session.scalars(
            sa.select(StaffRefreshToken).where(StaffRefreshToken.staff_id == staff_id)
        ):
            for column, by in moved.items():
                if getattr(row, column) is not None:
                    setattr(row, column, getattr(row, column) - by)
        session.commit()


def test_a_refresh_token_renews_the_access_token_once_and_the_session_stays_one(client, context, demo_staff):
    signed_in = sign_in(client, SALMA)
    first = signed_in.json
    assert first["refresh_token"].startswith("hsr_") and first["refresh_token_expires_in"] == 3600

    renewed = refresh(client, first["refresh_token"])
    assert renewed.status_code == 200, renewed.json
    assert renewed.headers["Cache-Control"] == "no-store"
    second = renewed.json
    assert second["refresh_token"] != first["refresh_token"]
    assert second["staff"] == first["staff"] and second["expires_in"] == 900
    token_claims = claims(second["access_token"])
    assert (token_claims["sub"], token_claims["name"], token_claims["role"]) == (
        first["staff"]["id"],
        "Salma Idrissi",
        "staff",
    )
    assert set(token_claims["scope"].split()) == ROLE_SCOPES[Role.OPERATOR]
    # The new pair keeps the session going; every token of it belongs to one session.
    assert refresh(client, second["refresh_token"]).status_code == 200
    with context.session_factory() as session:
        sessions = set(session.scalars(sa.select(StaffRefreshToken.session_id)))
        hashes = set(session.scalars(sa.select(StaffRefreshToken.token_hash)))
    assert len(sessions) == 1
    assert first["refresh_token"] not in hashes  # kept as a hash, never as it was given


def test_a_spent_refresh_token_sent_again_at_once_is_the_same_session_later_a_theft(
    client, context, demo_staff
):
    first = sign_in(client, SALMA).json
    # Two requests of one console session renewing at the same moment: both get a pair.
    one, other = refresh(client, first["refresh_token"]), refresh(client, first["refresh_token"])
    assert (one.status_code, other.status_code) == (200, 200)
    assert refresh(client, one.json["refresh_token"]).status_code == 200

    # The spent token again after the grace: a stolen copy. The whole session ends.
    age_refresh_tokens(context, SALMA, rotated_at=dt.timedelta(minutes=5))
    stolen = refresh(client, first["refresh_token"])
    assert (stolen.status_code, stolen.json["code"]) == (401, "refresh_token_reused")
    ended = refresh(client, other.json["refresh_token"])
    assert (ended.status_code, ended.json["code"]) == (401, "refresh_token_revoked")


def test_a_session_lapses_unused_and_ends_each_day_however_busy(client, context, demo_staff):
    idle = sign_in(client, SALMA).json
    age_refresh_tokens(context, SALMA, expires_at=dt.timedelta(hours=1, seconds=1))
    lapsed = refresh(client, idle["refresh_token"])
    assert (lapsed.status_code, lapsed.json["code"]) == (401, "refresh_token_expired")

    busy = sign_in(client, SALMA, steps_ahead=1).json
    age_refresh_tokens(context, SALMA, session_expires_at=dt.timedelta(hours=12, seconds=1))
    over = refresh(client, busy["refresh_token"])
    assert (over.status_code, over.json["code"]) == (401, "refresh_token_expired")
    unknown = refresh(client, "hsr_not-a-token")
    assert (unknown.status_code, unknown.json["code"]) == (401, "invalid_refresh_token")


def test_signing_out_disabling_or_resetting_the_factor_ends_the_session(client, context, demo_staff):
    salma = sign_in(client, SALMA).json
    ended = client.post(LOGOUT, json={"refresh_token": salma["refresh_token"]})
    assert ended.status_code == 204 and ended.headers["Cache-Control"] == "no-store"
    assert refresh(client, salma["refresh_token"]).json["code"] == "refresh_token_revoked"
    assert client.post(LOGOUT, json={"refresh_token": salma["refresh_token"]}).status_code == 204

    karim = sign_in(client, KARIM).json
    disable_staff(context.uow_factory(), KARIM)
    assert refresh(client, karim["refresh_token"]).json["code"] == "refresh_token_revoked"

    amina = sign_in(client, AMINA).json
    reset_second_factor(context.uow_factory(), AMINA, policy=context.staff)
    assert refresh(client, amina["refresh_token"]).json["code"] == "refresh_token_revoked"


def test_a_refresh_carries_the_persons_roles_as_they_are_now(client, context, demo_staff):
    amina = sign_in(client, AMINA).json
    with context.session_factory() as session:
        session.execute(
            sa.update(StaffMember).where(StaffMember.email == AMINA).values(roles=["compliance", "operator"])
        )
        session.commit()
    renewed = refresh(client, amina["refresh_token"]).json
    assert set(claims(renewed["access_token"])["scope"].split()) == (
        ROLE_SCOPES[Role.COMPLIANCE] | ROLE_SCOPES[Role.OPERATOR]
    )
    assert renewed["staff"]["roles"] == ["compliance", "operator"]


def test_staff_look_each_other_up_by_id_and_only_staff(client, demo_staff, marketplace_headers):
    salma = sign_in(client, SALMA)
    amina_id = sign_in(client, AMINA).json["staff"]["id"]
    card = client.get(f"/v1/staff/{amina_id}", headers=bearer(salma))
    assert card.status_code == 200, card.json
    assert card.json == {
        "object": "staff_member",
        "id": amina_id,
        "name": "Amina Benali",
        "roles": ["compliance"],
    }
    assert client.get("/v1/staff/stf_01JD8Z6W5Q0T2C7S9K3M4N5P6R", headers=bearer(salma)).status_code == 404
    assert client.get(f"/v1/staff/{amina_id}", headers=marketplace_headers()).status_code == 403
    assert client.get(f"/v1/staff/{amina_id}").status_code == 401


# --- the staff token at work -------------------------------------------------------------------------


def test_compliance_staff_decide_reviews_under_four_eyes_by_person(
    client, onboarding_app, demo_staff, marketplace_headers
):
    amina = bearer(sign_in(client, AMINA))
    youssef = bearer(sign_in(client, YOUSSEF))
    amina_id = claims(amina["Authorization"][7:])["sub"]

    def as_staff(headers: dict, key: str) -> dict:
        return {**headers, "Idempotency-Key": key}

    context = onboarding_app.extensions["hirfa"]
    load_list(context.uow_factory(), (ROOT / SAMPLE_LIST).read_bytes(), source="sample")
    kyc = Kyc(client, onboarding_app, marketplace_headers)
    kyc.verify_phone()
    kyc.upload("id_front", JPEG)
    kyc.upload("id_back", PNG)
    # Amina uploads the last document at a branch: the case is hers, so she may not decide it.
    assert kyc.upload("selfie", PDF, headers=as_staff(amina, "amina-selfie")).status_code == 201
    [review] = open_reviews(client, lambda: amina, artisan_id=kyc.id)
    assert review["submitted_by"] == amina_id

    refused = decide(client, as_staff(amina, "amina-decides"), review["id"])
    assert refused.status_code == 403 and refused.json["code"] == "four_eyes_violation"
    approved = decide(client, as_staff(youssef, "youssef-decides"), review["id"])
    assert approved.status_code == 200, approved.json
    assert approved.json["decided_by"] == claims(youssef["Authorization"][7:])["sub"]
    assert kyc.view()["tier"] == 3

    # The audit trail names the people.
    log = client.get(f"/v1/artisans/{kyc.id}/kyc/audit-log", headers=youssef).json["data"]
    actors = {entry["actor"] for entry in log}
    assert {amina_id, claims(youssef["Authorization"][7:])["sub"]} <= actors


def test_staff_without_the_compliance_role_get_no_review(client, demo_staff):
    salma = bearer(sign_in(client, SALMA))
    for response in (
        client.get("/v1/kyc-reviews", headers=salma),
        client.get("/v1/kyc-reviews/rev_anything", headers=salma),
        client.post(
            "/v1/kyc-reviews/rev_anything/decision",
            json={"decision": "approve", "reason_code": "documents_verified", "note": "x"},
            headers={**salma, "Idempotency-Key": "salma-tries"},
        ),
    ):
        assert response.status_code == 403 and response.json["code"] == "insufficient_scope"


def test_an_operator_staff_token_requests_payouts_and_a_compliance_one_cannot(
    client, accounts_app, demo_staff
):
    accounts = accounts_app.test_client()
    artisan_id = ready_artisan(LedgerDriver(accounts_app), 10_000)
    salma = bearer(sign_in(client, SALMA), idempotency_key="salma-payout")
    paid = request_payout(accounts, salma, artisan_id, 4_000)
    assert paid.status_code == 201, paid.json
    assert paid.json["status"] == "in_transit"

    amina = bearer(sign_in(client, AMINA), idempotency_key="amina-payout")
    refused = request_payout(accounts, amina, artisan_id, 1_000)
    assert refused.status_code == 403

    # Operator things across accounts: the ledger's integrity check and the artisan's statement.
    assert accounts.get("/v1/ledger/integrity", headers=salma).status_code == 200
    today = dt.date.today()
    period = {"from": f"{today:%Y-%m}", "to": f"{today:%Y-%m}"}
    url = f"/v1/artisans/{artisan_id}/income-statement"
    statement = accounts.get(url, headers=salma, query_string=period)
    assert statement.status_code == 200, statement.json
    # A compliance officer is no operator: the statement is not theirs to see.
    assert accounts.get(url, headers=amina, query_string=period).status_code == 404


# --- the CLI -------------------------------------------------------------------------------------------


def test_the_cli_creates_the_first_admin_lists_and_disables_staff(client, onboarding_config, monkeypatch):
    from click.testing import CliRunner

    from services.onboarding import cli as onboarding_cli
    from services.onboarding.bootstrap import bootstrap

    monkeypatch.setattr(onboarding_cli, "bootstrap", lambda *a, **k: bootstrap(onboarding_config))
    runner = CliRunner()
    create = [
        "staff",
        "create",
        "--email",
        "Admin@Hirfa.test",
        "--name",
        "First Admin",
        "--role",
        "compliance",
        "--role",
        "operator",
    ]
    # No terminal and no HIRFA_STAFF_PASSWORD (CI): it says what to set, and creates nobody.
    no_password = runner.invoke(onboarding_cli.cli, create, env={"HIRFA_STAFF_PASSWORD": ""})
    assert no_password.exit_code != 0 and "HIRFA_STAFF_PASSWORD" in no_password.output

    created = runner.invoke(onboarding_cli.cli, create, env={"HIRFA_STAFF_PASSWORD": PASSWORD})
    assert created.exit_code == 0, created.output
    assert PASSWORD not in created.output
    token = next(
        line.split()[-1] for line in created.output.splitlines() if line.startswith("enrolment_token:")
    )
    assert client.post("/v1/staff-enrolments", json={"enrolment_token": token}).status_code == 200

    again = runner.invoke(onboarding_cli.cli, create, env={"HIRFA_STAFF_PASSWORD": PASSWORD})
    assert again.exit_code != 0 and "already has the email admin@hirfa.test" in again.output

    listed = runner.invoke(onboarding_cli.cli, ["staff", "list"])
    assert listed.exit_code == 0
    assert "admin@hirfa.test" in listed.output and "compliance,operator" in listed.output
    assert "not enrolled" in listed.output

    disabled = runner.invoke(onboarding_cli.cli, ["staff", "disable", "ADMIN@hirfa.test"])
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    signed_in = client.post(SIGN_IN, json={"email": "admin@hirfa.test", "password": PASSWORD})
    assert signed_in.status_code == 401
