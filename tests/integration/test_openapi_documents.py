"""Each service's OpenAPI document: valid, complete for every operation (description, examples,
security, problem+json answers), and true to what the service answers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from shared.auth.scopes import ALL_SCOPES, ONBOARDING_SERVICE_ID, ROLE_SCOPES, Role
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.problem_codes import catalogued

SERVICES = ("onboarding_app", "payments_app", "accounts_app")
METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}

# What anyone may call without a token: the token endpoint, the keys, sign-in, partners' signed
# callbacks, the browser's return from 3-D Secure, and a bank checking an income statement.
PUBLIC = {
    "onboarding_app": {
        ("post", "/v1/oauth/token"),
        ("get", "/.well-known/jwks.json"),
        ("post", "/v1/artisan-sessions"),
        ("post", "/v1/artisan-sessions/{sign_in_id}/verify"),
        ("post", "/v1/artisan-sessions/refresh"),
        ("post", "/v1/artisan-sessions/logout"),
        ("post", "/v1/staff-sessions"),
        ("post", "/v1/staff-sessions/refresh"),
        ("post", "/v1/staff-sessions/logout"),
        ("post", "/v1/staff-enrolments"),
        ("post", "/v1/staff-enrolments/confirm"),
        ("post", "/v1/banks/{bank}/callbacks"),
        ("post", "/v1/sms/receipts"),
    },
    "payments_app": {
        ("get", "/v1/payments/{payment_id}/three-ds-return"),
        ("post", "/v1/gateways/{gateway}/callbacks"),
    },
    "accounts_app": {
        ("post", "/v1/banks/{bank}/callbacks"),
        ("post", "/v1/income-statements/verify"),
        ("get", "/v1/income-statements/{code}"),
        ("get", "/.well-known/jwks.json"),
    },
}


@pytest.fixture(params=SERVICES)
def service(request):
    return request.param, request.getfixturevalue(request.param)


@pytest.fixture
def document(service) -> dict[str, Any]:
    _, app = service
    return app.test_client().get("/openapi.json").get_json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def documented_codes(operation: dict[str, Any], status: int) -> set[str]:
    response = operation["responses"].get(str(status), {})
    return set(response.get("content", {}).get(PROBLEM_CONTENT_TYPE, {}).get("examples", {}))


def test_the_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"].startswith("3.")


def test_every_operation_has_a_description_and_examples(document):
    missing = []
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        if not operation.get("summary") or not operation.get("description"):
            missing.append(f"{where}: summary and description")
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += list(operation["responses"].items())
        for name, body in bodies:
            for media_type, media in body.get("content", {}).items():
                if "example" not in media and "examples" not in media:
                    missing.append(f"{where} {name} {media_type}: example")
        if not any(status.startswith(("2", "3")) for status in operation["responses"]):
            missing.append(f"{where}: a successful answer")
    assert not missing, "\n".join(missing)


def test_every_operation_states_its_security(service, document):
    name, _ = service
    schemes = document["components"]["securitySchemes"]
    granted = set(schemes["oauth2"]["flows"]["clientCredentials"]["scopes"])
    assert granted == ALL_SCOPES
    assert "security" not in document  # no default: each operation says what it needs
    for method, path, operation in operations(document):
        assert "security" in operation, f"{method.upper()} {path} states no security"
        if (method, path) in PUBLIC[name]:
            assert operation["security"] == [], f"{method.upper()} {path} is public"
            continue
        assert operation["security"], f"{method.upper()} {path} needs a token"
        for requirement in operation["security"]:
            assert set(requirement) == {"oauth2"}
            assert set(requirement["oauth2"]) <= granted


def test_every_error_answer_is_a_catalogued_problem(document):
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "default" not in responses, where
        assert {"500", "503"} <= set(responses), where
        for status, response in responses.items():
            if int(status) < 400:
                continue
            assert set(response["content"]) == {PROBLEM_CONTENT_TYPE}, f"{where} {status}"
            media = response["content"][PROBLEM_CONTENT_TYPE]
            assert media["schema"] == PROBLEM_SCHEMA, f"{where} {status}"
            assert media["examples"], f"{where} {status} lists no code"
            for code, example in media["examples"].items():
                assert catalogued(code).status == int(status), f"{where}: {code} is not a {status}"
                assert example["value"]["code"] == code and example["value"]["status"] == int(status)
                assert f"`{code}`" in response["description"]
        if operation["security"]:
            assert {"unauthenticated", "invalid_token", "token_expired"} <= documented_codes(operation, 401)


def test_every_example_fits_its_schema(document):
    wrong = []
    for method, path, operation in operations(document):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += list(operation["responses"].items())
        for name, body in bodies:
            for media_type, media in body.get("content", {}).items():
                if "schema" not in media or not media_type.endswith("json"):
                    continue
                examples = [media["example"]] if "example" in media else []
                examples += [example["value"] for example in media.get("examples", {}).values()]
                # The schema at the root beside the components its references point into.
                validator = OAS30Validator({"allOf": [media["schema"]], "components": document["components"]})
                for example in examples:
                    for error in validator.iter_errors(example):
                        wrong.append(f"{method.upper()} {path} {name}: {error.message}")
    assert not wrong, "\n".join(wrong)


def _url(path: str) -> str:
    # An id of the right shape that names nothing, for every path parameter.
    return re.sub(r"\{[^}]+\}", "zz_01JF8Z3K2M6X9T4B7C5D1E0F2G", path)


def _token_for(operation: dict[str, Any], issue_token) -> str | None:
    """A token of a role whose client holds every scope of the operation's first security
    alternative; for a scope no client is granted (``personal_data:collect``), onboarding's own."""
    if not operation["security"]:
        return None
    needed = set(operation["security"][0]["oauth2"])
    preferred = (
        Role.MARKETPLACE,
        Role.OPERATOR,
        Role.COMPLIANCE,
        Role.BANK_PARTNER,
        Role.ARTISAN,
        Role.SERVICE,
    )
    role = next((role for role in preferred if needed <= ROLE_SCOPES[role]), None)
    if role is None:
        return issue_token(Role.SERVICE, client_id=ONBOARDING_SERVICE_ID, scopes=needed)
    return issue_token(role)


