"""The bank sandbox's Flask app.

Run it as its own process, with one worker: state is in memory, so several workers would each
hold a different bank. ``python -m sandbox.bank`` does that; so does
``gunicorn --workers 1 --threads 8 "sandbox.bank.app:create_app()"``.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify

from sandbox.bank import account_openings, client_funds, holder_verifications, transfers
from sandbox.bank.callbacks import bank_callback_sender
from sandbox.bank.config import SandboxBankConfig
from sandbox.common import idempotency
from sandbox.common.auth import require_api_key
from sandbox.common.errors import register_error_handlers

CALLBACKS_EXTENSION_KEY = "bank_sandbox.callbacks"
# Endpoints a caller may reach without the API key (a load balancer's health check has none).
_PUBLIC_ENDPOINTS = {"healthz"}


def create_app(
    config: SandboxBankConfig | None = None, fetch_settlement: client_funds.SettlementFetcher | None = None
) -> Flask:
    """The bank sandbox; ``fetch_settlement`` replaces reading the acquirer over HTTP (tests)."""
    config = config or SandboxBankConfig.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False
    register_error_handlers(
        app,
        log=logging.getLogger("sandbox.bank"),
        server_error_code="internal_error",
        server_error_message="The bank sandbox failed unexpectedly.",
    )
    require_api_key(app, config.api_key, realm="bank-sandbox", public_endpoints=_PUBLIC_ENDPOINTS)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    idempotency.register(app)
    callbacks = bank_callback_sender(config)
    app.extensions[CALLBACKS_EXTENSION_KEY] = callbacks
    account_openings.register(app, config, callbacks)
    funds = client_funds.register(
        app, config, fetch_settlement or client_funds.http_settlement_fetcher(config)
    )
    transfers.register(app, config, callbacks, on_paid=funds.transfer_paid)
    holder_verifications.register(app)
    return app


def stop_background_work(app: Flask, timeout_seconds: float = 5.0) -> None:
    """Cancel pending callbacks and wait for deliveries in flight (tests call it between cases)."""
    app.extensions[CALLBACKS_EXTENSION_KEY].close(timeout_seconds)
