"""What the deploy files start, read the way the tests of deploy/ need it: which process each
container's command runs, and which secrets each Kubernetes container reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.accounts.config import AccountsConfig
from services.onboarding.config import OnboardingConfig
from services.payments.config import PaymentsConfig
from shared.config import Process

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
SERVICE_CONFIGS = {"onboarding": OnboardingConfig, "payments": PaymentsConfig, "accounts": AccountsConfig}
# What the long-running `hirfa <service> …` commands start (services/*/cli.py, shared/runtime.py).
COMMAND_PROCESSES = {"relay": Process.RELAY, "consume": Process.CONSUMER, "worker": Process.WORKER}


def processes_of(command: list[str]) -> list[tuple[str, Process]]:
    """The services and the process a container's command starts: gunicorn serves one service's API
    (the console's too), `hirfa stack init` migrates all three."""
    if command[0] == "gunicorn":
        return [(command[-1].split(".")[1], Process.API)]
    if command[1:] == ["stack", "init"]:
        return [(service, Process.MIGRATE) for service in SERVICE_CONFIGS]
    return [(command[1], COMMAND_PROCESSES[command[2]])]


def kubernetes_workloads() -> dict[str, dict]:
    """Every Deployment and Job of deploy/k8s, by its component label."""
    documents = [
        document
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    return {
        document["metadata"]["labels"]["app.kubernetes.io/component"]: document
        for document in documents
        if document["kind"] in ("Deployment", "Job")
    }


def secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    """The container's variables read from a secret: name -> (secret, key)."""
    return {
        env["name"]: (env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


def compose_services() -> dict[str, dict]:
    """The compose services that run a Hirfa process (not PostgreSQL, Kafka or a sandbox)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {
        name: service
        for name, service in services.items()
        if service.get("command", [""])[0] in ("hirfa", "gunicorn")
    }
