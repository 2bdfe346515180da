"""Accounts' web app, around the context ``bootstrap`` wires."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.accounts.api import (
    account_statements,
    adjustments,
    balances,
    income_statements,
    ledger,
    marketplaces,
    payouts,
    personal_data,
    reconciliation,
)
from services.accounts.bootstrap import bootstrap, require_statement_key
from services.accounts.config import AccountsConfig, load_config
from services.accounts.service_layer.completeness import LedgerGapsCollector
from shared.app import create_service_app
from shared.config import Process
from shared.wsgi_limits import limit_requests


def create_app(config: AccountsConfig | None = None, **adapters: Any) -> Flask:
    """``adapters``: what ``bootstrap`` takes instead of building from config (tests' fakes)."""
    context = bootstrap(config or load_config(process=Process.API), **adapters)
    require_statement_key(context)
    return limit_requests(
        create_service_app(
            context,
            title="Hirfa Accounts API",
            blueprints=[
                balances.blp,
                *ledger.blueprints,
                payouts.blp,
                account_statements.blp,
                *income_statements.blueprints,
                marketplaces.blp,
                adjustments.blp,
                reconciliation.blp,
                personal_data.blp,
            ],
            upload_endpoints={reconciliation.UPLOAD_ENDPOINT: context.config.reconciliation_max_upload_bytes},
            collectors=[LedgerGapsCollector(context.uow_factory)],
        )
    )
