"""Production refuses every development stand-in, naming the setting; development keeps them; and no
config (service or sandbox) shows a secret in its repr or in an error message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sandbox.bank.config import SandboxBankConfig
from sandbox.m2t.config import SandboxM2TConfig
from services.accounts.config import AccountsConfig
from services.onboarding.bootstrap import bootstrap as onboarding_bootstrap
from services.onboarding.config import BUNDLED_SANCTIONS_LIST, OnboardingConfig
from services.payments.bootstrap import bootstrap as payments_bootstrap
from services.payments.config import SANDBOX_M2T_API_KEY, SANDBOX_M2T_CALLBACK_SECRET, PaymentsConfig
from shared.config import (
    DEMO_ACCOUNTS_CLIENT_ID,
    DEMO_ACCOUNTS_CLIENT_SECRET,
    SANDBOX_BANK_API_KEY,
    SANDBOX_BANK_CALLBACK_SECRET,
    ConfigError,
    Process,
    ServiceConfig,
    is_secret,
    looks_secret,
    secret_field,
    unmarked_secret_fields,
)

CONFIGS = {"onboarding": OnboardingConfig, "payments": PaymentsConfig, "accounts": AccountsConfig}


def kafka_settings(prefix: str) -> dict[str, str]:
    """Production's Kafka: TLS and SCRAM (plaintext is refused), three replicas by default."""
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CAFILE": "/etc/hirfa/kafka/ca.crt",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        f"{prefix}_KAFKA_SASL_USERNAME": f"hirfa-{prefix.lower()}",
        f"{prefix}_KAFKA_SASL_PASSWORD": f"kafka-password-{prefix.lower()}-c41d",
    }


# Real-looking production settings, as the deployment passes them (environment variables).
PRODUCTION = {
    "onboarding": {
        "ONBOARDING_DATABASE_URL": "postgresql://onboarding:pg-pass-onb-7f3a@db.internal:5432/onboarding",
        **kafka_settings("ONBOARDING"),
        "ONBOARDING_OTP_SECRET": "otp-secret-5d1c9e0b7a",
        "ONBOARDING_DOCUMENT_MASTER_KEYS": "mk_1:ZG9jdW1lbnQtbWFzdGVyLWtleS0zMi1ieXRlcy1vayE=",
        "ONBOARDING_BANK_PARTNER_URL": "https://bank-partner.example/api",
        "ONBOARDING_BANK_PARTNER_API_KEY": "bank-api-key-onb-91ad",
        "ONBOARDING_BANK_CALLBACK_SECRET": "bank-callback-secret-onb-3c7e",
        "ONBOARDING_SMS_BACKEND": "http",
        "ONBOARDING_SMS_PROVIDER_URL": "https://sms-provider.example/v1/messages",
        "ONBOARDING_SMS_PROVIDER_API_KEY": "sms-provider-key-88b2",
        "ONBOARDING_SMS_RECEIPT_SECRET": "sms-receipt-secret-41c0",
        "ONBOARDING_SANCTIONS_LIST_SOURCE": "https://scsanctions.un.org/resources/xml/en/consolidated.xml",
        "ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS": "48",
        "ONBOARDING_PEP_LIST_SOURCE": "/etc/hirfa/lists/pep.xml",
        "ONBOARDING_PEP_LIST_MAX_AGE_HOURS": "168",
    },
    "payments": {
        "PAYMENTS_DATABASE_URL": "postgresql://payments:pg-pass-pay-1b9d@db.internal:5432/payments",
        **kafka_settings("PAYMENTS"),
        "PAYMENTS_M2T_URL": "https://api.m2t.example",
        "PAYMENTS_M2T_API_KEY": "m2t-api-key-live-4e2f",
        "PAYMENTS_M2T_CALLBACK_SECRET": "m2t-callback-secret-live-6a0c",
        "PAYMENTS_GATEWAY_ALLOW_TOKENISE": "false",
        "PAYMENTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
        "PAYMENTS_WEBHOOK_MASTER_KEYS": "wk_1:d2ViaG9vay1tYXN0ZXIta2V5LTMyLWJ5dGVzLW9rISE=",
    },
    "accounts": {
        "ACCOUNTS_DATABASE_URL": "postgresql://accounts:pg-pass-acc-0e4b@db.internal:5432/accounts",
        **kafka_settings("ACCOUNTS"),
        "ACCOUNTS_BANK_PARTNER_URL": "https://bank-partner.example/api",
        "ACCOUNTS_BANK_PARTNER_API_KEY": "bank-api-key-acc-27c1",
        "ACCOUNTS_BANK_CALLBACK_SECRET": "bank-callback-secret-acc-5f90",
        "ACCOUNTS_STATEMENT_KEYS_DIR": "/etc/hirfa/statement-keys",
        "ACCOUNTS_M2T_URL": "https://api.m2t.example",
        "ACCOUNTS_M2T_API_KEY": "m2t-api-key-settlements-9c3e",
        "ACCOUNTS_PAYMENTS_URL": "https://payments.hirfa.example",
        "ACCOUNTS_SERVICE_TOKEN_URL": "https://onboarding.hirfa.example/v1/oauth/token",
        "ACCOUNTS_SERVICE_CLIENT_ID": "cli_01JF3Z8Q2R4N6V8X0B2D4F6H8K",
        "ACCOUNTS_SERVICE_CLIENT_SECRET": "service-client-secret-acc-2d8f",
    },
}

