"""Authentication over HTTP: the token endpoint, and forged tokens against the resource services."""

from __future__ import annotations

import base64
import contextvars

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import RemoteKeySet
from shared.errors import PROBLEM_CONTENT_TYPE
from tests import tokens_forge as forge
from tests.conftest import ISSUER
from tests.integration.conftest import MARKETPLACE, MARKETPLACE_SECRET

pytestmark = pytest.mark.integration

TOKEN_URL = "/v1/oauth/token"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
ALL_AUDIENCES = ["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"]


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    body = response.get_json(force=True)
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


# --- the token endpoint -----------------------------------------------------------------------


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_token_with_basic_auth(onboarding, signing_keys):
    response = onboarding.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic(MARKETPLACE, MARKETPLACE_SECRET)
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert set(body["scope"].split()) == ROLE_SCOPES[Role.MARKETPLACE]
    claims = _claims(body["access_token"])
    assert claims["sub"] == MARKETPLACE
    assert claims["iss"] == ISSUER
    assert claims["role"] == "marketplace"
    assert set(claims["aud"]) == set(ALL_AUDIENCES)
    assert jwt.get_unverified_header(body["access_token"])["kid"] == signing_keys.active()[0]


def test_token_with_credentials_in_form_body(onboarding):
    response = onboarding.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": MARKETPLACE,
            "client_secret": MARKETPLACE_SECRET,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert _claims(response.get_json()["access_token"])["sub"] == MARKETPLACE


def test_token_with_json_body(onboarding):
    response = onboarding.post(
        TOKEN_URL,
        json={
            "grant_type": "client_credentials",
            "client_id": MARKETPLACE,
            "client_secret": MARKETPLACE_SECRET,
        },
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "headers, data",
    [
        pytest.param(basic(MARKETPLACE, "wrong-secret"), {}, id="basic-wrong-secret"),
        pytest.param({}, {"client_id": MARKETPLACE, "client_secret": "wrong-secret"}, id="body-wrong-secret"),
        pytest.param(basic("cli_nobody", MARKETPLACE_SECRET), {}, id="basic-unknown-client"),
        pytest.param(
            {}, {"client_id": "cli_nobody", "client_secret": MARKETPLACE_SECRET}, id="body-unknown-client"
        ),
        pytest.param(basic(MARKETPLACE, ""), {}, id="basic-empty-secret"),
        pytest.param({"Authorization": "Basic !!!not-base64!!!"}, {}, id="basic-malformed"),
        pytest.param(
            {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}, {}, id="basic-not-utf8"
        ),
        pytest.param({}, {}, id="no-credentials"),
        pytest.param({}, {"client_id": MARKETPLACE}, id="no-secret"),
    ],
)
def test_token_client_authentication_failures(onboarding, headers, data):
    response = onboarding.post(TOKEN_URL, data={"grant_type": "client_credentials", **data}, headers=headers)
    assert_problem(response, 401, "invalid_client")


def test_wrong_secret_and_unknown_client_are_indistinguishable(onboarding):
    wrong = onboarding.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic(MARKETPLACE, "wrong-secret")
    )
    unknown = onboarding.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("cli_nobody", "wrong-secret")
    )
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert wrong.status_code == unknown.status_code == 401
    assert strip(wrong.get_json(force=True)) == strip(unknown.get_json(force=True))


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "", "CLIENT_CREDENTIALS", None])
def test_token_bad_grant_type(onboarding, grant_type):
    data = {"scope": "artisans:read"} if grant_type is None else {"grant_type": grant_type}
    response = onboarding.post(TOKEN_URL, data=data, headers=basic(MARKETPLACE, MARKETPLACE_SECRET))
    body = assert_problem(response, 422, "validation_error")
    assert any(error["param"] == "grant_type" for error in body["errors"])


def test_token_scope_narrowing(onboarding, onboarding_app):
    response = onboarding.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "scope": "artisans:read"},
        headers=basic(MARKETPLACE, MARKETPLACE_SECRET),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "artisans:read"
    token = response.get_json()["access_token"]
    assert _claims(token)["scope"] == "artisans:read"

    # The narrowed token reads but may not write.
    assert onboarding.get("/v1/artisans", headers=bearer(token)).status_code == 200
    denied = onboarding.post(
        "/v1/artisans", json={}, headers={**bearer(token), "Idempotency-Key": "narrow-1"}
    )
    assert_problem(denied, 403, "insufficient_scope")


