"""The deploy manifests: valid offline, and saying what production needs (budgets, policies,
autoscaling, a TLS ingress for the public paths, the migration before the rollout, secrets per
process, a lean image context)."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

from services.console.config import ConsoleConfig
from shared.config import KAFKA_SASL_PROTOCOLS, is_secret
from tests.deploy_support import (
    SERVICE_CONFIGS,
    compose_services,
    kubernetes_workloads,
    processes_of,
    secret_refs,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
APIS = {"onboarding": 8001, "payments": 8002, "accounts": 8003}
# Where relays, consumers and workers answer /metrics, /healthz and /readyz (PROBE_PORT).
PROBE_PORT = 9100
# The back-office console: a web app for staff with no database, a client of the APIs.
CONSOLE = "console"
PHASE_LABEL = "hirfa.ma/rollout-phase"
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def _load_validator():
    spec = importlib.util.spec_from_file_location(
        "validate_manifests", ROOT / "deploy" / "validate_manifests.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validator = _load_validator()


def objects(kind: str | None = None) -> list[dict]:
    found = [doc for path in validator.manifest_files() for doc in validator.load_documents(path)]
    return [doc for doc in found if kind is None or doc["kind"] == kind]


def component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def deployments() -> dict[str, dict]:
    return {component(d): d for d in objects("Deployment")}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


# --- offline validation ------------------------------------------------------------------------


def test_the_manifests_and_the_compose_file_are_valid():
    assert validator.all_errors() == []


def test_a_broken_kubernetes_manifest_is_reported(tmp_path):
    broken = tmp_path / "payments.yaml"
    text = (K8S / "payments.yaml").read_text()
    # A typo'd field and a port that is not a number.
    broken.write_text(text.replace("terminationGracePeriodSeconds", "terminationGracePeriod", 1))
    errors = validator.kubernetes_errors([broken])
    assert any("Deployment/payments" in error and "terminationGracePeriod" in error for error in errors)

    broken.write_text(text.replace("containerPort: 8002", "containerPort: eight-thousand", 1))
    assert any("containerPort" in error for error in validator.kubernetes_errors([broken]))


def test_an_unlisted_or_missing_manifest_is_reported(tmp_path):
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    assert validator.kustomization_errors(k8s) == []
    (k8s / "extra.yaml").write_text((K8S / "namespace.yaml").read_text())
    (k8s / "ingress.yaml").unlink()
    errors = validator.kustomization_errors(k8s)
    assert "kustomization.yaml: does not list extra.yaml" in errors
    assert "kustomization.yaml: lists ingress.yaml, which does not exist" in errors


def test_a_broken_compose_file_is_reported(tmp_path):
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    compose["services"]["payments"]["depends_on"] = 5
    compose["servics"] = {}
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    errors = validator.compose_errors(broken)
    assert any(error.startswith("docker-compose.yml: services/payments/depends_on") for error in errors)
    assert any("servics" in error for error in errors)


def test_lint_runs_the_validation():
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(MAKE) validate-deploy" in lint
    assert "deploy/validate_manifests.py" in makefile


# --- availability ------------------------------------------------------------------------------


def test_every_deployment_has_a_disruption_budget_that_lets_a_node_drain():
    budgets = objects("PodDisruptionBudget")
    for name, deployment in deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        if name in APIS:
            assert spec == {**spec, "minAvailable": 1}, name
        else:
            # A single replica under minAvailable 1 would block every drain.
            assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, name


def test_the_apis_scale_with_an_autoscaler_that_owns_their_replica_count():
    autoscalers = {a["spec"]["scaleTargetRef"]["name"]: a for a in objects("HorizontalPodAutoscaler")}
    assert set(autoscalers) == set(APIS)
    for name in APIS:
        spec = autoscalers[name]["spec"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
        # An apply would otherwise reset the autoscaler's count.
        assert "replicas" not in deployments()[name]["spec"]


# --- ingress -----------------------------------------------------------------------------------


def public_hosts() -> dict[str, str]:
    config = objects("ConfigMap")[0]["data"]
    return {name: re.sub(r"^https://", "", config[f"{name.upper()}_PUBLIC_URL"]).rstrip("/") for name in APIS}


def route(host: str, path: str) -> str | None:
    """The Service the Ingress sends ``host`` + ``path`` to (longest match, as Kubernetes does)."""
    (ingress,) = objects("Ingress")
    best: tuple[int, str] | None = None
    for rule in ingress["spec"]["rules"]:
        if rule["host"] != host:
            continue
        for entry in rule["http"]["paths"]:
            prefix, kind = entry["path"], entry["pathType"]
            matches = (
                path == prefix
                if kind == "Exact"
                else path == prefix or path.startswith(prefix.rstrip("/") + "/")
            )
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), entry["backend"]["service"]["name"])
    return best[1] if best else None


# The public callback paths: each route as the API declares it, and an example path.
PUBLIC_CALLBACKS = [
    (
        "payments",
        "services/payments/api/payments.py",
        "/gateways/<string:gateway>/callbacks",
        "/v1/gateways/m2t/callbacks",
    ),
    (
        "payments",
        "services/payments/api/payments.py",
        "/payments/<string:payment_id>/three-ds-return",
        "/v1/payments/pay_01J0/three-ds-return",
    ),
    (
        "onboarding",
        "services/onboarding/api/bank_accounts.py",
        "/banks/<string:bank>/callbacks",
        "/v1/banks/banque_populaire/callbacks",
    ),
    (
        "accounts",
        "services/accounts/api/payouts.py",
        "/banks/<string:bank>/callbacks",
        "/v1/banks/cih_bank/callbacks",
    ),
    ("onboarding", "services/onboarding/api/oauth.py", "/.well-known/jwks.json", "/.well-known/jwks.json"),
]


@pytest.mark.parametrize(("service", "source", "declared", "path"), PUBLIC_CALLBACKS)
def test_the_public_callback_paths_reach_their_service(service, source, declared, path):
    assert f'"{declared}"' in (ROOT / source).read_text(), "the route moved: update the Ingress"
    assert route(public_hosts()[service], path) == service


def test_the_apis_are_public_over_tls_and_their_operations_endpoints_are_not():
    (ingress,) = objects("Ingress")
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    for name, host in public_hosts().items():
        assert host in tls_hosts
        assert route(host, "/v1/artisans/art_1") == name
        for private in ("/metrics", "/healthz", "/readyz"):
            assert route(host, private) is None, (name, private)
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= tls_hosts


# --- network policies --------------------------------------------------------------------------


def policies_for(name: str) -> list[dict]:
    labels = deployments()[name]["spec"]["template"]["metadata"]["labels"] if name in deployments() else {}
    if name == "migrate":
        labels = objects("Job")[0]["spec"]["template"]["metadata"]["labels"]
    return [p for p in objects("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def ingress_rules(name: str) -> list[dict]:
    return [rule for p in policies_for(name) for rule in p["spec"].get("ingress", [])]


def egress_ports(name: str) -> set[int]:
    return {
        port["port"]
        for p in policies_for(name)
        for rule in p["spec"].get("egress", [])
        for port in rule["ports"]
    }


def namespaces_allowed_in(name: str) -> set[str]:
    return {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in ingress_rules(name)
        for peer in rule["from"]
        if "namespaceSelector" in peer
    }


def test_everything_is_denied_unless_a_policy_allows_it():
    deny = [p for p in objects("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert any(p["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in p["spec"] for p in deny)
    for name in [*deployments(), "migrate"]:
        own = [p for p in policies_for(name) if p["spec"]["podSelector"] != {}]
        assert len(own) == 1, name
        assert {53} <= egress_ports(name), name


def test_the_apis_accept_the_ingress_controller_and_only_onboarding_accepts_other_apis():
    for name, port in APIS.items():
        assert namespaces_allowed_in(name) == {"ingress-nginx", "monitoring"}
        assert {p["port"] for rule in ingress_rules(name) for p in rule["ports"]} == {port}
    pods_in = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in ingress_rules("onboarding")
        for peer in rule["from"]
        if "podSelector" in peer
    }
    assert pods_in == {"payments", "accounts"}
    for name in ("payments", "accounts"):
        assert not any("podSelector" in peer for rule in ingress_rules(name) for peer in rule["from"])
        assert 8001 in egress_ports(name)  # the JWKS


def test_relays_consumers_and_workers_accept_only_prometheus_and_reach_only_what_they_use():
    expected = {
        "onboarding-relay": {53, 5432, 9092, 9093},
        "payments-relay": {53, 5432, 9092, 9093},
        "accounts-relay": {53, 5432, 9092, 9093},
        "onboarding-consumer": {53, 5432, 9092, 9093},
        "payments-consumer": {53, 5432, 9092, 9093},
        "accounts-consumer": {53, 5432, 9092, 9093},
        # The bank (onboarding, accounts), M2T and webhooks (payments): public https only.
        "onboarding-worker": {53, 5432, 443},
        "accounts-worker": {53, 5432, 443},
        "payments-worker": {53, 5432, 443},
        "migrate": {53, 5432},
    }
    assert set(expected) == set(deployments()) - set(APIS) - {CONSOLE} | {"migrate"}
    for name, ports in expected.items():
        if name == "migrate":
            assert ingress_rules(name) == []
        else:
            # Prometheus, on the probe port only.
            assert namespaces_allowed_in(name) == {"monitoring"}, name
            assert all(
                peer.keys() == {"namespaceSelector"} for rule in ingress_rules(name) for peer in rule["from"]
            )
            assert {p["port"] for rule in ingress_rules(name) for p in rule["ports"]} == {PROBE_PORT}, name
        assert egress_ports(name) == ports, name


def test_relays_consumers_and_workers_have_probes_and_metrics_on_their_probe_port():
    background = {name: d for name, d in deployments().items() if name not in APIS and name != CONSOLE}
    assert len(background) == 9
    for name, deployment in background.items():
        (container,) = pod_spec(deployment)["containers"]
        assert container["ports"] == [{"name": "probes", "containerPort": PROBE_PORT}], name
        env = {e["name"]: e.get("value") for e in container["env"]}
        # The process listens where the probes and Prometheus look, on the pod's address.
        assert (env["PROBE_PORT"], env["PROBE_HOST"]) == (str(PROBE_PORT), "0.0.0.0"), name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}, name
        # Three failed looks in a row before a restart: a slow scrape of the database is not a hang.
        assert (
            container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 60
        )
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PROBE_PORT),
            "prometheus.io/path": "/metrics",
        }, name


def test_the_console_takes_browsers_from_the_ingress_and_reaches_the_apis_as_a_client():
    assert namespaces_allowed_in(CONSOLE) == {"ingress-nginx"}
    assert {p["port"] for rule in ingress_rules(CONSOLE) for p in rule["ports"]} == {8004}
    assert egress_ports(CONSOLE) == {53, 443}
    config = objects("ConfigMap")[0]["data"]
    for name in APIS:
        assert config[f"CONSOLE_{name.upper()}_URL"] == f"https://{public_hosts()[name]}"
    assert route("console.hirfa.example", "/reviews") == CONSOLE
    assert secret_names(deployments()[CONSOLE]) == {"hirfa-console:CONSOLE_SECRET_KEY"}


def test_partners_are_reached_on_public_addresses_only():
    for policy in objects("NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    assert PRIVATE_RANGES <= set(peer["ipBlock"]["except"]), policy["metadata"]["name"]
                    assert [p["port"] for p in rule["ports"]] == [443]


# --- the migration before the rollout ----------------------------------------------------------


def test_the_first_apply_step_holds_exactly_what_the_migration_needs():
    phase = {
        (o["kind"], o["metadata"]["name"])
        for o in objects()
        if o["metadata"].get("labels", {}).get(PHASE_LABEL)
    }
    # Every network policy goes first too: a new deny must never land before its allow.
    policies = {("NetworkPolicy", p["metadata"]["name"]) for p in objects("NetworkPolicy")}
    assert phase == {
        ("Namespace", "hirfa"),
        ("ConfigMap", "hirfa-config"),
        ("Job", "hirfa-migrate"),
        *policies,
    }
    (job,) = objects("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["hirfa", "stack", "init"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    # The procedure is written where an operator looks: the Job and the README.
    procedure = [
        "kubectl -n hirfa delete job hirfa-migrate --ignore-not-found",
        f"kubectl apply -k deploy/k8s -l {PHASE_LABEL}=migrate",
        "kubectl -n hirfa wait --for=condition=complete job/hirfa-migrate",
        "kubectl apply -k deploy/k8s\n",
    ]
    for text in ((K8S / "migrate-job.yaml").read_text(), (ROOT / "README.md").read_text()):
        position = 0
        for step in procedure:  # each step, in this order
            position = text.find(step, position)
            assert position != -1, step


# --- secrets per process -----------------------------------------------------------------------


def setting(settings: dict[str, str], service: str, name: str) -> str:
    return settings.get(f"{service.upper()}_{name}", settings.get(name, ""))


def secrets_needed(command: list[str], settings: dict[str, str]) -> set[str]:
    """The secret settings the command's process uses (shared/config.py's PROCESS_SECRETS; the
    console's one secret), as the deployment's other settings make them needed: Kafka's SCRAM
    password only over SASL, a client key's password only with a client certificate, the trace
    collector's headers only where traces are sent."""
    needed = set()
    for service, process in processes_of(command):
        if service == CONSOLE:
            needed |= {f"CONSOLE_{f.name.upper()}" for f in dataclasses.fields(ConsoleConfig) if is_secret(f)}
            continue
        config = SERVICE_CONFIGS[service](service_name=service)
        uses = set(config.PROCESS_SECRETS[process])
        if setting(settings, service, "KAFKA_SECURITY_PROTOCOL") not in KAFKA_SASL_PROTOCOLS:
            uses.discard("kafka_sasl_password")
        if not setting(settings, service, "KAFKA_SSL_CERTFILE"):
            uses.discard("kafka_ssl_key_password")
        if not setting(settings, service, "OTEL_EXPORTER_OTLP_ENDPOINT"):
            uses.discard("otel_exporter_otlp_headers")
        needed |= {config.setting_name(name) for name in uses}
    return needed


