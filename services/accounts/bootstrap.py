"""Accounts' composition root: every adapter is built here, once, from the configuration.

The web app, the consumer and the worker all start from ``bootstrap(config)``; tests pass fakes
as keyword arguments (``bank_partners=``, ``key_lookup=``, ``settlement_sources=``,
``statement_source=``, ``payments_view=``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from services.accounts.adapters.banks import HttpBankPartner
from services.accounts.adapters.file_store import LocalFileStore
from services.accounts.adapters.ledger_session import install_ledger_session_hooks
from services.accounts.adapters.orm import BrokerTopic, IdempotencyKey, InboxMessage, OutboxMessage
from services.accounts.adapters.payments_api import HttpPaymentsLedgerView
from services.accounts.adapters.rate_limits import SlidingWindowLimiter
from services.accounts.adapters.settlement_sources import make_settlement_sources
from services.accounts.adapters.statement_pdf import FpdfStatementRenderer
from services.accounts.adapters.statement_signing import JwsStatementSigner
from services.accounts.adapters.statement_sources import HttpStatementSource
from services.accounts.config import AccountsConfig, load_config
from services.accounts.context import AccountsContext
from services.accounts.domain.ports import PaymentsLedgerView, SettlementSource, StatementSource
from services.accounts.domain.reconciliation import parse_fee_schedules
from services.accounts.service_layer.adjustments import configure_adjustments, propose_adjustment
from services.accounts.service_layer.income_statements import IncomeStatementSettings
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.reconciliation import ReconciliationSettings
from shared.auth.keys import SigningKeyStore
from shared.auth.tokens import KeyLookup
from shared.config import ConfigError
from shared.context import Models, build_verifying_context
from shared.partner_ports import PartnerRegistry

MODELS = Models(
    outbox=OutboxMessage, inbox=InboxMessage, idempotency_key=IdempotencyKey, broker_topic=BrokerTopic
)


def make_bank_partners(config: AccountsConfig) -> PartnerRegistry:
    """The partner that executes payouts, reached through the bank-partner API."""
    adapter = HttpBankPartner.from_config(config)
    return PartnerRegistry({config.payout_partner_bank: adapter})


def make_payout_settings(config: AccountsConfig, partners: PartnerRegistry) -> PayoutSettings:
    if config.payout_partner_bank not in partners:
        # Checked at start-up, not on the first payout.
        raise ConfigError(f"PAYOUT_PARTNER_BANK: no bank partner {config.payout_partner_bank!r} is wired")
    return PayoutSettings(
        partners=partners,
        partner_bank=config.payout_partner_bank,
        source_bank_code=config.payout_bank_code,
        currency=config.ledger_currency,
        callback_base_url=config.public_url,
        poll_after=config.payout_poll_after,
        idempotency_key_ttl=dt.timedelta(hours=config.idempotency_key_ttl_hours),
        artisan_idempotency_key_ttl=dt.timedelta(hours=config.artisan_idempotency_key_ttl_hours),
    )


def make_reconciliation_settings(config: AccountsConfig) -> ReconciliationSettings:
    """Runs' file store (a local directory, default ``<var_dir>/reconciliation``), fee schedules and banks."""
    directory = config.reconciliation_dir or str(Path(config.var_dir) / "reconciliation")
    return ReconciliationSettings(
        file_store=LocalFileStore(directory),
        currency=config.ledger_currency,
        default_bank_code=config.payout_bank_code,
        settlement_banks=config.settlement_banks,
        fee_schedules=parse_fee_schedules(config.gateway_fee_schedules),
        tolerance=config.reconciliation_tolerance,
        gateways=config.settlement_gateway_names,
        statement_banks=config.statement_banks,
        first_day=dt.date.fromisoformat(config.reconciliation_first_day)
        if config.reconciliation_first_day
        else None,
        # Writing a case off proposes an adjustment (four-eyes above the configured amount).
        propose_adjustment=propose_adjustment,
    )


def make_reconciliation_sources(
    config: AccountsConfig,
) -> tuple[Mapping[str, SettlementSource], StatementSource]:
    """The acquirers' settlement files (by gateway name) and the partner bank's statements."""
    settlement_sources = make_settlement_sources(
        config.settlement_gateway_names,
        m2t_url=config.m2t_url,
        m2t_api_key=config.m2t_api_key,
        timeout=config.http_timeout_seconds,
    )
    return settlement_sources, HttpStatementSource.from_config(config)


def make_payments_view(config: AccountsConfig) -> HttpPaymentsLedgerView:
    """Payments' API, read with accounts' own service client (the completeness check)."""
    return HttpPaymentsLedgerView(
        payments_url=config.payments_url,
        token_url=config.service_token_url,
        client_id=config.service_client_id,
        client_secret=config.service_client_secret,
        timeout=config.http_timeout_seconds,
    )


def make_statement_keys(config: AccountsConfig) -> SigningKeyStore:
    """Accounts' income-statement signing keys. Development makes a first key if there is none;
    production is given its keys (``hirfa accounts statement-keys rotate``, into the mounted
    secret) and its web app refuses to start without one (``require_statement_key``)."""
    keys = SigningKeyStore(config.statement_keys_directory)
    if not config.is_production:
        keys.ensure_key()
    return keys


def require_statement_key(context: AccountsContext) -> None:
    """The web app signs statements: it refuses to start with no key to sign them with (the
    consumer and the worker never sign, and need no key)."""
    if not context.income_statements.signer.jwks().get("keys"):
        raise context.config.refuse(
            "statement_keys_dir",
            "holds no statement signing key (k_<kid>.pem): run 'hirfa accounts statement-keys rotate'",
        )


def make_income_statement_settings(config: AccountsConfig) -> IncomeStatementSettings:
    return IncomeStatementSettings(
        signer=JwsStatementSigner(make_statement_keys(config)),
        renderer=FpdfStatementRenderer(),
        public_limiter=SlidingWindowLimiter(config.statement_public_rate_per_minute),
        public_url=config.public_url,
        currency=config.ledger_currency,
    )


def bootstrap(
    config: AccountsConfig | None = None,
    *,
    key_lookup: KeyLookup | None = None,
    bank_partners: PartnerRegistry | None = None,
    settlement_sources: Mapping[str, SettlementSource] | None = None,
    statement_source: StatementSource | None = None,
    income_statements: IncomeStatementSettings | None = None,
    payments_view: PaymentsLedgerView | None = None,
) -> AccountsContext:
    config = config or load_config()
    default_settlements, default_statements = make_reconciliation_sources(config)
    context = build_verifying_context(
        config,
        MODELS,
        key_lookup,
        context_type=AccountsContext,
        payouts=make_payout_settings(config, bank_partners or make_bank_partners(config)),
        reconciliation=make_reconciliation_settings(config),
        settlement_sources=default_settlements if settlement_sources is None else settlement_sources,
        statement_source=statement_source or default_statements,
        income_statements=income_statements or make_income_statement_settings(config),
        payments_view=payments_view or make_payments_view(config),
    )
    # Every session that may post (requests, the consumer, the worker) comes from this factory.
    install_ledger_session_hooks(context.session_factory)
    # Adjustments read their four-eyes threshold from the session, whoever proposes them (the API,
    # reconciliation inside its own transaction).
    configure_adjustments(
        context.session_factory,
        approval_above=config.adjustment_approval_above,
        currency=config.ledger_currency,
    )
    return context
