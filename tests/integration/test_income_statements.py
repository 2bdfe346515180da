"""The artisan's signed income statement through accounts' HTTP API: the figures equal the ledger's,
the JWS verifies against accounts' JWKS with a JOSE library Hirfa does not use (jwcrypto) and fails
once one byte changes, the public verify and fetch-by-code endpoints, the PDF in French and Arabic
(its text read back with pypdf), who may ask, and the period's validation.

The ledger is fed the way production feeds it: payments' events through the real accounts consumer
(tests/ledger_support.py), a payout through the API. Entries are posted in past months by giving
the posting code a clock set to that month.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import uuid
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwcrypto import jwk, jws
from openapi_spec_validator import validate
from pypdf import PdfReader

from services.accounts.adapters.rate_limits import SlidingWindowLimiter
from services.accounts.domain.income_statements import Month
from services.accounts.service_layer import posting as posting_module
from services.accounts.service_layer.money_events import release_due_holds
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.partner_ports import PartnerRegistry
from tests.conftest import ISSUER
from tests.fakes import FakeTransferBank
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.ledger_support import (
    LedgerDriver,
    bank_account_linked,
    payment_succeeded,
    refund_succeeded,
)
from tests.tokens_forge import b64url, b64url_decode, claims, sign_eddsa

OPERATOR = "cli_test_operator"
AUDIENCES = ["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"]

THIS_MONTH = Month.of(dt.datetime.now(dt.UTC))
# Two months ago, last month (the statement's period), and this month (outside it).
MONTH_A = Month(THIS_MONTH.year - (THIS_MONTH.month <= 2), (THIS_MONTH.month - 3) % 12 + 1)
MONTH_B = MONTH_A.next()
assert MONTH_B.next() == THIS_MONTH


@pytest.fixture
def accounts_bank_partners() -> PartnerRegistry:
    return PartnerRegistry({"banque_populaire": FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)})


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def token(signing_keys):
    """token(role, client_id, **claims) -> a bearer header signed by the test issuer; extra claims
    (an artisan token's ``lang``) go into the token as given."""

    def make(role: Role = Role.OPERATOR, client_id: str = OPERATOR, **extra) -> dict[str, str]:
        kid, key = signing_keys.active()
        body = claims(ISSUER, AUDIENCES, client_id=client_id, role=role, scopes=ROLE_SCOPES[role], **extra)
        return {"Authorization": "Bearer " + sign_eddsa(key, kid, body)}

    return make


@contextmanager
def posted_in(monkeypatch, month: Month, day: int = 15):
    """Entries posted meanwhile carry a time in ``month``."""
    moment = dt.datetime(month.year, month.month, day, 12, 0, tzinfo=dt.UTC)
    with monkeypatch.context() as patch:
        patch.setattr(posting_module, "utcnow", lambda: moment)
        yield


def release_all(ledger: LedgerDriver) -> None:
    release_due_holds(ledger.context.uow_factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))


@pytest.fixture
def history(monkeypatch, client, ledger, token) -> str:
    """An artisan's two months of sales, a refund and a payout, then a sale this month.

    month A  payment 1 000,00 (fee 100,00) and 500,00 (fee 50,00) through MARKETPLACE
    month B  payment 300,00 (fee 30,00) through OTHER_MARKETPLACE; payment 1 refunded
             200,00 (fee 20,00 given back); released; payout 400,00
    now      payment 70,00 (outside the period)
    """
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(bank_account_linked(artisan_id))
    with posted_in(monkeypatch, MONTH_A):
        first = payment_succeeded(artisan_id, 100_000, 10_000)
        ledger.deliver(first)
        ledger.deliver(payment_succeeded(artisan_id, 50_000, 5_000))
    with posted_in(monkeypatch, MONTH_B):
        ledger.deliver(payment_succeeded(artisan_id, 30_000, 3_000, marketplace_id=OTHER_MARKETPLACE))
        ledger.deliver(refund_succeeded(artisan_id, first.data["payment_id"], 20_000, 2_000))
        release_all(ledger)
        headers = {**token(), "Idempotency-Key": uuid.uuid4().hex}
        body = {"artisan_id": artisan_id, "amount": 40_000, "currency": "MAD"}
        response = client.post("/v1/payouts", json=body, headers=headers)
        assert response.status_code == 201, response.json
    ledger.deliver(payment_succeeded(artisan_id, 7_000, 0))
    return artisan_id


def statement_of(client, headers, artisan_id: str, **query):
    query = {"from": str(MONTH_A), "to": str(MONTH_B), **query}
    return client.get(f"/v1/artisans/{artisan_id}/income-statement", headers=headers, query_string=query)


def mad(amount: int) -> dict:
    return {"amount": amount, "currency": "MAD"}