@pytest.mark.parametrize("scope", ["payouts:write", "artisans:read kyc:review", "admin", "artisans:read *"])
def test_token_unallowed_scope(onboarding, scope):
    response = onboarding.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "scope": scope},
        headers=basic(MARKETPLACE, MARKETPLACE_SECRET),
    )
    assert_problem(response, 400, "invalid_scope")


def test_token_audience_narrowing(onboarding, payments_app, accounts_app):
    response = onboarding.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "audience": "hirfa-accounts"},
        headers=basic(MARKETPLACE, MARKETPLACE_SECRET),
    )
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    assert _claims(token)["aud"] == "hirfa-accounts"
    assert_problem(
        payments_app.test_client().get("/v1/payees/art_x", headers=bearer(token)), 401, "invalid_token"
    )
    assert_problem(accounts_app.test_client().get("/v1/artisans/art_x/balance", headers=bearer(token)), 404)


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", "grant_type=client_credentials"),
        ("application/xml", "<grant_type>client_credentials</grant_type>"),
        ("multipart/form-data; boundary=x", "--x--"),
    ],
)
def test_token_unsupported_content_type(onboarding, content_type, data):
    response = onboarding.post(
        TOKEN_URL, data=data, content_type=content_type, headers=basic(MARKETPLACE, MARKETPLACE_SECRET)
    )
    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", ["[]", '"client_credentials"', "null", "42", "{not json"])
def test_token_json_body_not_an_object(onboarding, body):
    response = onboarding.post(
        TOKEN_URL, data=body, content_type="application/json", headers=basic(MARKETPLACE, MARKETPLACE_SECRET)
    )
    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)


def test_token_endpoint_refuses_get(onboarding):
    assert_problem(onboarding.get(TOKEN_URL), 405, "method_not_allowed")


def test_jwks_endpoint_publishes_the_signing_keys(onboarding, signing_keys):
    response = onboarding.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.get_json() == signing_keys.jwks()
    assert "max-age" in response.headers["Cache-Control"]
    for jwk in response.get_json()["keys"]:
        assert "d" not in jwk


# --- forged tokens against the resource services ----------------------------------------------

PAYEE_URL = "/v1/payees/art_x"
BALANCE_URL = "/v1/artisans/art_x/balance"
FORGERY_NAMES = sorted(
    forge.forged_tokens("k_x", Ed25519PrivateKey.generate(), issuer=ISSUER, audience=ALL_AUDIENCES)
)


@pytest.fixture
def resource_clients(payments_app, accounts_app):
    return {
        "payments": (payments_app.test_client(), PAYEE_URL),
        "accounts": (accounts_app.test_client(), BALANCE_URL),
    }


@pytest.fixture(scope="module")
def forged(signing_keys):
    kid, key = signing_keys.active()
    return forge.forged_tokens(kid, key, issuer=ISSUER, audience=ALL_AUDIENCES)


@pytest.mark.parametrize("service", ["payments", "accounts"])
def test_forged_tokens_are_refused(resource_clients, forged, service):
    client, url = resource_clients[service]
    assert set(forged) == set(FORGERY_NAMES)
    failures = []
    for name, token in forged.items():
        response = client.get(url, headers=bearer(token))
        if response.status_code != 401 or response.mimetype != PROBLEM_CONTENT_TYPE:
            failures.append((name, response.status_code, response.get_data(as_text=True)[:200]))
            continue
        body = response.get_json(force=True)
        expected = "token_expired" if name.startswith("expired") else "invalid_token"
        if body.get("code") != expected or not PROBLEM_KEYS <= set(body):
            failures.append((name, body))
        if "WWW-Authenticate" not in response.headers:
            failures.append((name, "no WWW-Authenticate"))
    assert failures == []


@pytest.mark.parametrize("service", ["payments", "accounts"])
def test_garbage_tokens_are_refused(resource_clients, service):
    client, url = resource_clients[service]
    for garbage in forge.GARBAGE:
        response = client.get(url, headers={"Authorization": "Bearer " + garbage})
        body = assert_problem(response, 401)
        assert body["code"] in {"invalid_token", "unauthenticated"}, garbage[:40]