def _example_call(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's documented request: its example body (JSON) and an Idempotency-Key."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        return {"headers": headers}
    example = media["example"] if "example" in media else next(iter(media["examples"].values()))["value"]
    return {"headers": headers, "json": example}


def test_what_each_operation_answers_is_what_its_document_says(service, document, issue_token):
    """Every operation called without a token, with a token holding no scope, with a body that is
    not JSON, and as documented (its example body, a token of a role holding its scopes, ids that
    name nothing): each refusal is a problem whose code the operation documents for its status, a
    secured operation refuses the caller without a token, and none answers 500."""
    name, app = service
    client = app.test_client()
    unscoped = {"Authorization": "Bearer " + issue_token(Role.MARKETPLACE, scopes=[])}
    mismatches = []
    for method, path, operation in operations(document):
        calls = [("no token", {"headers": {}})]
        if operation["security"]:
            calls.append(("no scope", {"headers": unscoped}))
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            calls.append(("not JSON", {"headers": {}, "data": "{", "content_type": "application/json"}))
        documented = _example_call(operation)
        token = _token_for(operation, issue_token)
        if token is not None:
            documented["headers"]["Authorization"] = "Bearer " + token
        calls.append(("as documented", documented))
        for call, request in calls:
            response = client.open(_url(path), method=method.upper(), **request)
            where = f"{method.upper()} {path} ({call}): {response.status_code}"
            if response.status_code >= 400:
                assert response.mimetype == PROBLEM_CONTENT_TYPE, where
                code = response.get_json()["code"]
                if code == "internal_error" or code not in documented_codes(operation, response.status_code):
                    mismatches.append(
                        f"{where} {code} is not documented: {response.get_json().get('detail')}"
                    )
            if call == "no token" and operation["security"] and response.status_code != 401:
                mismatches.append(f"{where}, not 401 without a token")
    assert not mismatches, "\n".join(mismatches)
