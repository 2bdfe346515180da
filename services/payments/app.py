"""Payments' web app: the context ``bootstrap`` wires, served by the shared app factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.payments.api import back_office, ledger_audit, payees, payments, personal_data, webhooks
from services.payments.bootstrap import bootstrap
from services.payments.config import PaymentsConfig, load_config
from shared.app import create_service_app
from shared.config import Process
from shared.wsgi_limits import limit_requests


def create_app(config: PaymentsConfig | None = None, **adapters: Any) -> Flask:
    """``adapters``: what ``bootstrap`` takes beside the config (``key_lookup``, ``gateways`` with
    ``default_gateway``, ``webhook_sender``, ``webhooks``)."""
    return limit_requests(
        create_service_app(
            bootstrap(config or load_config(process=Process.API), **adapters),
            title="Hirfa Payments API",
            blueprints=[
                payees.blp,
                *payments.blueprints,
                webhooks.blp,
                back_office.blp,
                ledger_audit.blp,
                personal_data.blp,
            ],
        )
    )