@pytest.mark.parametrize("service", ["payments", "accounts"])
def test_valid_token_without_the_scope_is_forbidden(resource_clients, issue_token, service):
    client, url = resource_clients[service]
    response = client.get(url, headers=bearer(issue_token(scopes={"artisans:read"})))
    body = assert_problem(response, 403, "insufficient_scope")
    assert ("payments:read" if service == "payments" else "balances:read") in body["detail"]


@pytest.mark.parametrize("service", ["payments", "accounts"])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic " + base64.b64encode(b"a:b").decode(),
        "Token abc",
        "bearer",
    ],
)
def test_missing_bearer_token(resource_clients, service, authorization):
    client, url = resource_clients[service]
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get(url, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("service", ["payments", "accounts"])
def test_valid_token_is_accepted(resource_clients, issue_token, service):
    client, url = resource_clients[service]
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = client.get(url, headers={"Authorization": f"{scheme} {issue_token()}"})
        # Authenticated and authorised: the artisan simply does not exist here.
        assert_problem(response, 404, "resource_not_found")


@pytest.mark.parametrize("service", ["payments", "accounts"])
def test_token_for_another_service_only_is_refused(resource_clients, issue_token, service):
    client, url = resource_clients[service]
    token = issue_token(audiences=("hirfa-onboarding",))
    assert_problem(client.get(url, headers=bearer(token)), 401, "invalid_token")


def test_other_roles_tokens(resource_clients, issue_token):
    payments, _ = resource_clients["payments"]
    accounts, _ = resource_clients["accounts"]
    bank = issue_token(Role.BANK_PARTNER, client_id="cli_bank")
    assert_problem(payments.get(PAYEE_URL, headers=bearer(bank)), 403, "insufficient_scope")
    assert_problem(accounts.get(BALANCE_URL, headers=bearer(bank)), 404, "resource_not_found")
    artisan = issue_token(Role.ARTISAN, client_id="cli_artisan")
    assert_problem(payments.get(PAYEE_URL, headers=bearer(artisan)), 403, "insufficient_scope")
    # An artisan may read only their own balance: someone else's is "not found".
    assert_problem(accounts.get(BALANCE_URL, headers=bearer(artisan)), 404, "resource_not_found")


def _real_token(onboarding, **data) -> str:
    response = onboarding.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", **data},
        headers=basic(MARKETPLACE, MARKETPLACE_SECRET),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def test_token_from_onboarding_is_accepted_by_payments_and_accounts(onboarding, resource_clients):
    token = _real_token(onboarding)
    for service in ("payments", "accounts"):
        client, url = resource_clients[service]
        assert_problem(client.get(url, headers=bearer(token)), 404, "resource_not_found")
    # …and by onboarding itself.
    assert onboarding.get("/v1/artisans", headers=bearer(token)).status_code == 200


def test_tampered_real_token_is_refused(onboarding, resource_clients):
    token = _real_token(onboarding, scope="artisans:read")
    client, url = resource_clients["payments"]
    assert_problem(client.get(url, headers=bearer(token)), 403, "insufficient_scope")
    tampered = forge.tamper_payload(token, scope="artisans:read payments:read")
    assert_problem(client.get(url, headers=bearer(tampered)), 401, "invalid_token")


def test_payments_verifies_through_onboardings_jwks(onboarding, onboarding_app, make_payments_app):
    """Wire a verifier to onboarding's real JWKS endpoint (over the test client, no sockets)."""
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        # A fresh context, as if onboarding were another process: its request must not reset
        # the request id of the payments request that is asking.
        response = contextvars.Context().run(onboarding.get, "/.well-known/jwks.json")
        assert response.status_code == 200
        return response.get_json()

    keys = RemoteKeySet("http://onboarding/.well-known/jwks.json", fetch=fetch)
    client = make_payments_app(key_lookup=keys).test_client()
    token = _real_token(onboarding)
    assert_problem(client.get(PAYEE_URL, headers=bearer(token)), 404, "resource_not_found")
    assert_problem(client.get(PAYEE_URL, headers=bearer(token)), 404, "resource_not_found")
    assert len(calls) == 1
    kid = jwt.get_unverified_header(token)["kid"]
    forged = forge.hs256_with_public_key(kid, keys(kid), forge.claims(ISSUER, "hirfa-payments"))
    assert_problem(client.get(PAYEE_URL, headers=bearer(forged)), 401, "invalid_token")


# --- bank partner clients are bound to their bank -----------------------------------------------


def _uow(onboarding_app):
    return onboarding_app.extensions["hirfa"].uow_factory()


def test_a_bank_partner_client_gets_tokens_carrying_its_bank_code(onboarding_app, onboarding):
    from services.onboarding.service_layer.api_clients import create_client

    new = create_client(_uow(onboarding_app), name="Banque Test", role=Role.BANK_PARTNER, bank_code="145")
    assert new.bank_code == "145"

    response = onboarding.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic(new.client_id, new.client_secret)
    )

    assert response.status_code == 200, response.get_json()
    claims = _claims(response.get_json()["access_token"])
    assert claims["role"] == "bank_partner"
    assert claims["bank_code"] == "145"


