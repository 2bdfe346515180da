"""For onboarding's personal-data export: everything accounts holds about one artisan."""

from __future__ import annotations

from services.accounts.api.context import service_context
from services.accounts.service_layer.personal_data import artisan_personal_data
from shared.personal_data_api import personal_data_blueprint

blp = personal_data_blueprint(
    service="accounts",
    holds="Ledger accounts and statements, payouts, payout accounts, statements issued.",
    across="",
    gather=lambda artisan_id: artisan_personal_data(service_context().uow_factory(), artisan_id),
)
