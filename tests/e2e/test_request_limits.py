"""Oversized and malformed requests answered as problem+json by the real server: the payments API
started from its Procfile line (gunicorn with ``deploy/gunicorn.conf.py``) on a free port.

Below gunicorn's own limits the app's middleware answers; above them, gunicorn's worker does; the
client sees the same problem either way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.stack import procfile_commands
from tests.support import ROOT, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, int]]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("limits")
    log = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        procfile_commands()["payments"],
        shell=True,
        cwd=ROOT,
        env={
            **os.environ,
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "PAYMENTS_PORT": str(port),
            "VAR_DIR": str(workdir / "var"),
            "LOG_JSON": "false",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # The socket listens before the worker has loaded the app: a first answer may be slow.
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (workdir / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, (workdir / "gunicorn.log").read_text()
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        log.close()


def exchange(server: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers (names in lower case) and body of the answer."""
    with socket.create_connection(server, timeout=10) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may answer and close before it has read everything
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length and len(body) >= int(length[0].split(b":")[1]):
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)
    }
    return int(status_line.split()[1]), headers, body


def get(target: str = "/healthz", headers: bytes = b"") -> bytes:
    return (
        b"GET " + target.encode() + b" HTTP/1.1\r\nHost: hirfa\r\n" + headers + b"Connection: close\r\n\r\n"
    )


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> dict:
    got_status, headers, body = answer
    assert got_status == status, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["request_id"] == headers["x-request-id"]
    return problem


def many_headers(count: int) -> bytes:
    return b"".join(b"X-Header-%d: v\r\n" % i for i in range(count))


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        # over the app's limit, under gunicorn's (the app's middleware answers)
        (get(headers=b"X-Big: " + b"a" * 17_000 + b"\r\n"), 431, "request_header_too_large"),
        # over gunicorn's own limit too (gunicorn's worker answers)
        (get(headers=b"X-Big: " + b"a" * 30_000 + b"\r\n"), 431, "request_header_too_large"),
        (get(headers=many_headers(110)), 431, "too_many_request_headers"),
        (get(headers=many_headers(300)), 431, "too_many_request_headers"),
        (get("/healthz?" + "a" * 5000), 414, "request_line_too_long"),
        (get("/healthz?" + "a" * 9000), 414, "request_line_too_long"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed_http_request"),
        (get(headers=b"Bad Header Name: x\r\n"), 400, "malformed_http_request"),
    ],
    ids=[
        "17kb-header",
        "30kb-header",
        "110-headers",
        "300-headers",
        "5kb-request-line",
        "9kb-request-line",
        "not-http",
        "bad-header-name",
    ],
)
def test_what_gunicorn_or_the_middleware_refuses_is_a_problem(server, request_bytes, status, code):
    problem = assert_problem(exchange(server, request_bytes), status, code)
    assert "aaaaaaaa" not in json.dumps(problem)  # nothing of the request is echoed


def post(body: bytes, *, chunked: bool) -> bytes:
    head = b"POST /v1/payments HTTP/1.1\r\nHost: hirfa\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (body[i : i + 65536] for i in range(0, len(body), 65536))
    )
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_a_413_problem_however_it_is_framed(server, chunked):
    body = b'{"description": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    assert_problem(exchange(server, post(body, chunked=chunked)), 413, "request_too_large")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_within_the_limit_reaches_the_api_however_it_is_framed(server, chunked):
    # No token: the API itself answers, which means the body got through the limits and the JSON guard.
    assert_problem(exchange(server, post(b'{"amount": 100}', chunked=chunked)), 401, "unauthenticated")


def test_requests_within_the_limits_are_served(server):
    status, headers, body = exchange(
        server, get(headers=b"X-Fine: " + b"a" * 4000 + b"\r\n" + many_headers(50))
    )
    assert status == 200 and json.loads(body)["status"] == "ok"
