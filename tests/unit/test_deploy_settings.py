"""The production settings the deploy files pass (docker compose, the Kubernetes ConfigMap) are
accepted by the config of each process they start: no development stand-in is left in them, and
each process is given the secrets it needs."""

from __future__ import annotations

import re

import pytest
import yaml

from services.accounts.config import AccountsConfig
from services.onboarding.config import OnboardingConfig
from services.payments.config import PaymentsConfig
from shared.config import PROJECT_ROOT
from tests.deploy_support import compose_services, kubernetes_workloads, processes_of, secret_refs

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
    ("container", "service", "process"),
    [
        (name, service, process)
        for name, container in compose_services().items()
        for service, process in processes_of(container["command"])
        if service in CONFIGS
    ],
)
def test_the_compose_production_settings_are_accepted_by_each_process(container, service, process):
    environ = compose_environments()[container]

    config = CONFIGS[service].from_env(service, environ=environ, process=process)

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


@pytest.mark.parametrize(
    ("workload", "service", "process"),
    [
        (name, service, process)
        for name, workload in kubernetes_workloads().items()
        for service, process in processes_of(workload["spec"]["template"]["spec"]["containers"][0]["command"])
        if service in CONFIGS
    ],
)
def test_the_kubernetes_config_map_with_each_process_own_secrets_is_accepted(workload, service, process):
    config_map = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]
    (container,) = kubernetes_workloads()[workload]["spec"]["template"]["spec"]["containers"]
    # The keys the container reads from the secrets, with operator-chosen values; nothing else.
    secrets = {
        name: f"postgresql://{service}:pw@db:5432/{service}"
        if name.endswith("_DATABASE_URL")
        else EXPORTED.get(name, f"operator-chosen-{name.lower()}")
        for name in secret_refs(container)
    }

    config = CONFIGS[service].from_env(service, environ={**config_map, **secrets}, process=process)

    assert config.is_production


def test_kustomization_lists_every_secret_key_a_manifest_reads():
    documented = set(
        re.findall(r"\b[A-Za-z]+[_-][A-Za-z0-9_-]+\b", (DEPLOY / "k8s" / "kustomization.yaml").read_text())
    )
    for workload in kubernetes_workloads().values():
        for secret, key in secret_refs(workload["spec"]["template"]["spec"]["containers"][0]).values():
            assert {secret, key} <= documented, (secret, key)
