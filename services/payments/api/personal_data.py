"""For onboarding's personal-data export: everything payments holds about one artisan."""

from __future__ import annotations

from services.payments.api.context import unit_of_work
from services.payments.service_layer.personal_data import artisan_personal_data
from shared.personal_data_api import personal_data_blueprint

blp = personal_data_blueprint(
    service="payments",
    holds="The payee, its marketplaces, payments, refunds and disputes.",
    across=", across every marketplace",
    gather=lambda artisan_id: artisan_personal_data(unit_of_work(), artisan_id),
)
