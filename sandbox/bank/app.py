"""The bank sandbox's Flask app.

Run it as its own process, with one worker: state is in memory, so several workers would each
hold a different bank. ``python -m sandbox.bank`` does that; so does
``gunicorn --workers 1 --threads 8 "sandbox.bank.app:create_app()"``.
"""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

from sandbox.bank import account_openings, transfers
from sandbox.bank.callbacks import CallbackSender
from sandbox.bank.config import SandboxBankConfig
from sandbox.bank.errors import ApiError, register_error_handlers

CALLBACKS_EXTENSION_KEY = "bank_sandbox.callbacks"
# Endpoints a caller may reach without the API key (a load balancer's health check has none).
_PUBLIC_ENDPOINTS = {"healthz"}


def _bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def create_app(config: SandboxBankConfig | None = None) -> Flask:
    config = config or SandboxBankConfig.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False
    register_error_handlers(app)

    @app.before_request
    def require_api_key() -> None:
        if request.endpoint in _PUBLIC_ENDPOINTS:
            return
        token = _bearer_token(request.headers.get("Authorization"))
        # Constant-time comparison: response timing must not reveal how much of a guess was right.
        if token is None or not hmac.compare_digest(token.encode("utf-8"), config.api_key.encode("utf-8")):
            raise ApiError(
                401,
                "unauthorized",
                "Send the sandbox API key as Authorization: Bearer <key>.",
                headers={"WWW-Authenticate": 'Bearer realm="bank-sandbox"'},
            )

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    callbacks = CallbackSender(config)
    app.extensions[CALLBACKS_EXTENSION_KEY] = callbacks
    account_openings.register(app, config, callbacks)
    transfers.register(app, config, callbacks)
    return app


def stop_background_work(app: Flask, timeout_seconds: float = 5.0) -> None:
    """Cancel pending callbacks and wait for deliveries in flight (tests call it between cases)."""
    app.extensions[CALLBACKS_EXTENSION_KEY].close(timeout_seconds)
