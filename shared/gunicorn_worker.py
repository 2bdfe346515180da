"""Gunicorn's threaded worker, answering the requests it refuses itself as problem+json.

A request line, header or framing that gunicorn cannot or will not parse never reaches a WSGI app;
gunicorn's own answer is an HTML page quoting the request. This worker answers those with the same
problems the app's limits middleware (``shared.wsgi_limits``) uses, and quotes nothing. Selected by
``worker_class`` in ``deploy/gunicorn.conf.py``.
"""

from __future__ import annotations

from typing import Any

from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.http import errors  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from shared.errors import HirfaError
from shared.wsgi_limits import (
    MalformedHttpRequest,
    RequestHeaderTooLarge,
    RequestLineTooLong,
    TooManyRequestHeaders,
    UnsupportedTransferCoding,
    raw_problem_response,
)

_MALFORMED = tuple(
    getattr(errors, name)
    for name in (
        "InvalidRequestLine",
        "InvalidRequestMethod",
        "InvalidHTTPVersion",
        "InvalidHeader",
        "InvalidHeaderName",
        "InvalidSchemeHeaders",
        "ObsoleteFolding",
        "InvalidChunkSize",
        "ChunkMissingTerminator",
        "InvalidChunkExtension",
    )
    if hasattr(errors, name)
)


def problem_for(exc: BaseException) -> HirfaError | None:
    """The problem for a request gunicorn refused, or None for anything else (gunicorn's own
    handling stays: a 500 for the app's faults, a 403 for a refused proxy or TLS client)."""
    if isinstance(exc, errors.LimitRequestLine):
        return RequestLineTooLong("The request line is longer than the server accepts.")
    if isinstance(exc, errors.LimitRequestHeaders):
        # gunicorn's messages: "limit request headers fields" (their number), "… fields size", "max
        # buffer headers".
        if str(exc).strip() == "limit request headers fields":
            return TooManyRequestHeaders("The request has more headers than the server accepts.")
        return RequestHeaderTooLarge("The request's headers are larger than the server accepts.")
    unsupported = getattr(errors, "UnsupportedTransferCoding", None)
    if unsupported is not None and isinstance(exc, unsupported):
        return UnsupportedTransferCoding("Send the body with Content-Length or chunked encoding.")
    if isinstance(exc, _MALFORMED):
        return MalformedHttpRequest("The request line or headers could not be parsed.")
    return None


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        problem = problem_for(exc)
        if problem is None:
            super().handle_error(req, client, addr, exc)
            return
        peer = addr[0] if addr else ""
        self.log.warning("Invalid request from ip=%s: %s (%s)", peer, problem.code, type(exc).__name__)
        try:
            util.write_nonblock(client, raw_problem_response(problem))
        except Exception:  # noqa: BLE001 - the client may be gone; nothing to answer then
            self.log.debug("Failed to send error message.")
