"""JSON errors in the bank's own shape, ``{"code", "message"[, "param"]}``: not Hirfa's problem+json.

Hirfa's bank adapters must cope with a partner's error format; the sandbox keeps it distinct on
purpose so that code path is exercised.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("sandbox.bank")


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


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(ApiError(exc.code or 500, code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error in the bank sandbox")
        return error_response(ApiError(500, "internal_error", "The bank sandbox failed unexpectedly."))
