"""Environment-backed configuration.

Every setting a service reads comes through here, so nothing else in the code base touches
``os.environ``. A service's settings are read with its own prefix first (``PAYMENTS_DATABASE_URL``)
and then, for settings every service shares, without it (``KAFKA_BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SERVICE_PORTS = {"onboarding": 8001, "payments": 8002, "accounts": 8003}
# The back-office console (services/console): a web app for staff, not one of the APIs above.
CONSOLE_PORT = 8004
# Where `make run` (deploy/Procfile) serves each relay's, consumer's and worker's /metrics,
# /healthz and /readyz (<PROCESS>_PROBE_PORT moves one, e.g. PAYMENTS_RELAY_PROBE_PORT).
PROBE_PORTS = {
    "onboarding_relay": 8101,
    "payments_relay": 8102,
    "accounts_relay": 8103,
    "onboarding_consumer": 8111,
    "payments_consumer": 8112,
    "accounts_consumer": 8113,
    "onboarding_worker": 8121,
    "payments_worker": 8122,
    "accounts_worker": 8123,
}


# Kafka client security (kafka-python's names).
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
KAFKA_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")

# Where traces go (OTEL_TRACES_EXPORTER; shared/tracing.py).
TRACE_EXPORTERS = ("otlp", "console", "none")


def prometheus_multiprocess_directory() -> str | None:
    """Where the worker processes of one gunicorn write their metrics for /metrics to add up
    (``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's own setting; deploy/gunicorn.conf.py sets it
    when it runs several workers); None with a single process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ConfigError(RuntimeError):
    """A setting is missing or cannot be parsed. The message names the setting, never a secret's value."""


# Secrets: one mechanism for every config (services and sandboxes). A secret field is left out of
# the repr (so of logs and tracebacks), and error messages never echo its value. A field whose name
# looks like a secret must say which it is, so a new one cannot slip through unmarked.
SECRET = "hirfa.secret"
# Headers too: a collector's or a partner's headers are where an API key travels.
_SECRET_NAME_WORDS = frozenset(
    {"secret", "secrets", "key", "keys", "password", "passwords", "token", "tokens", "headers"}
)


def secret_field(default: str = "") -> Any:
    """A setting whose value is a secret (a key, a password, a URL that may carry one)."""
    return dataclasses.field(default=default, repr=False, metadata={SECRET: True})


def public_field(default: Any) -> Any:
    """A setting whose name looks like a secret's but whose value is not one (a key directory,
    a token lifetime): shown in the repr."""
    return dataclasses.field(default=default, metadata={SECRET: False})


def is_secret(field: dataclasses.Field[Any]) -> bool:
    return bool(field.metadata.get(SECRET, False))


def looks_secret(name: str) -> bool:
    """Whether a setting's name says it may hold a secret (and so must be marked one way or the other)."""
    return name.endswith("database_url") or not _SECRET_NAME_WORDS.isdisjoint(name.split("_"))


def unmarked_secret_fields(config_type: type) -> list[str]:
    """Fields of a config dataclass whose name looks like a secret's but that are marked neither
    ``secret_field`` nor ``public_field``."""
    return [
        field.name
        for field in dataclasses.fields(config_type)
        if looks_secret(field.name) and SECRET not in field.metadata
    ]


def check_secret_fields(config_type: type) -> None:
    unmarked = unmarked_secret_fields(config_type)
    if unmarked:
        raise TypeError(
            f"{config_type.__name__}: mark {', '.join(unmarked)} with secret_field() or public_field()"
        )


class Process(enum.StrEnum):
    """Which of a service's processes a config is read for. What the process does decides the
    secrets it is given and, in production, demands (``ServiceConfig.PROCESS_SECRETS``)."""

    # The web app (gunicorn's ``create_app()``).
    API = "api"
    # ``hirfa <service> worker``.
    WORKER = "worker"
    # ``hirfa <service> relay``, and ``events replay``, which publishes as the relay does.
    RELAY = "relay"
    # ``hirfa <service> consume``, and ``dead-letters``, the consumer's rejects.
    CONSUMER = "consumer"
    # ``hirfa stack init`` (the migration Job), ``hirfa <service> db upgrade``.
    MIGRATE = "migrate"
    # Operator commands that need only the database (clients, screening lists, key rotation).
    COMMAND = "command"


