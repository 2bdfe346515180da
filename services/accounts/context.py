"""What accounts' composition root (``bootstrap``) wires once, for the API, the consumer and the worker."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from services.accounts.config import AccountsConfig
from services.accounts.domain.ports import PaymentsLedgerView, SettlementSource, StatementSource
from services.accounts.service_layer.income_statements import IncomeStatementSettings
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.reconciliation import ReconciliationSettings
from shared.context import ServiceContext


@dataclasses.dataclass(kw_only=True)
class AccountsContext(ServiceContext):
    config: AccountsConfig
    payouts: PayoutSettings  # the bank partners, and how payouts are made
    reconciliation: ReconciliationSettings  # the file store, fee schedules, banks and readers of runs
    # Where reconciliation fetches its files: each gateway's settlement files (by gateway name,
    # "m2t") and the partner bank's statements of the client-funds accounts.
    settlement_sources: Mapping[str, SettlementSource]
    statement_source: StatementSource
    income_statements: IncomeStatementSettings  # the statement key, the PDF, the public limit
    # Payments' succeeded payments the ledger has not confirmed (the worker's completeness check).
    payments_view: PaymentsLedgerView
