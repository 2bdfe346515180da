"""The production settings the deploy files pass (docker compose, the Kubernetes ConfigMap) are
accepted by every service's config: no development stand-in is left in them."""

from __future__ import annotations

import re

import pytest
import yaml

from services.accounts.config import AccountsConfig
from services.onboarding.config import OnboardingConfig
from services.payments.config import PaymentsConfig
from shared.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
CONFIGS = {"onboarding": OnboardingConfig, "payments": PaymentsConfig, "accounts": AccountsConfig}
# What an operator exports before `docker compose up` (compose refuses to start without them).
EXPORTED = {
    "ONBOARDING_DOCUMENT_MASTER_KEYS": "mk_1:ZG9jdW1lbnQtbWFzdGVyLWtleS0zMi1ieXRlcy1vayE=",
    "PAYMENTS_WEBHOOK_MASTER_KEYS": "wk_1:d2ViaG9vay1tYXN0ZXIta2V5LTMyLWJ5dGVzLW9rISE=",
    "ONBOARDING_SMS_PROVIDER_URL": "https://sms-provider.example/v1/messages",
    "ONBOARDING_PEP_LIST_SOURCE": "https://pep-lists.example/pep.xml",
}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} and ${VAR:?message}, with the operator's exports."""

    def one(match: re.Match[str]) -> str:
        name = match["name"]
        if match["op"] == "-":
            return match["arg"]
        return EXPORTED.get(name, f"operator-chosen-{name.lower()}")

    return _VARIABLE.sub(one, value)


def compose_environments() -> dict[str, dict[str, str]]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return {
        name: {key: interpolate(str(value)) for key, value in service.get("environment", {}).items()}
        for name, service in compose["services"].items()
    }


@pytest.mark.parametrize(
    ("container", "service"),
    [
        ("migrate", "onboarding"),
        ("migrate", "payments"),
        ("migrate", "accounts"),
        ("onboarding", "onboarding"),
        ("onboarding_worker", "onboarding"),
        ("onboarding_consumer", "onboarding"),
        ("payments", "payments"),
        ("payments_worker", "payments"),
        ("accounts", "accounts"),
        ("accounts_worker", "accounts"),
    ],
)
def test_the_compose_production_settings_are_accepted(container, service):
    environ = compose_environments()[container]

    config = CONFIGS[service].from_env(service, environ=environ)

    assert config.is_production


def test_the_compose_sandboxes_share_the_exported_secrets_with_the_services():
    environments = compose_environments()

    assert (
        environments["bank_sandbox"]["BANK_SANDBOX_API_KEY"]
        == environments["onboarding"]["ONBOARDING_BANK_PARTNER_API_KEY"]
    )
    assert (
        environments["m2t_sandbox"]["M2T_SANDBOX_API_KEY"] == environments["payments"]["PAYMENTS_M2T_API_KEY"]
    )


@pytest.mark.parametrize("service", CONFIGS)
def test_the_kubernetes_config_map_with_the_documented_secrets_is_accepted(service):
    config_map = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]
    # The secrets kustomization.yaml lists for each service, with operator-chosen values.
    documented = (DEPLOY / "k8s" / "kustomization.yaml").read_text()
    secrets = {
        name: EXPORTED.get(name, f"operator-chosen-{name.lower()}")
        for name in re.findall(r"\b[A-Z]+_[A-Z0-9_]+\b", documented)
    }
    database = {f"{service.upper()}_DATABASE_URL": f"postgresql://{service}:pw@db:5432/{service}"}

    config = CONFIGS[service].from_env(service, environ={**config_map, **secrets, **database})

    assert config.is_production