# --- the figures -----------------------------------------------------------------------------------


def test_the_statement_figures_are_the_ledgers(client, ledger, token, history):
    artisan_id = history
    response = statement_of(client, token(Role.ARTISAN, artisan_id), artisan_id)
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    statement = body["statement"]

    assert (statement["object"], statement["source"], statement["artisan_id"]) == (
        "income_statement",
        "ledger",
        artisan_id,
    )
    assert statement["period"] == {"from": str(MONTH_A), "to": str(MONTH_B), "timezone": "UTC"}
    assert statement["kyc"] == {"tier": 3, "status": "active"}
    assert statement["months_active"] == 2
    assert statement["first_sale_month"] == str(MONTH_A)
    assert statement["payments_count"] == 3
    assert statement["marketplaces"] == sorted([MARKETPLACE, OTHER_MARKETPLACE])

    month_a, month_b = statement["months"]
    assert month_a == {
        "month": str(MONTH_A),
        "gross_sales": mad(150_000),
        "refunds": mad(0),
        "marketplace_fees": mad(15_000),
        "disputes": mad(0),
        "net_income": mad(135_000),
        "payouts": mad(0),
        "payments_count": 2,
        "marketplaces_count": 1,
    }
    assert month_b == {
        "month": str(MONTH_B),
        "gross_sales": mad(30_000),
        "refunds": mad(20_000),
        "marketplace_fees": mad(1_000),
        "disputes": mad(0),
        "net_income": mad(27_000 - 18_000),
        "payouts": mad(40_000),
        "payments_count": 1,
        "marketplaces_count": 1,
    }
    assert statement["totals"] == {
        "gross_sales": mad(180_000),
        "refunds": mad(20_000),
        "marketplace_fees": mad(16_000),
        "disputes": mad(0),
        "net_income": mad(144_000),
        "payouts": mad(40_000),
    }
    # The ledger's own balances: what the artisan holds now, less this month's sale, is what the
    # statement says they held at the end of the period: opening + net income - payouts.
    held_now = ledger.shown("artisan", artisan_id, "pending") + ledger.shown(
        "artisan", artisan_id, "available"
    )
    assert statement["balance"] == {"opening": mad(0), "closing": mad(held_now - 7_000)}
    assert held_now - 7_000 == 0 + 144_000 - 40_000

    code = statement["verification"]["code"]
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
    assert body["verification_code"] == code == response.headers["Hirfa-Verification-Code"]
    assert statement["verification"]["verify_url"].endswith("/v1/income-statements/verify")
    assert body["statement_url"].endswith(f"/v1/income-statements/{code}")


def test_an_operator_may_ask_and_each_statement_has_its_own_code(client, token, history):
    first = statement_of(client, token(), history)
    second = statement_of(client, token(), history)
    assert first.status_code == second.status_code == 200
    assert first.json["verification_code"] != second.json["verification_code"]
    assert first.json["statement"]["totals"] == second.json["statement"]["totals"]


def test_a_period_without_sales_has_zeros_and_the_balance_carried_over(client, token, history):
    response = statement_of(client, token(), history, **{"from": str(THIS_MONTH), "to": str(THIS_MONTH)})
    assert response.status_code == 200, response.json
    statement = response.json["statement"]
    assert statement["months_active"] == 1 and statement["payments_count"] == 1
    assert statement["totals"]["gross_sales"] == mad(7_000)
    assert statement["balance"]["opening"] == mad(104_000)


# --- the signature -------------------------------------------------------------------------------


def jwks_of(client) -> jwk.JWKSet:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("public")
    return jwk.JWKSet.from_json(response.get_data(as_text=True))


def verifies_with_jwcrypto(keys: jwk.JWKSet, compact: str) -> dict | None:
    """The payload if the JWS verifies against the key its ``kid`` names, else None."""
    token = jws.JWS()
    try:
        token.deserialize(compact)
        key = keys.get_key(token.jose_header["kid"])
        if key is None:
            return None
        token.verify(key, alg="EdDSA")
    except (jws.InvalidJWSSignature, jws.InvalidJWSObject, ValueError):
        return None
    return json.loads(token.payload)