def every_secret_setting() -> set[str]:
    """Every secret setting of every process: what no container may hold unless its process uses it."""
    names = {f"CONSOLE_{f.name.upper()}" for f in dataclasses.fields(ConsoleConfig) if is_secret(f)}
    for service, config_type in SERVICE_CONFIGS.items():
        config = config_type(service_name=service)
        names |= {config.setting_name(name) for table in config.PROCESS_SECRETS.values() for name in table}
    return names


def secret_names(workload: dict) -> set[str]:
    spec = pod_spec(workload)
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for container in spec["containers"]:
        names |= {f"{secret}:{key}" for secret, key in secret_refs(container).values()}
    return names


def test_no_container_loads_a_whole_secret():
    for name, workload in kubernetes_workloads().items():
        for container in pod_spec(workload)["containers"]:
            assert [source for source in container.get("envFrom", []) if "secretRef" in source] == [], name


def test_each_container_reads_exactly_the_secrets_its_process_uses():
    config_map = objects("ConfigMap")[0]["data"]
    for name, workload in kubernetes_workloads().items():
        (container,) = pod_spec(workload)["containers"]
        refs = secret_refs(container)
        assert set(refs) == secrets_needed(container["command"], config_map), name
        for variable, (secret, key) in refs.items():
            service = variable.split("_", 1)[0].lower()
            if variable.endswith("_DATABASE_URL"):
                assert (secret, key) == ("hirfa-database", f"{service}-database-url"), name
            else:  # each service's own secret, under the variable's name (README.md's kubectl lines)
                assert (secret, key) == (f"hirfa-{service}", variable), name
        # Nor through the ConfigMap, where every process would read it.
        assert not every_secret_setting() & set(config_map)


