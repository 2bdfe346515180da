"""The request-limits middleware on its own: a bare WSGI app behind it, driven by Werkzeug's client."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from shared.errors import PROBLEM_CONTENT_TYPE
from shared.wsgi_limits import (
    RequestHeaderTooLarge,
    RequestLimits,
    RequestLimitsMiddleware,
    limit_exceeded,
    raw_problem_response,
)

LIMITS = RequestLimits()
reached: list[str] = []


def app(environ, start_response):
    reached.append(environ["PATH_INFO"])
    return Response("ok")(environ, start_response)


@pytest.fixture
def client() -> Client:
    reached.clear()
    return Client(RequestLimitsMiddleware(app, LIMITS))


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    problem = json.loads(response.get_data())
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"].endswith(code)
    assert problem["request_id"] == response.headers["X-Request-Id"]
    assert reached == []  # the app never saw it
    return problem


def test_a_request_within_the_limits_reaches_the_app(client):
    headers = {f"X-Header-{i}": "v" * 100 for i in range(LIMITS.max_header_fields - 5)}
    response = client.get("/v1/payments?" + "a" * 3000, headers=headers)
    assert response.status_code == 200 and reached == ["/v1/payments"]


def test_an_8_kb_header_is_fine(client):
    assert client.get("/", headers={"X-Big": "a" * 8192}).status_code == 200


def test_a_17_kb_header_is_a_431_problem(client):
    problem = assert_problem(
        client.get("/", headers={"X-Big": "a" * 17_000}), 431, "request_header_too_large"
    )
    assert problem["param"] == "X-BIG" and problem["limit"] == LIMITS.max_header_field_size
    assert "a" * 100 not in json.dumps(problem)  # the header is not echoed


def test_headers_too_large_together_are_a_431_problem(client):
    headers = {f"X-Part-{i}": "a" * 8000 for i in range(5)}  # each fine, 40 KB in all
    problem = assert_problem(client.get("/", headers=headers), 431, "request_header_too_large")
    assert problem["limit"] == LIMITS.max_header_bytes


def test_too_many_headers_are_a_431_problem(client):
    headers = {f"X-Header-{i}": "v" for i in range(LIMITS.max_header_fields + 1)}
    assert_problem(client.get("/", headers=headers), 431, "too_many_request_headers")


@pytest.mark.parametrize("target", ["/v1/" + "a" * 4100, "/v1/payments?starting_after=" + "a" * 4100])
def test_a_long_request_line_is_a_414_problem(client, target):
    path, _, query = target.partition("?")
    assert_problem(client.get(path, query_string=query), 414, "request_line_too_long")


def test_the_request_line_counts_what_the_server_received():
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/v1/x?" + "%41" * 1300,  # 3906 bytes on the wire, 1300 once decoded
        "PATH_INFO": "/v1/x",
        "QUERY_STRING": "%41" * 1300,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    assert limit_exceeded(environ, RequestLimits(max_request_line=3000)).code == "request_line_too_long"
    assert limit_exceeded(environ, RequestLimits(max_request_line=4000)) is None


def test_a_raw_response_is_a_whole_http_answer():
    raw = raw_problem_response(RequestHeaderTooLarge("Too big."))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert f"Content-Type: {PROBLEM_CONTENT_TYPE}" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body)["code"] == "request_header_too_large"