# The secrets every process of a service uses: its database URL (it carries the password) and,
# for the processes that read or write events (the API's /readyz looks at the broker), Kafka's
# SCRAM password or client key password. Workers, migrations and the commands that need only the
# database never reach the broker.
DATABASE_SECRETS = frozenset({"database_url"})
BROKER_SECRETS = frozenset({"kafka_sasl_password", "kafka_ssl_key_password"})
_PROCESSES_ON_THE_BROKER = frozenset({Process.API, Process.RELAY, Process.CONSUMER})
# The trace collector's headers (its credentials) go with every process that sends spans: all but
# the migrations. Needed only where an OTLP endpoint is set (shared/tracing.py).
TRACING_SECRETS = frozenset({"otel_exporter_otlp_headers"})
_PROCESSES_THAT_TRACE = frozenset(set(Process) - {Process.MIGRATE})


def process_secrets(*owns: Mapping[Process, Iterable[str]]) -> Mapping[Process, frozenset[str]]:
    """The secret settings (field names) each process of a service uses: the database's, the
    broker's where it reads or writes events, and, from each of ``owns``, those of the service's
    own work that process does."""
    return MappingProxyType(
        {
            process: DATABASE_SECRETS
            | (BROKER_SECRETS if process in _PROCESSES_ON_THE_BROKER else frozenset())
            | (TRACING_SECRETS if process in _PROCESSES_THAT_TRACE else frozenset())
            | frozenset(name for own in owns for name in own.get(process, ()))
            for process in Process
        }
    )


def check_process_secrets(config_type: type) -> None:
    """A config's ``PROCESS_SECRETS`` names its own fields, and places every secret in some process:
    a new secret cannot be added without saying who uses it."""
    names = {field.name for field in dataclasses.fields(config_type)}
    listed = set().union(*config_type.PROCESS_SECRETS.values())  # type: ignore[attr-defined]
    unknown = listed - names
    unused = {field.name for field in dataclasses.fields(config_type) if is_secret(field)} - listed
    problems = [f"no such setting {', '.join(sorted(unknown))}"] if unknown else []
    problems += [f"no process uses {', '.join(sorted(unused))}"] if unused else []
    if problems:
        raise TypeError(f"{config_type.__name__}.PROCESS_SECRETS: {'; '.join(problems)}")


