"""Each service's app answers oversized request lines, headers and bodies as problem+json (through
the Flask test client; ``tests/e2e/test_request_limits.py`` does the same through gunicorn)."""

from __future__ import annotations

import pytest

from shared.errors import PROBLEM_CONTENT_TYPE

pytestmark = pytest.mark.integration


@pytest.fixture(params=["onboarding", "payments", "accounts"])
def client(request):
    return request.getfixturevalue(f"{request.param}_app").test_client()


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"headers": {"X-Big": "a" * 17_000}}, 431, "request_header_too_large"),
        ({"headers": {f"X-H-{i}": "v" for i in range(120)}}, 431, "too_many_request_headers"),
        ({"query_string": "q=" + "a" * 5000}, 414, "request_line_too_long"),
    ],
    ids=["17kb-header", "120-headers", "5kb-query"],
)
def test_oversized_requests_are_problems(client, kwargs, status, code):
    response = client.get("/healthz", **kwargs)
    assert response.status_code == status
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    assert response.get_json()["code"] == code


def test_an_oversized_body_is_a_problem(client):
    response = client.post(
        "/v1/anything", data=b"{}" + b" " * (2 * 1024 * 1024), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    assert response.get_json()["code"] == "request_too_large"


def test_a_request_within_the_limits_is_served(client):
    assert client.get("/healthz", headers={"X-Fine": "a" * 8192}).status_code == 200


@pytest.mark.parametrize(
    "respell", [lambda t: t + "==", lambda t: t + "=", lambda t: t.replace(".", "=.", 1)]
)
def test_a_valid_token_spelled_with_padding_is_refused_over_http(payments_app, issue_token, respell):
    """The black-box finding: a valid token with ``==`` appended to its signature was accepted."""
    client = payments_app.test_client()
    token = issue_token()
    assert client.get("/v1/payments", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    response = client.get("/v1/payments", headers={"Authorization": f"Bearer {respell(token)}"})
    assert response.status_code == 401
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    assert response.get_json()["code"] == "invalid_token"
