"""The M2T sandbox's Flask app.

Run it as its own process, with one worker: state is in memory, so several workers would each hold a
different acquirer. ``python -m sandbox.m2t`` does that; so does
``gunicorn --workers 1 --threads 8 "sandbox.m2t.app:create_app()"``.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify

from sandbox.common import idempotency
from sandbox.common.auth import require_api_key
from sandbox.common.errors import register_error_handlers
from sandbox.m2t import api, three_ds
from sandbox.m2t.callbacks import m2t_callback_sender
from sandbox.m2t.config import SandboxM2TConfig
from sandbox.m2t.gateway import EXTENSION_KEY as GATEWAY_EXTENSION_KEY
from sandbox.m2t.gateway import Gateway

CALLBACKS_EXTENSION_KEY = "m2t_sandbox.callbacks"
# Reachable without the API key: a load balancer's health check, and the buyer's browser on the
# 3-D Secure page.
_PUBLIC_ENDPOINTS = {"healthz", *three_ds.PUBLIC_ENDPOINTS}


def create_app(config: SandboxM2TConfig | None = None) -> Flask:
    config = config or SandboxM2TConfig.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False
    register_error_handlers(
        app,
        log=logging.getLogger("sandbox.m2t"),
        server_error_code="processing_error",
        server_error_message="The M2T sandbox failed unexpectedly.",
    )
    require_api_key(app, config.api_key, realm="m2t-sandbox", public_endpoints=_PUBLIC_ENDPOINTS)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    callbacks = m2t_callback_sender(config)
    app.extensions[CALLBACKS_EXTENSION_KEY] = callbacks
    app.extensions[GATEWAY_EXTENSION_KEY] = Gateway(config, callbacks)
    idempotency.register(app)

    @app.after_request
    def answer_late(response: Response) -> Response:
        # The timeout test card: everything is done and stored, only the answer is held back.
        delay = g.pop(api.ANSWER_DELAY_KEY, 0)
        if delay:
            callbacks.pause(delay)
        return response

    api.register(app, config)
    three_ds.register(app)
    return app


def stop_background_work(app: Flask, timeout_seconds: float = 5.0) -> None:
    """Cancel pending callbacks and decisions, wait for deliveries in flight, cut slow answers short."""
    app.extensions[CALLBACKS_EXTENSION_KEY].close(timeout_seconds)