SECRET_VALUES = [
    value
    for settings in PRODUCTION.values()
    for name, value in settings.items()
    if name.endswith(("_SECRET", "_KEY", "_KEYS"))
] + ["pg-pass-onb-7f3a", "pg-pass-pay-1b9d", "pg-pass-acc-0e4b"]

UNSET = None

# (service, setting, development stand-in): production must refuse each, naming the setting.
STAND_INS = [
    ("onboarding", "ONBOARDING_SMS_BACKEND", "file"),
    ("onboarding", "ONBOARDING_SANCTIONS_LIST_SOURCE", UNSET),  # the default is the bundled sample
    ("onboarding", "ONBOARDING_SANCTIONS_LIST_SOURCE", str(BUNDLED_SANCTIONS_LIST)),
    ("onboarding", "ONBOARDING_SANCTIONS_LIST_SOURCE", ""),
    ("onboarding", "ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS", UNSET),
    ("onboarding", "ONBOARDING_SANCTIONS_LIST_SOURCE", "http://lists.example/consolidated.xml"),
    ("onboarding", "ONBOARDING_PEP_LIST_SOURCE", UNSET),
    ("onboarding", "ONBOARDING_PEP_LIST_MAX_AGE_HOURS", "0"),
    ("onboarding", "ONBOARDING_DEMO_CLIENTS", "true"),
    ("onboarding", "ONBOARDING_DEMO_STAFF", "true"),
    ("onboarding", "ONBOARDING_OTP_SECRET", UNSET),
    ("onboarding", "ONBOARDING_DOCUMENT_MASTER_KEYS", UNSET),
    # Income statements are signed with a key from a directory the operator provides.
    ("accounts", "ACCOUNTS_STATEMENT_KEYS_DIR", UNSET),
    ("accounts", "ACCOUNTS_STATEMENT_KEYS_DIR", ""),
    # Accounts reads M2T's settlement files: the sandbox's key or address are refused too.
    ("accounts", "ACCOUNTS_M2T_API_KEY", SANDBOX_M2T_API_KEY),
    ("accounts", "ACCOUNTS_M2T_API_KEY", UNSET),
    ("accounts", "ACCOUNTS_M2T_URL", UNSET),
    ("accounts", "ACCOUNTS_M2T_URL", "http://127.0.0.1:8010"),
    # The completeness check reads payments with accounts' own service client, not the demo one.
    ("accounts", "ACCOUNTS_SERVICE_CLIENT_ID", UNSET),
    ("accounts", "ACCOUNTS_SERVICE_CLIENT_ID", DEMO_ACCOUNTS_CLIENT_ID),
    ("accounts", "ACCOUNTS_SERVICE_CLIENT_SECRET", UNSET),
    ("accounts", "ACCOUNTS_SERVICE_CLIENT_SECRET", DEMO_ACCOUNTS_CLIENT_SECRET),
    ("payments", "PAYMENTS_M2T_API_KEY", SANDBOX_M2T_API_KEY),
    ("payments", "PAYMENTS_M2T_API_KEY", UNSET),
    ("payments", "PAYMENTS_M2T_CALLBACK_SECRET", SANDBOX_M2T_CALLBACK_SECRET),
    ("payments", "PAYMENTS_M2T_URL", UNSET),
    ("payments", "PAYMENTS_M2T_URL", "http://localhost:8010"),
    ("payments", "PAYMENTS_M2T_URL", "http://127.0.0.5:9999/api"),
    ("payments", "PAYMENTS_M2T_URL", "http://[::1]:8010"),
    ("payments", "PAYMENTS_GATEWAY_ALLOW_TOKENISE", UNSET),
    ("payments", "PAYMENTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", UNSET),
    ("payments", "PAYMENTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
    ("payments", "PAYMENTS_WEBHOOK_MASTER_KEYS", UNSET),
    ("payments", "PAYMENTS_FAULT_INJECTION", "relay_crash"),
] + [
    (service, f"{prefix}_{setting}", value)
    for service, prefix in (("onboarding", "ONBOARDING"), ("accounts", "ACCOUNTS"))
    for setting, value in (
        ("BANK_PARTNER_API_KEY", SANDBOX_BANK_API_KEY),
        ("BANK_PARTNER_API_KEY", UNSET),
        ("BANK_CALLBACK_SECRET", SANDBOX_BANK_CALLBACK_SECRET),
        ("BANK_PARTNER_URL", UNSET),
        ("BANK_PARTNER_URL", "http://localhost:8011"),
        ("BANK_PARTNER_URL", "http://127.0.0.1:18011"),
    )
]


def environ(service: str, environment: str, setting: str | None = None, value: str | None = UNSET):
    env = {"ENVIRONMENT": environment, **PRODUCTION[service]}
    if setting is not None:
        env.pop(setting, None)
        if value is not UNSET:
            env[setting] = value
    return env


def load(service: str, env: dict[str, str]) -> ServiceConfig:
    return CONFIGS[service].from_env(service, environ=env)


@pytest.mark.parametrize("service", CONFIGS)
def test_a_production_config_with_real_settings_is_accepted(service):
    config = load(service, environ(service, "production"))

    assert config.is_production


@pytest.mark.parametrize(("service", "setting", "value"), STAND_INS)
def test_production_refuses_a_development_stand_in_and_names_the_setting(service, setting, value):
    with pytest.raises(ConfigError) as refused:
        load(service, environ(service, "production", setting, value))

    message = str(refused.value)
    assert setting in message
    assert not [secret for secret in SECRET_VALUES if secret in message]


@pytest.mark.parametrize(("service", "setting", "value"), STAND_INS)
def test_development_accepts_the_stand_in(service, setting, value):
    config = load(service, environ(service, "development", setting, value))

    assert not config.is_production


def test_development_defaults_are_the_stand_ins():
    """What `make run` gets with no settings at all: the sandboxes, the file SMS outbox, the sample list."""
    onboarding = OnboardingConfig.from_env("onboarding", environ={})
    payments = PaymentsConfig.from_env("payments", environ={})

    assert (onboarding.sms_backend, onboarding.sanctions_list_source) == ("file", str(BUNDLED_SANCTIONS_LIST))
    assert onboarding.bank_partner_api_key == SANDBOX_BANK_API_KEY
    assert (payments.m2t_api_key, payments.webhook_allow_private_networks) == (SANDBOX_M2T_API_KEY, True)


def test_an_unknown_sms_backend_and_an_http_backend_without_its_provider_are_refused():
    with pytest.raises(ConfigError, match="ONBOARDING_SMS_BACKEND"):
        OnboardingConfig.from_env("onboarding", environ={"ONBOARDING_SMS_BACKEND": "pigeon"})
    with pytest.raises(ConfigError, match="ONBOARDING_SMS_PROVIDER_URL"):
        OnboardingConfig.from_env("onboarding", environ={"ONBOARDING_SMS_BACKEND": "http"})
    with pytest.raises(ConfigError, match="ONBOARDING_SMS_PROVIDER_API_KEY"):
        OnboardingConfig.from_env(
            "onboarding",
            environ={"ONBOARDING_SMS_BACKEND": "http", "ONBOARDING_SMS_PROVIDER_URL": "https://sms.example"},
        )


# Every config a Hirfa process reads: the three services' and the two sandboxes'.
ALL_CONFIG_TYPES = [OnboardingConfig, PaymentsConfig, AccountsConfig, SandboxBankConfig, SandboxM2TConfig]


def with_every_secret_set(config_type: type) -> tuple[object, list[str]]:
    secrets = {
        field.name: f"{field.name}-value-that-must-not-leak"
        for field in dataclasses.fields(config_type)
        if is_secret(field)
    }
    if "database_url" in secrets:
        secrets["database_url"] = "postgresql://hirfa:database-password-must-not-leak@db/hirfa"
    extra = {"service_name": "test"} if issubclass(config_type, ServiceConfig) else {}
    values = list(secrets.values()) + ["database-password-must-not-leak"]
    return config_type(**extra, **secrets), values


@pytest.mark.parametrize("config_type", ALL_CONFIG_TYPES, ids=lambda t: t.__name__)
def test_no_secret_appears_in_any_config_repr_or_str(config_type):
    config, secrets = with_every_secret_set(config_type)

    shown = repr(config) + str(config)

    assert not [secret for secret in secrets if secret in shown]
    assert "callback_" in shown or "kafka_" in shown  # the other settings are still there to read


@pytest.mark.parametrize(
    ("config_type", "expected"),
    [
        (OnboardingConfig, {"database_url", "otp_secret", "document_master_keys", "sms_provider_api_key"}),
        (PaymentsConfig, {"database_url", "m2t_api_key", "m2t_callback_secret", "webhook_master_keys"}),
        (AccountsConfig, {"database_url", "bank_partner_api_key", "bank_callback_secret"}),
        (SandboxBankConfig, {"api_key", "callback_secret"}),
        (SandboxM2TConfig, {"api_key", "callback_secret"}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_every_secret_named_field_is_marked_and_the_secrets_are_the_expected_ones(config_type, expected):
    assert unmarked_secret_fields(config_type) == []
    secrets = {field.name for field in dataclasses.fields(config_type) if is_secret(field)}
    assert expected <= secrets
    assert all(looks_secret(name) for name in secrets)


def test_a_config_with_an_unmarked_secret_named_field_cannot_be_built():
    @dataclasses.dataclass(frozen=True)
    class CarelessConfig(ServiceConfig):
        sms_api_token: str = ""

    with pytest.raises(TypeError, match="sms_api_token"):
        CarelessConfig(service_name="careless")


def test_a_secret_that_fails_to_parse_is_not_echoed():
    @dataclasses.dataclass(frozen=True)
    class PinConfig(ServiceConfig):
        vault_pin_secret: int = secret_field(0)  # type: ignore[assignment]

    with pytest.raises(ConfigError) as refused:
        PinConfig.from_env("pins", environ={"PINS_VAULT_PIN_SECRET": "12x4-secret"})

    assert "PINS_VAULT_PIN_SECRET" in str(refused.value)
    assert "12x4-secret" not in str(refused.value)


def test_a_parse_error_names_the_variable_that_was_read():
    with pytest.raises(ConfigError, match="^GATEWAY_RETRIES: "):
        PaymentsConfig.from_env("payments", environ={"GATEWAY_RETRIES": "many"})
    with pytest.raises(ConfigError, match="^PAYMENTS_GATEWAY_RETRIES: "):
        PaymentsConfig.from_env(
            "payments", environ={"GATEWAY_RETRIES": "2", "PAYMENTS_GATEWAY_RETRIES": "many"}
        )


# --- each process: the secrets it uses, and only those ---------------------------------------


def process_environ(service: str, process: Process) -> dict[str, str]:
    """The production settings, less every secret the process does not use (as the deployments
    give them: deploy/k8s, deploy/docker-compose.yml)."""
    config_type = CONFIGS[service]
    config = config_type(service_name=service)
    withheld = {
        config.setting_name(name)
        for name in set().union(*config_type.PROCESS_SECRETS.values()) - config_type.PROCESS_SECRETS[process]
    }
    return {
        "ENVIRONMENT": "production",
        **{k: v for k, v in PRODUCTION[service].items() if k not in withheld},
    }


def used_secret_settings(service: str, process: Process) -> list[str]:
    """The secrets ``process`` uses that production sets (a client key password it has not)."""
    config = CONFIGS[service](service_name=service)
    names = sorted(config.setting_name(name) for name in CONFIGS[service].PROCESS_SECRETS[process])
    return [name for name in names if name in PRODUCTION[service]]


def secret_settings(service: str) -> set[str]:
    """Every secret setting of the service, whichever process uses it."""
    config = CONFIGS[service](service_name=service)
    return {config.setting_name(name) for name in set().union(*CONFIGS[service].PROCESS_SECRETS.values())}


@pytest.mark.parametrize("service", CONFIGS)
def test_a_production_relay_starts_with_its_database_and_kafka_secrets_alone(service):
    env = process_environ(service, Process.RELAY)
    prefix = service.upper()

    config = CONFIGS[service].from_env(service, environ=env, process=Process.RELAY)

    assert secret_settings(service) & set(env) == {f"{prefix}_DATABASE_URL", f"{prefix}_KAFKA_SASL_PASSWORD"}
    assert (config.process, config.is_production) == (Process.RELAY, True)


@pytest.mark.parametrize("process", Process)
@pytest.mark.parametrize("service", CONFIGS)
def test_every_production_process_starts_with_only_the_secrets_it_uses(service, process):
    config = CONFIGS[service].from_env(service, environ=process_environ(service, process), process=process)

    assert config.process == process


@pytest.mark.parametrize(
    ("service", "process", "setting"),
    [
        (service, process, setting)
        for service in CONFIGS
        for process in Process
        for setting in used_secret_settings(service, process)
    ],
)
def test_a_production_process_missing_a_secret_it_uses_is_refused_naming_it(service, process, setting):
    env = process_environ(service, process)
    del env[setting]

    with pytest.raises(ConfigError) as refused:
        CONFIGS[service].from_env(service, environ=env, process=process)

    assert setting in str(refused.value)
    assert not [secret for secret in SECRET_VALUES if secret in str(refused.value)]


def test_a_production_api_without_the_bank_callback_secret_is_refused_and_its_worker_is_not():
    env = environ("accounts", "production", "ACCOUNTS_BANK_CALLBACK_SECRET")

    with pytest.raises(ConfigError, match="^ACCOUNTS_BANK_CALLBACK_SECRET must be set in production"):
        AccountsConfig.from_env("accounts", environ=env, process=Process.API)
    assert AccountsConfig.from_env("accounts", environ=env, process=Process.WORKER).is_production


def test_a_config_whose_process_is_not_said_demands_every_secret():
    env = process_environ("payments", Process.RELAY)

    with pytest.raises(ConfigError, match="PAYMENTS_M2T_CALLBACK_SECRET"):
        PaymentsConfig.from_env("payments", environ=env)


def test_the_process_is_said_by_the_code_never_by_the_environment():
    env = {**environ("onboarding", "production"), "PROCESS": "relay", "ONBOARDING_PROCESS": "relay"}

    assert OnboardingConfig.from_env("onboarding", environ=env).process is None


def test_a_new_secret_must_say_which_processes_use_it():
    @dataclasses.dataclass(frozen=True)
    class UnplacedConfig(ServiceConfig):
        vault_token: str = secret_field()

    with pytest.raises(TypeError, match="no process uses vault_token"):
        UnplacedConfig(service_name="unplaced")


def test_a_production_relay_is_wired_without_making_or_holding_a_key_it_is_not_given(tmp_path):
    env = {**process_environ("onboarding", Process.RELAY), "VAR_DIR": str(tmp_path)}
    context = onboarding_bootstrap(
        OnboardingConfig.from_env("onboarding", environ=env, process=Process.RELAY)
    )

    # Development would make the OTP key and the document master key here; production never does.
    assert list(tmp_path.rglob("*")) == []
    with pytest.raises(ConfigError, match="^ONBOARDING_OTP_SECRET is not given to the relay process"):
        _ = context.otp.secret
    with pytest.raises(
        ConfigError, match="^ONBOARDING_DOCUMENT_MASTER_KEYS is not given to the relay process"
    ):
        context.cipher.encrypt(b"CIN scan", b"doc_1")
    context.engine.dispose()


def test_a_production_payments_consumer_holds_no_webhook_key(tmp_path):
    env = {**process_environ("payments", Process.CONSUMER), "VAR_DIR": str(tmp_path)}
    context = payments_bootstrap(PaymentsConfig.from_env("payments", environ=env, process=Process.CONSUMER))

    assert list(tmp_path.rglob("*")) == []
    with pytest.raises(
        ConfigError, match="^PAYMENTS_WEBHOOK_MASTER_KEYS is not given to the consumer process"
    ):
        context.webhooks.cipher.encrypt(b"whsec_1", b"endpoint_1")
    context.engine.dispose()


README = Path(__file__).resolve().parents[2] / "README.md"
# How the README's table writes the settings every service has.
README_SHARED_SECRETS = {
    "database": {"database_url"},
    "Kafka": {"kafka_sasl_password", "kafka_ssl_key_password"},
    "traces": {"otel_exporter_otlp_headers"},
}


def test_the_readme_shows_the_secrets_each_process_uses():
    text = README.read_text()
    table = text[text.index("### Secrets per process") :].split("\n\n")[2].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {
        cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])
    }

    assert set(rows) == {str(process) for process in Process}
    for process in Process:
        for service, config_type in CONFIGS.items():
            cell = rows[str(process)][header.index(service)]
            shown: set[str] = set()
            for item in (part.strip() for part in cell.split(",")):
                shown |= README_SHARED_SECRETS.get(item) or {item.strip("`").lower()}
            assert shown == config_type.PROCESS_SECRETS[process], (process, service)