def flip_one_byte(compact: str, segment: int) -> str:
    """The JWS with one byte of the decoded ``segment`` (0 header, 1 payload, 2 signature) changed."""
    parts = compact.split(".")
    raw = bytearray(b64url_decode(parts[segment]))
    raw[len(raw) // 2] ^= 0x01
    parts[segment] = b64url(bytes(raw))
    return ".".join(parts)


def test_the_jws_verifies_with_jwcrypto_against_the_jwks_and_not_once_a_byte_changed(client, token, history):
    body = statement_of(client, token(Role.ARTISAN, history), history).json
    keys = jwks_of(client)
    header = json.loads(b64url_decode(body["jws"].split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": body["kid"], "typ": "hirfa-income-statement+jws"}
    [published] = json.loads(keys.export(private_keys=False))["keys"]
    assert (published["kid"], published["kty"], published["crv"]) == (body["kid"], "OKP", "Ed25519")

    assert verifies_with_jwcrypto(keys, body["jws"]) == body["statement"]
    for segment in (1, 2):
        assert verifies_with_jwcrypto(keys, flip_one_byte(body["jws"], segment)) is None


def test_the_statement_key_is_not_the_token_key(client, signing_keys):
    published = {key["kid"] for key in json.loads(jwks_of(client).export(private_keys=False))["keys"]}
    assert published and published.isdisjoint(signing_keys.public_keys())


def test_the_public_verify_endpoint_says_valid_and_what_was_signed(client, token, history):
    body = statement_of(client, token(), history, format="jws").get_data(as_text=True)
    response = client.post("/v1/income-statements/verify", json={"jws": body})  # no token
    assert response.status_code == 200, response.json
    result = response.json
    assert (result["valid"], result["reason"]) == (True, "signature_valid")
    assert result["statement"]["artisan_id"] == history
    assert result["statement"]["totals"]["net_income"] == mad(144_000)


@pytest.mark.parametrize(
    ("segment", "reason"), [(1, "bad_signature"), (2, "bad_signature"), (0, "malformed")]
)
def test_the_verify_endpoint_refuses_a_statement_with_one_byte_changed(
    client, token, history, segment, reason
):
    compact = statement_of(client, token(), history).json["jws"]
    response = client.post("/v1/income-statements/verify", json={"jws": flip_one_byte(compact, segment)})
    assert response.status_code == 200
    assert (response.json["valid"], response.json["statement"]) == (False, None)
    assert response.json["reason"] in {reason, "unsupported_algorithm", "unknown_key"}


def test_a_statement_signed_by_another_key_under_our_kid_is_refused(client, token, history):
    kid = statement_of(client, token(), history).json["kid"]
    header = {"alg": "EdDSA", "kid": kid, "typ": "hirfa-income-statement+jws"}
    forged = sign_eddsa(Ed25519PrivateKey.generate(), kid, {"object": "income_statement"}, typ=header["typ"])
    response = client.post("/v1/income-statements/verify", json={"jws": forged})
    assert (response.json["valid"], response.json["reason"]) == (False, "bad_signature")


@pytest.mark.parametrize(
    ("jws_text", "reason"),
    [("not a jws", "malformed"), ("a.b", "malformed"), ("eyJhbGciOiJub25lIn0.e30.", "unsupported_algorithm")],
)
def test_the_verify_endpoint_explains_what_is_not_a_jws(client, jws_text, reason):
    response = client.post("/v1/income-statements/verify", json={"jws": jws_text})
    assert response.status_code == 200
    assert (response.json["valid"], response.json["reason"]) == (False, reason)


def test_verify_without_a_jws_is_a_validation_error(client):
    response = client.post("/v1/income-statements/verify", json={})
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"


def test_a_bank_fetches_the_signed_statement_by_its_code_without_an_account(client, token, history):
    issued = statement_of(client, token(), history).json
    code = issued["verification_code"]
    for typed in (code, code.lower(), code.replace("-", " ")):
        response = client.get(f"/v1/income-statements/{typed}")
        assert response.status_code == 200, response.json
        assert (response.json["jws"], response.json["kid"]) == (issued["jws"], issued["kid"])
        assert response.json["verification_code"] == code
    assert client.get("/v1/income-statements/0000-0000-0000-0000").status_code == 404
    assert client.get("/v1/income-statements/nonsense").json["code"] == "resource_not_found"


def test_the_public_endpoints_are_rate_limited(accounts_app, client):
    context = accounts_app.extensions["hirfa"]
    context.income_statements = dataclasses.replace(
        context.income_statements, public_limiter=SlidingWindowLimiter(2)
    )
    answers = [client.post("/v1/income-statements/verify", json={"jws": "x"}) for _ in range(2)]
    answers.append(client.get("/v1/income-statements/0000-0000-0000-0000"))
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].json["code"] == "rate_limited" and int(answers[-1].headers["Retry-After"]) >= 1


# --- the PDF -------------------------------------------------------------------------------------


def pdf_text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    # CLDR's spaces are narrow no-break and no-break spaces; the marks only steer direction.
    return re.sub(r"[\u202f\u00a0]", " ", re.sub(r"[\u200e\u200f\u061c]", "", text))


def test_the_pdf_in_french_carries_the_figures_and_the_verification_code(client, token, history):
    response = statement_of(client, token(Role.ARTISAN, history), history, format="pdf")
    text = pdf_text(response)
    code = response.headers["Hirfa-Verification-Code"]
    assert "Relevé de revenus certifié" in text
    for figure in ("1 800,00 MAD", "1 440,00 MAD", "400,00 MAD", "200,00 MAD", "160,00 MAD", "1 040,00 MAD"):
        assert figure in text, figure
    assert "1 350,00 MAD" in text  # month A's net income
    assert code in text
    assert "/v1/income-statements/verify" in text
    assert history in text


def test_the_pdf_in_arabic_is_shaped_right_to_left_with_the_same_figures(client, token, history):
    # The artisan token's ``lang`` claim chooses Arabic; Accept asks for the PDF.
    headers = {**token(Role.ARTISAN, history, lang="ar"), "Accept": "application/pdf"}
    response = statement_of(client, headers, history)
    text = pdf_text(response)
    assert "كشف الدخل المصادق عليه" in text
    assert "صافي الدخل" in text
    for figure in ("1.800,00", "1.440,00", "400,00", "1.040,00"):
        assert figure in text, figure
    assert "د.م." in text
    assert response.headers["Hirfa-Verification-Code"] in text


def test_lang_in_the_query_wins_over_the_token(client, token, history):
    headers = token(Role.ARTISAN, history, lang="ar")
    text = pdf_text(statement_of(client, headers, history, format="pdf", lang="fr"))
    assert "Relevé de revenus certifié" in text


# --- who may ask, and what --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "client_id"),
    [
        (Role.ARTISAN, "art_someone_else"),
        (Role.MARKETPLACE, MARKETPLACE),  # even the marketplace that registered the artisan
        (Role.BANK_PARTNER, "cli_test_bank"),
        (Role.COMPLIANCE, "cli_test_compliance"),
    ],
)
def test_anyone_but_the_artisan_and_operators_gets_not_found(client, token, history, role, client_id):
    response = statement_of(client, token(role, client_id), history)
    assert response.status_code == 404
    assert response.json["code"] == "resource_not_found"


def test_no_token_is_unauthenticated(client, history):
    assert statement_of(client, {}, history).status_code == 401


def test_an_artisan_accounts_never_heard_of_is_not_found(client, token):
    assert statement_of(client, token(), "art_unknown").status_code == 404


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "2026-13"}, "from"),
        ({"to": "26-01"}, "to"),
        ({"from": str(MONTH_B), "to": str(MONTH_A)}, "to"),
        ({"from": "2020-01", "to": "2023-12"}, "to"),
        ({"from": str(THIS_MONTH.next()), "to": str(THIS_MONTH.next())}, "from"),
        ({"format": "docx"}, "format"),
        ({"lang": "de"}, "lang"),
    ],
)
def test_a_bad_period_or_option_is_a_validation_error(client, token, history, query, param):
    response = statement_of(client, token(), history, **query)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert param in json.dumps(response.json)