def test_a_marketplace_token_names_no_bank(onboarding):
    assert "bank_code" not in _claims(_real_token(onboarding))


@pytest.mark.parametrize(
    ("role", "bank_code"),
    [
        (Role.BANK_PARTNER, None),  # a bank partner must be bound to a bank
        (Role.BANK_PARTNER, "14"),
        (Role.BANK_PARTNER, "999"),  # not a bank Hirfa knows
        (Role.MARKETPLACE, "145"),  # only bank partners are bound to a bank
    ],
)
def test_a_client_is_refused_a_bank_it_cannot_have(onboarding_app, role, bank_code):
    from services.onboarding.service_layer.api_clients import create_client
    from shared.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        create_client(_uow(onboarding_app), name="Nope", role=role, bank_code=bank_code)
    assert refused.value.param == "bank_code"


def test_an_unbound_bank_partner_gets_no_token_until_bound(onboarding_app, onboarding):
    # A client created before bank partners were bound to banks (the migration leaves it null).
    from services.onboarding.adapters.orm import ApiClient
    from services.onboarding.domain.api_clients import hash_secret
    from services.onboarding.service_layer.api_clients import bind_to_bank

    uow = _uow(onboarding_app)
    with uow:
        uow.session.add(
            ApiClient(
                id="cli_old_bank", name="Old bank", role="bank_partner", secret_hash=hash_secret("s3cret")
            )
        )
        uow.commit()
    ask = {"data": {"grant_type": "client_credentials"}, "headers": basic("cli_old_bank", "s3cret")}

    assert_problem(onboarding.post(TOKEN_URL, **ask), 401, "invalid_client")

    bind_to_bank(_uow(onboarding_app), "cli_old_bank", "350")
    response = onboarding.post(TOKEN_URL, **ask)
    assert response.status_code == 200, response.get_json()
    assert _claims(response.get_json()["access_token"])["bank_code"] == "350"


def test_the_cli_creates_a_bank_partner_bound_to_its_bank(onboarding_config, monkeypatch):
    from click.testing import CliRunner

    from services.onboarding import cli as onboarding_cli

    monkeypatch.setattr(
        onboarding_cli, "bootstrap", lambda *a, **k: onboarding_cli_context(onboarding_config)
    )
    runner = CliRunner()
    created = runner.invoke(
        onboarding_cli.cli,
        ["clients", "create", "--name", "BP", "--role", "bank_partner", "--bank-code", "145"],
    )
    assert created.exit_code == 0, created.output
    assert "bank_code:     145" in created.output

    unbound = runner.invoke(
        onboarding_cli.cli, ["clients", "create", "--name", "BP", "--role", "bank_partner"]
    )
    assert unbound.exit_code != 0
    assert "bound to its bank" in unbound.output


def onboarding_cli_context(config):
    from services.onboarding.bootstrap import bootstrap

    return bootstrap(config)


def test_the_demo_bank_partner_is_bound_to_bank_145(onboarding_app, onboarding):
    # As `hirfa onboarding init` seeds them on a `make run` stack.
    from services.onboarding.cli import DEMO_CLIENTS
    from services.onboarding.service_layer.api_clients import ensure_client

    for client_id, secret, name, role, bank_code in DEMO_CLIENTS:
        ensure_client(
            _uow(onboarding_app),
            client_id=client_id,
            client_secret=secret,
            name=name,
            role=role,
            bank_code=bank_code,
        )
    response = onboarding.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers=basic("cli_demo_bank", "demo-bank-secret"),
    )
    assert response.status_code == 200, response.get_json()
    assert _claims(response.get_json()["access_token"])["bank_code"] == "145"
