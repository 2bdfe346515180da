"""Limits on a request's line and headers, answered as problem+json like every other client error.

``RequestLimitsMiddleware`` wraps each service's WSGI app and refuses, before Flask parses anything,
a request line, a header, or a set of headers over ``RequestLimits``. The web server's own limits
(``deploy/gunicorn.conf.py``) sit above these, so a request over them normally meets this
middleware first; one over even the server's limits never reaches a WSGI app, and the server's
worker (``shared.gunicorn_worker``) answers it with the same problems.

Bodies are limited by the app itself (``MAX_CONTENT_LENGTH`` and the per-endpoint guard:
``request_too_large``), which needs their size up front. A chunked body has none, so the middleware
reads it first (spooled to disk past 1 MiB), refuses it past the app's ceiling, and hands the app
a body of known length.
"""

from __future__ import annotations

import dataclasses
import http
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask

from shared.errors import PROBLEM_CONTENT_TYPE, HirfaError, RequestTooLarge
from shared.ids import new_id

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What a request may carry besides its body. Generous for any API client; far below what
    would let one request tie up memory."""

    max_request_line: int = 4096  # "POST /v1/payments?… HTTP/1.1", in bytes
    max_header_fields: int = 100
    max_header_field_size: int = 16 * 1024  # one "Name: value" line
    max_header_bytes: int = 32 * 1024  # every header line together


class RequestLineTooLong(HirfaError):
    code = "request_line_too_long"
    status = 414
    title = "The request line is too long"


class RequestHeaderTooLarge(HirfaError):
    code = "request_header_too_large"
    status = 431
    title = "A request header, or the headers together, are too large"


class TooManyRequestHeaders(HirfaError):
    code = "too_many_request_headers"
    status = 431
    title = "The request has too many headers"


class MalformedHttpRequest(HirfaError):
    code = "malformed_http_request"
    status = 400
    title = "The request is not valid HTTP"


class UnsupportedTransferCoding(HirfaError):
    code = "unsupported_transfer_coding"
    status = 501
    title = "The request's Transfer-Encoding is not supported"


def _request_target(environ: Mapping[str, Any]) -> str:
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/")
    query = str(environ.get("QUERY_STRING") or "")
    return f"{raw}?{query}" if query and "?" not in raw else raw


def _header_lines(environ: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(name, length of its "Name: value" line) for every header the server passed on."""
    lines = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-")
        else:
            continue
        lines.append((name, len(name) + 2 + len(str(value))))
    return lines


def limit_exceeded(environ: Mapping[str, Any], limits: RequestLimits) -> HirfaError | None:
    """The problem with this request's line or headers, or None when they are within ``limits``."""
    line = len(str(environ.get("REQUEST_METHOD", ""))) + len(_request_target(environ))
    line += len(str(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))) + 2
    if line > limits.max_request_line:
        return RequestLineTooLong(
            f"The request line has {line} bytes; at most {limits.max_request_line} are accepted.",
            limit=limits.max_request_line,
        )
    headers = _header_lines(environ)
    if len(headers) > limits.max_header_fields:
        return TooManyRequestHeaders(
            f"The request has {len(headers)} headers; at most {limits.max_header_fields} are accepted.",
            limit=limits.max_header_fields,
        )
    for name, size in headers:
        if size > limits.max_header_field_size:
            return RequestHeaderTooLarge(
                f"The {name} header has {size} bytes; at most {limits.max_header_field_size} are accepted.",
                param=name,
                limit=limits.max_header_field_size,
            )
    total = sum(size + 2 for _, size in headers)
    if total > limits.max_header_bytes:
        return RequestHeaderTooLarge(
            f"The headers have {total} bytes together; at most {limits.max_header_bytes} are accepted.",
            limit=limits.max_header_bytes,
        )
    return None


_READ_SIZE = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024


def size_unsized_body(environ: dict[str, Any], ceiling: int | None) -> HirfaError | None:
    """Read a chunked body to its end (at most ``ceiling`` bytes) and give the app that body with
    its ``Content-Length``; ``RequestTooLarge`` past the ceiling. Other requests are left alone."""
    if (
        environ.get("CONTENT_LENGTH")
        or "chunked" not in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    ):
        return None
    stream = environ["wsgi.input"]
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - handed to the app
    total = 0
    while chunk := stream.read(_READ_SIZE):
        total += len(chunk)
        if ceiling is not None and total > ceiling:
            spool.close()
            return RequestTooLarge(f"Request bodies are limited to {ceiling} bytes.", limit=ceiling)
        spool.write(chunk)
    spool.seek(0)
    environ["wsgi.input"] = spool
    environ["CONTENT_LENGTH"] = str(total)
    del environ["HTTP_TRANSFER_ENCODING"]  # sized now: the app's per-endpoint limits apply
    return None


def problem_body(error: HirfaError, request_id: str) -> bytes:
    return json.dumps(error.to_problem(request_id=request_id)).encode()


def raw_problem_response(error: HirfaError) -> bytes:
    """A whole HTTP/1.1 response, for a server that answers before any WSGI app runs."""
    request_id = new_id("req")
    body = problem_body(error, request_id)
    head = (
        f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-Id: {request_id}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class RequestLimitsMiddleware:
    """Refuses requests over ``limits`` with problem+json before the wrapped app sees them."""

    def __init__(
        self, app: WsgiApp, limits: RequestLimits | None = None, *, max_body_bytes: int | None = None
    ) -> None:
        self.app = app
        self.limits = limits or RequestLimits()
        self.max_body_bytes = max_body_bytes  # the largest body the app takes on any endpoint

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        error = limit_exceeded(environ, self.limits) or size_unsized_body(environ, self.max_body_bytes)
        if error is None:
            return self.app(environ, start_response)
        request_id = new_id("req")
        log.warning(
            "request refused before the app",
            extra={"request_id": request_id, "code": error.code, "status": error.status},
        )
        body = problem_body(error, request_id)
        start_response(
            f"{error.status} {http.HTTPStatus(error.status).phrase}",
            [
                ("Content-Type", PROBLEM_CONTENT_TYPE),
                ("Content-Length", str(len(body))),
                ("X-Request-Id", request_id),
            ],
        )
        return [body]


def limit_requests(app: Flask, limits: RequestLimits | None = None) -> Flask:
    """Wrap a Flask app's WSGI callable in the middleware (the test client goes through it too), with
    the app's own ceiling on bodies; returns the app."""
    app.wsgi_app = RequestLimitsMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, limits, max_body_bytes=app.config.get("MAX_CONTENT_LENGTH")
    )
    return app