def test_only_onboarding_and_the_migration_mount_the_signing_keys_and_only_accounts_the_statement_keys():
    mounted = {
        name: {v["secret"]["secretName"] for v in pod_spec(w).get("volumes", []) if "secret" in v}
        for name, w in kubernetes_workloads().items()
    }
    assert {name: secrets for name, secrets in mounted.items() if secrets} == {
        "onboarding": {"hirfa-signing-keys"},
        "migrate": {"hirfa-signing-keys"},
        "accounts": {"hirfa-accounts-statement-keys"},
    }


def test_each_compose_container_gets_exactly_the_secrets_its_process_uses():
    hirfa = compose_services()
    assert len(hirfa) == 14  # 3 APIs, the console, 3 relays, 3 consumers, 3 workers, the migration
    for name, service in hirfa.items():
        environment = service["environment"]
        held = every_secret_setting() & set(environment)
        assert held == secrets_needed(service["command"], environment), name


def test_the_readme_creates_every_secret_key_the_manifests_read():
    readme = (ROOT / "README.md").read_text()
    commands = readme[readme.index("kubectl -n hirfa create secret generic hirfa-database") :]
    for workload in kubernetes_workloads().values():
        for secret, key in secret_refs(pod_spec(workload)["containers"][0]).values():
            creation = commands[commands.index(f"create secret generic {secret} ") :].split("\nkubectl", 1)[0]
            assert f"--from-literal={key}=" in creation, (secret, key)


# --- the image ---------------------------------------------------------------------------------


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:])
            ):
                return True
    return False


def test_the_image_context_leaves_out_local_state_and_keeps_what_the_image_copies():
    for ignored in (
        ".git/HEAD",
        ".venv/bin/python",
        "var/onboarding.sqlite3",
        "tests/unit/test_money.py",
        "shared/__pycache__/money.cpython-311.pyc",
        "services/payments/app.pyc",
        ".pytest_cache/README.md",
        "sandbox/node_modules/x/index.js",
        ".env",
    ):
        assert dockerignored(ignored), ignored
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    sources = [source for line in copied for source in line.split()]
    assert "shared" in sources and "deploy/gunicorn.conf.py" in sources
    for source in sources:
        assert not dockerignored(source), source
    for kept in ("services/onboarding/migrations/env.py", "shared/events/schemas/envelope.json"):
        assert not dockerignored(kept), kept
