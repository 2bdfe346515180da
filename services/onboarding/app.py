"""Onboarding's web app: the context ``bootstrap`` wires, served with the service's blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.onboarding.api import (
    artisan_sessions,
    artisans,
    bank_accounts,
    kyc,
    notifications,
    oauth,
    personal_data,
    reviews,
    staff,
)
from services.onboarding.bootstrap import bootstrap
from services.onboarding.config import OnboardingConfig, load_config
from services.onboarding.service_layer.notifications import language_of
from shared.app import create_service_app
from shared.config import Process
from shared.wsgi_limits import limit_requests


def create_app(config: OnboardingConfig | None = None, **adapters: Any) -> Flask:
    """The app; ``adapters`` (``bank_partners=``, ``sms=``) replace the configured ones, as in tests."""
    context = bootstrap(config or load_config(process=Process.API), **adapters)
    return limit_requests(
        create_service_app(
            context,
            title="Hirfa Onboarding API",
            blueprints=[
                oauth.blp,
                artisans.blp,
                kyc.blp,
                reviews.blp,
                bank_accounts.blp,
                artisan_sessions.blp,
                notifications.blp,
                staff.blp,
                personal_data.blp,
            ],
            form_endpoints={"oauth.token"},
            upload_endpoints={"kyc.Documents": context.config.max_document_bytes},
            # Problems shown to an artisan default to their preferred language.
            artisan_language=lambda artisan_id: language_of(context.uow_factory(), artisan_id),
        )
    )
