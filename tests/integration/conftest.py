"""Apps wired to real databases (PostgreSQL when available) and, where needed, the broker."""

from __future__ import annotations

import pytest

from services.accounts.app import create_app as create_accounts_app
from services.accounts.config import AccountsConfig
from services.onboarding.app import create_app as create_onboarding_app
from services.onboarding.config import OnboardingConfig
from services.onboarding.service_layer.api_clients import ensure_client
from services.payments.adapters.orm import Payee, PayeeMarketplace
from services.payments.app import create_app as create_payments_app
from services.payments.config import PaymentsConfig
from shared.auth.scopes import Role
from shared.db import utcnow
from shared.ids import new_id
from tests.conftest import ISSUER

pytestmark = pytest.mark.integration

MARKETPLACE = "cli_test_marketplace"
OTHER_MARKETPLACE = "cli_other_marketplace"
MARKETPLACE_SECRET = "test-marketplace-secret"


def _common(tmp_path, url, broker_bootstrap="127.0.0.1:1"):
    return dict(
        database_url=url,
        var_dir=str(tmp_path),
        token_issuer=ISSUER,
        kafka_bootstrap_servers=broker_bootstrap,
        log_json=True,
        idempotency_wait_seconds=10.0,
    )


@pytest.fixture
def onboarding_config(clean_databases, signing_keys, tmp_path) -> OnboardingConfig:
    return OnboardingConfig(
        service_name="onboarding",
        signing_keys_dir=str(signing_keys.directory),
        **_common(tmp_path, clean_databases["onboarding"]),
    )


@pytest.fixture
def onboarding_app(onboarding_config):
    app = create_onboarding_app(onboarding_config)
    uow_factory = app.extensions["hirfa"].uow_factory
    for client_id, name in ((MARKETPLACE, "Test marketplace"), (OTHER_MARKETPLACE, "Other marketplace")):
        ensure_client(
            uow_factory(),
            client_id=client_id,
            client_secret=MARKETPLACE_SECRET,
            name=name,
            role=Role.MARKETPLACE,
        )
    yield app
    app.extensions["hirfa"].engine.dispose()


@pytest.fixture
def onboarding(onboarding_app):
    return onboarding_app.test_client()


def _key_lookup(signing_keys):
    return lambda kid: signing_keys.public_keys().get(kid)


@pytest.fixture
def make_payments_app(clean_databases, signing_keys, tmp_path):
    """make(**adapters) -> a payments app on the test database, with fakes passed to its bootstrap
    (tokens are verified against the test signing keys unless ``key_lookup`` is passed)."""
    config = PaymentsConfig(service_name="payments", **_common(tmp_path, clean_databases["payments"]))
    apps = []

    def make(**adapters):
        adapters.setdefault("key_lookup", _key_lookup(signing_keys))
        app = create_payments_app(config, **adapters)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["hirfa"].engine.dispose()


@pytest.fixture
def payments_app(make_payments_app):
    return make_payments_app()


@pytest.fixture
def accounts_bank_partners():
    """The bank partners accounts' app is built with: from its config, unless a test module
    overrides this fixture with fakes."""
    return None


@pytest.fixture
def accounts_app(clean_databases, signing_keys, tmp_path, accounts_bank_partners):
    config = AccountsConfig(service_name="accounts", **_common(tmp_path, clean_databases["accounts"]))
    app = create_accounts_app(
        config, key_lookup=_key_lookup(signing_keys), bank_partners=accounts_bank_partners
    )
    yield app
    app.extensions["hirfa"].engine.dispose()


@pytest.fixture
def marketplace_headers(issue_token):
    def headers(idempotency_key: str | None = None, client_id: str = MARKETPLACE) -> dict:
        h = {"Authorization": "Bearer " + issue_token(Role.MARKETPLACE, client_id=client_id)}
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        return h

    return headers


def add_payee(
    context,
    *,
    tier: int = 3,
    cap: int = 2_000_000,
    marketplace: str = MARKETPLACE,
    artisan_id: str | None = None,
) -> str:
    """A payee payments already knows (as its KYC projection would have written it), linked to
    ``marketplace``, in payments' database behind ``context``; returns the artisan's id (a new
    one unless ``artisan_id`` names one onboarding registered)."""
    artisan_id = artisan_id or new_id("art")
    with context.uow_factory() as uow:
        uow.session.add(
            Payee(
                artisan_id=artisan_id,
                kyc_tier=tier,
                tier_cap_amount=cap,
                currency="MAD",
                payout_eligible=tier >= 1,
                kyc_version=1,
                as_of=utcnow(),
            )
        )
        uow.session.flush()
        uow.session.add(PayeeMarketplace(artisan_id=artisan_id, marketplace_id=marketplace))
        uow.commit()
    return artisan_id
