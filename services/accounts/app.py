"""Accounts' composition root."""

from __future__ import annotations

from flask import Flask

from services.accounts.adapters.orm import IdempotencyKey, InboxMessage, OutboxMessage
from services.accounts.api import balances, ledger, payouts
from services.accounts.config import AccountsConfig, load_config
from shared.app import create_service_app
from shared.auth.tokens import KeyLookup
from shared.context import Models, ServiceContext, build_verifying_context

MODELS = Models(outbox=OutboxMessage, inbox=InboxMessage, idempotency_key=IdempotencyKey)


def bootstrap(config: AccountsConfig | None = None, key_lookup: KeyLookup | None = None) -> ServiceContext:
    return build_verifying_context(config or load_config(), MODELS, key_lookup)


def create_app(config: AccountsConfig | None = None, key_lookup: KeyLookup | None = None) -> Flask:
    return create_service_app(
        bootstrap(config, key_lookup),
        title="Hirfa Accounts API",
        blueprints=[balances.blp, *ledger.blueprints, payouts.blp],
    )