def test_the_statement_endpoints_are_in_a_valid_openapi_document(client):
    document = client.get("/openapi.json").json
    validate(document)
    paths = document["paths"]
    assert paths["/v1/income-statements/verify"]["post"]["security"] == []
    assert paths["/v1/income-statements/{code}"]["get"]["security"] == []
    assert paths["/.well-known/jwks.json"]["get"]["security"] == []
    # Any valid token: who may read whose statement is the service's to say (404 otherwise).
    assert paths["/v1/artisans/{artisan_id}/income-statement"]["get"]["security"] == [{"oauth2": []}]


def test_a_verification_code_never_reaches_the_logs(client, token, history, caplog):
    code = statement_of(client, token(), history).json["verification_code"]
    caplog.clear()
    with caplog.at_level("INFO"):
        assert client.get(f"/v1/income-statements/{code}").status_code == 200
        assert client.get("/v1/income-statements/ABCD-EFGH-JKMN-PQRS").status_code == 404
    logged = " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "/v1/income-statements/<code>" in logged
    assert code not in logged and "ABCD-EFGH-JKMN-PQRS" not in logged


def test_behind_the_ingress_each_client_address_has_its_own_budget(accounts_app, client):
    context = accounts_app.extensions["hirfa"]
    context.config = dataclasses.replace(context.config, trust_forwarded_for=True)
    context.income_statements = dataclasses.replace(
        context.income_statements, public_limiter=SlidingWindowLimiter(1)
    )

    def verify(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        return client.post("/v1/income-statements/verify", json={"jws": "x"}, headers=headers).status_code

    # The last hop is the one the ingress added: what a client writes before it does not count.
    assert verify("203.0.113.7") == 200
    assert verify("198.51.100.1, 203.0.113.7") == 429
    assert verify("203.0.113.7, 198.51.100.9") == 200