class Withheld:
    """What a production process holds in place of a part built from a secret it is not given
    (one its ``PROCESS_SECRETS`` does not list): development would make a key file instead, and a
    production process must never hold a key nobody else has. Any use is a ``ConfigError`` naming
    the setting."""

    def __init__(self, setting: str, process: Process | None) -> None:
        self._setting = setting
        self._process = process

    def __repr__(self) -> str:
        return f"Withheld({self._setting})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # protocols probed with getattr(obj, "__x__", default)
        raise ConfigError(
            f"{self._setting} is not given to the {self._process} process, which should not use it"
        )


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (localhost, 127.0.0.0/8, ::1, 0.0.0.0)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Settings every Hirfa service has. Services extend it with their own fields."""

    service_name: str
    # The process the config is read for (the command that starts it). None: not said (a config
    # built by hand, a test), and every secret of the service is demanded.
    process: Process | None = None
    environment: str = "development"
    # May carry the database password.
    database_url: str = secret_field()
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = 3
    # 1 suits the embedded broker; production defaults to 3 (see PRODUCTION_DEFAULTS).
    kafka_replication_factor: int = 1
    # Topic config: an acks=all write needs this many replicas in sync (production defaults to 2).
    kafka_min_insync_replicas: int = 1
    # Production refuses fewer than 2 replicas (or in-sync replicas) unless this is set: a
    # single-broker cluster, such as deploy/docker-compose.yml's, cannot have more.
    kafka_allow_single_replica: bool = False
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. Production refuses the unencrypted ones unless
    # kafka_allow_plaintext is set: when something else encrypts the traffic (a service mesh's
    # mutual TLS) or the broker is on a private single-host network (deploy/docker-compose.yml).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_allow_plaintext: bool = False
    # TLS: the CA that signed the brokers' certificates (required in production), and the client
    # certificate and key for clusters that authenticate clients by certificate.
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = public_field("")
    kafka_ssl_key_password: str = secret_field()
    # SASL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (PLAIN only over TLS in production).
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = secret_field()
    # Where the token issuer publishes its keys; services verify tokens offline against it.
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwks_cache_seconds: int = 300
    token_issuer: str = public_field("https://auth.hirfa.ma")
    http_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    log_json: bool = True
    var_dir: str = str(PROJECT_ROOT / "var")
    idempotency_key_ttl_hours: int = public_field(24)
    # An artisan's phone may queue a request offline for days: keys sent with an artisan token
    # (scoped to the artisan and the device) are honoured this long, never less than the above.
    artisan_idempotency_key_ttl_hours: int = public_field(168)
    idempotency_wait_seconds: float = 5.0
    relay_batch_size: int = 100
    relay_poll_interval_seconds: float = 0.2
    relay_max_backoff_seconds: float = 10.0
    # How often the relay asks the broker whether it still holds what it acknowledged (and
    # republishes what it lost); it also asks after every broker error. 0 turns it off.
    relay_loss_check_seconds: float = 30.0
    consumer_max_attempts: int = 3
    # Messages a consumer applies per database transaction (each in its own savepoint, with its
    # own inbox row): one commit per batch is what makes the consumer fast. 1 = one at a time.
    consumer_batch_size: int = 200
    consumer_session_timeout_ms: int = 10000
    # How often a consumer compares its positions with where the broker's partitions end and
    # with the topic ids it saw (a broker that lost records); also after every rebalance and
    # broker error. 0 turns it off.
    consumer_loss_check_seconds: float = 10.0
    # A relay's, a consumer's or a worker's own port for /metrics, /healthz and /readyz
    # (shared/probes.py; the APIs answer them on their own port). Unset or empty: none; 0: a free
    # port, logged at start. Each process of a machine needs its own (deploy/Procfile gives them).
    probe_port: int | None = None
    # 127.0.0.1 keeps the probes on the machine; a pod's must be reachable from the kubelet and
    # Prometheus (0.0.0.0, as deploy/k8s/configmap.yaml sets).
    probe_host: str = "127.0.0.1"
    # /healthz fails once a work loop has not turned for this long (a worker's interval between
    # passes is added): it hangs, and a restart is what will move it.
    probe_stall_seconds: float = 300.0
    # Traces (shared/tracing.py), under OpenTelemetry's own names: off unless an exporter is named
    # (otlp, console, none) or an OTLP endpoint is given (the collector's OTLP/HTTP base URL,
    # http://collector:4318; /v1/traces is added). The headers (``name=value,…``) may carry the
    # collector's API key. New traces are kept with probability otel_traces_sampler_arg; one
    # continued from a caller or an event follows the caller's choice.
    otel_traces_exporter: str = ""
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_headers: str = secret_field()
    otel_traces_sampler_arg: float = 1.0
    # Test-only fault injection; refused in production (see validate()).
    fault_injection: str = ""

    # Defaults that differ in production, applied by from_env when the setting is not given.
    PRODUCTION_DEFAULTS: ClassVar[dict[str, Any]] = {
        "kafka_replication_factor": 3,
        "kafka_min_insync_replicas": 2,
    }

    # The secret settings each process uses (services add their own): production demands these of
    # the process it runs, and no others. Deployments give each process exactly these (deploy/,
    # checked by tests/unit/test_deploy_manifests.py), and README.md, "Production", shows the table.
    PROCESS_SECRETS: ClassVar[Mapping[Process, frozenset[str]]] = process_secrets()

    def __post_init__(self) -> None:
        check_secret_fields(type(self))
        check_process_secrets(type(self))

    def uses(self, field_name: str) -> bool:
        """Whether this process uses the secret ``field_name`` (every one when the process is not said)."""
        return self.process is None or field_name in self.PROCESS_SECRETS[self.process]

    def withheld(self, field_name: str) -> Any:
        """The stand-in for what would be built from ``field_name``, in a production process that is
        not given it (validate() guarantees the process does not use it)."""
        return Withheld(self.setting_name(field_name), self.process)

    @property
    def audience(self) -> str:
        return f"hirfa-{self.service_name}"

    def setting_name(self, field_name: str) -> str:
        """The environment variable a field is read from (``PAYMENTS_M2T_URL``)."""
        return f"{self.service_name.upper()}_{field_name.upper()}"

    def refuse(self, field_name: str, problem: str) -> ConfigError:
        """The error for a setting, named as its environment variable. ``problem`` never holds a secret."""
        return ConfigError(f"{self.setting_name(field_name)} {problem}")

    @property
    def topic(self) -> str:
        return f"{self.service_name}.events"

    @property
    def consumer_group(self) -> str:
        return f"hirfa-{self.service_name}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.service_name}.dead-letter"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def validate(self) -> None:
        if not self.database_url:
            raise self.refuse("database_url", "is not set: no database URL configured")
        if self.consumer_batch_size < 1:
            raise ConfigError(f"CONSUMER_BATCH_SIZE must be at least 1, not {self.consumer_batch_size}")
        if self.is_production and self.fault_injection:
            raise self.refuse("fault_injection", "is not allowed in production")
        if self.probe_port is not None and not 0 <= self.probe_port <= 65535:
            raise self.refuse("probe_port", f"must be a port number (0 to 65535), not {self.probe_port}")
        if self.probe_stall_seconds <= 0:
            raise self.refuse("probe_stall_seconds", "must be above 0")
        self._validate_tracing()
        self._validate_kafka()

    def _validate_tracing(self) -> None:
        exporter = self.otel_traces_exporter.strip().lower()
        if exporter not in {"", *TRACE_EXPORTERS}:
            raise self.refuse("otel_traces_exporter", f"must be one of {', '.join(TRACE_EXPORTERS)}")
        if exporter == "otlp" and not self.otel_exporter_otlp_endpoint:
            raise self.refuse("otel_exporter_otlp_endpoint", "is required with the otlp exporter")
        endpoint = urlsplit(self.otel_exporter_otlp_endpoint)
        if self.otel_exporter_otlp_endpoint and (
            endpoint.scheme not in {"http", "https"} or not endpoint.hostname
        ):
            raise self.refuse("otel_exporter_otlp_endpoint", "must be an http(s) URL (http://collector:4318)")
        if not 0.0 <= self.otel_traces_sampler_arg <= 1.0:
            raise self.refuse("otel_traces_sampler_arg", "must be between 0 and 1")

    def _validate_kafka(self) -> None:
        """Kafka client security and topic durability: a wrong combination names the setting."""
        protocol = self.kafka_security_protocol
        if protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise self.refuse(
                "kafka_security_protocol", f"must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}"
            )
        tls, sasl = protocol in KAFKA_TLS_PROTOCOLS, protocol in KAFKA_SASL_PROTOCOLS
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_ssl_key_password"):
            if getattr(self, name) and not tls:
                raise self.refuse(
                    name, f"is set but {self.setting_name('kafka_security_protocol')} is {protocol}"
                )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise self.refuse("kafka_ssl_certfile", "is required with a client key file")
        if self.kafka_ssl_key_password and not self.kafka_ssl_certfile:
            raise self.refuse("kafka_ssl_certfile", "is required with a client key password")
        for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
            if getattr(self, name) and not sasl:
                raise self.refuse(
                    name, f"is set but {self.setting_name('kafka_security_protocol')} is {protocol}"
                )
            # The password is a secret: only the processes that reach the broker are given it.
            if sasl and not getattr(self, name) and self.uses(name):
                raise self.refuse(name, f"is required with {protocol}")
        if sasl and self.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise self.refuse("kafka_sasl_mechanism", f"must be one of {', '.join(KAFKA_SASL_MECHANISMS)}")
        if self.kafka_replication_factor < 1:
            raise self.refuse("kafka_replication_factor", "must be at least 1")
        if not 1 <= self.kafka_min_insync_replicas <= self.kafka_replication_factor:
            raise self.refuse(
                "kafka_min_insync_replicas",
                f"must be between 1 and the replication factor ({self.kafka_replication_factor})",
            )
        if not self.is_production:
            return
        if not tls and not self.kafka_allow_plaintext:
            raise self.refuse(
                "kafka_security_protocol",
                f"is {protocol} in production: use SSL or SASL_SSL "
                f"(or set {self.setting_name('kafka_allow_plaintext')} when the network is encrypted otherwise)",
            )
        if tls and not self.kafka_ssl_cafile:
            raise self.refuse("kafka_ssl_cafile", f"is required with {protocol} in production")
        if not self.kafka_allow_single_replica:
            if self.kafka_replication_factor < 2:
                raise self.refuse(
                    "kafka_replication_factor",
                    f"must be at least 2 in production (or set {self.setting_name('kafka_allow_single_replica')})",
                )
            if self.kafka_min_insync_replicas < 2:
                raise self.refuse(
                    "kafka_min_insync_replicas",
                    f"must be at least 2 in production (or set {self.setting_name('kafka_allow_single_replica')})",
                )

    @classmethod
    def from_env(
        cls,
        service_name: str,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        """Build the config from the environment; explicit ``overrides`` win."""
        environ = os.environ if environ is None else environ
        prefix = service_name.upper() + "_"
        values: dict[str, Any] = {"service_name": service_name}
        for field in dataclasses.fields(cls):
            if field.name in ("service_name", "process"):
                continue  # said by the code that starts the process, never by the environment
            env_name = field.name.upper()
            # The service's own variable wins over the shared one; an error names the one read.
            setting = prefix + env_name if prefix + env_name in environ else env_name
            raw = environ.get(setting)
            if raw is None:
                continue
            values[field.name] = _coerce(field, raw, setting)
        if values.get("environment") != "production":
            # Development default only: production must name its database explicitly.
            values.setdefault("database_url", _default_sqlite_url(values, service_name))
        else:
            for name, value in cls.PRODUCTION_DEFAULTS.items():
                values.setdefault(name, value)
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config


# Development defaults shared with the bank-partner sandbox; production must set its own.
SANDBOX_BANK_CALLBACK_SECRET = "sandbox-bank-callback-secret"
SANDBOX_BANK_API_KEY = "sandbox-bank-api-key"
SANDBOX_BANK_URL = "http://127.0.0.1:8011"
# Accounts' client for reading payments (its completeness check, scope payments:audit): created
# with the demo clients (make run, the e2e stack) and accounts' development default; production
# must create its own (``hirfa onboarding clients create --role service``).
DEMO_ACCOUNTS_CLIENT_ID = "cli_demo_accounts"
DEMO_ACCOUNTS_CLIENT_SECRET = "demo-accounts-secret"
# The SMS-gateway sandbox's development defaults (sandbox/sms); production must set its own.
SANDBOX_SMS_API_KEY = "sandbox-sms-api-key"
SANDBOX_SMS_CALLBACK_SECRET = "sandbox-sms-callback-secret"


# Who uses the bank-partner API's secrets, in both services that call it: the API takes the bank's
# signed callbacks and calls the bank (holder checks, openings, payouts); the worker calls it
# (resubmits, polls, statements) and takes no callback.
BANK_PARTNER_SECRETS: Mapping[Process, frozenset[str]] = {
    Process.API: frozenset({"bank_partner_api_key", "bank_callback_secret"}),
    Process.WORKER: frozenset({"bank_partner_api_key"}),
}


@dataclasses.dataclass(frozen=True)
class BankPartnerClientConfig(ServiceConfig):
    """Settings of a service that calls the bank-partner API and takes its signed callbacks
    (onboarding's account openings, accounts' transfers)."""

    bank_partner_url: str = SANDBOX_BANK_URL
    bank_partner_api_key: str = secret_field(SANDBOX_BANK_API_KEY)
    bank_callback_secret: str = secret_field(SANDBOX_BANK_CALLBACK_SECRET)
    bank_callback_tolerance_seconds: int = 300

    PROCESS_SECRETS: ClassVar[Mapping[Process, frozenset[str]]] = process_secrets(BANK_PARTNER_SECRETS)

    def validate(self) -> None:
        super().validate()
        if not self.is_production:
            return
        # The API takes the bank's callbacks; the API and the worker call the bank.
        if self.uses("bank_callback_secret") and self.bank_callback_secret == SANDBOX_BANK_CALLBACK_SECRET:
            raise self.refuse("bank_callback_secret", "must be set in production (it is the bank sandbox's)")
        if not self.uses("bank_partner_api_key"):
            return
        if self.bank_partner_api_key == SANDBOX_BANK_API_KEY:
            raise self.refuse("bank_partner_api_key", "must be set in production (it is the bank sandbox's)")
        if self.bank_partner_url == SANDBOX_BANK_URL or is_loopback_url(self.bank_partner_url):
            raise self.refuse(
                "bank_partner_url",
                "points at the bank sandbox on this machine: production needs the bank's API",
            )


def _coerce(field: dataclasses.Field[Any], raw: str, setting: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "bool":
            return _parse_bool(raw)
        if kind == "int | None":
            return int(raw) if raw.strip() else None
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        # A secret's value is never echoed, even one that failed to parse.
        problem = f"not a valid {kind}" if is_secret(field) else str(exc)
        raise ConfigError(f"{setting}: {problem}") from None
    return raw


def _default_sqlite_url(values: Mapping[str, Any], service_name: str) -> str:
    var_dir = Path(values.get("var_dir") or ServiceConfig.var_dir)
    return f"sqlite:///{var_dir / (service_name + '.sqlite3')}"
