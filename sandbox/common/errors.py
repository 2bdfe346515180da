"""JSON errors in the partner's own shape, ``{"code", "message"[, "param"]}``: not Hirfa's problem+json.

Hirfa's adapters must cope with each partner's error format; the sandboxes keep it distinct on purpose
so that code path is exercised. Routing errors (404, 405) come out in the same shape.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}


def error_response(error: ApiError) -> tuple[Response, int, dict[str, str]]:
    body = {"code": error.code, "message": error.message}
    if error.param:
        body["param"] = error.param
    return jsonify(body), error.status, error.headers


def register_error_handlers(
    app: Flask, *, log: logging.Logger, server_error_code: str, server_error_message: str
) -> None:
    """Answer ``ApiError``, routing errors and crashes as JSON; every 5xx carries ``server_error_code``."""
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if status >= 500:
            return error_response(ApiError(status, server_error_code, server_error_message))
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(ApiError(status, code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error in the sandbox")
        return error_response(ApiError(500, server_error_code, server_error_message))
