"""What accounts' composition root (``bootstrap``) wires once, for the API, the consumer and the worker."""

from __future__ import annotations

import dataclasses

from services.accounts.config import AccountsConfig
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.reconciliation import ReconciliationSettings
from shared.context import ServiceContext


@dataclasses.dataclass(kw_only=True)
class AccountsContext(ServiceContext):
    config: AccountsConfig
    payouts: PayoutSettings  # the bank partners, and how payouts are made
    reconciliation: ReconciliationSettings  # the file store, fee schedules, banks and readers of runs
