"""Kafka client security and durability: the options every client gets, the topics' replication,
and production's refusals, each naming its setting and never showing a password."""

from __future__ import annotations

import logging

import pytest

from services.payments.config import PaymentsConfig
from shared.config import ConfigError
from shared.events.broker import (
    KafkaCluster,
    admin_options,
    consumer_options,
    ensure_topics,
    kafka_client_options,
    producer_options,
)

PASSWORD = "scram-password-that-must-not-leak"
KEY_PASSWORD = "key-password-that-must-not-leak"


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
        paths[name] = str(tmp_path / name)
    return paths


def config(environment: str = "development", **env: str) -> PaymentsConfig:
    environ = {"ENVIRONMENT": environment, "KAFKA_BOOTSTRAP_SERVERS": "k1:9093, k2:9093", **env}
    if environment == "production":
        environ.update(
            {
                "PAYMENTS_DATABASE_URL": "postgresql://payments@db/payments",
                "PAYMENTS_M2T_URL": "https://api.m2t.example",
                "PAYMENTS_M2T_API_KEY": "m2t-live",
                "PAYMENTS_M2T_CALLBACK_SECRET": "m2t-callback-live",
                "PAYMENTS_GATEWAY_ALLOW_TOKENISE": "false",
                "PAYMENTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
                "PAYMENTS_WEBHOOK_MASTER_KEYS": "wk_1:d2ViaG9vay1tYXN0ZXIta2V5LTMyLWJ5dGVzLW9rISE=",
            }
        )
    return PaymentsConfig.from_env("payments", environ=environ)


def sasl_ssl(files, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CAFILE": files["ca.crt"],
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "hirfa-payments",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        **extra,
    }


def test_plaintext_options_name_only_the_servers():
    assert kafka_client_options(config()) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_with_a_client_certificate(files):
    options = kafka_client_options(
        config(
            KAFKA_SECURITY_PROTOCOL="SSL",
            KAFKA_SSL_CAFILE=files["ca.crt"],
            KAFKA_SSL_CERTFILE=files["client.crt"],
            KAFKA_SSL_KEYFILE=files["client.key"],
            KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD,
        )
    )

    assert options == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": files["ca.crt"],
        "ssl_certfile": files["client.crt"],
        "ssl_keyfile": files["client.key"],
        "ssl_password": KEY_PASSWORD,
    }
    assert KEY_PASSWORD not in repr(options)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_sasl_ssl(files, mechanism):
    options = kafka_client_options(config(**sasl_ssl(files, KAFKA_SASL_MECHANISM=mechanism)))

    assert options == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": files["ca.crt"],
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "hirfa-payments",
        "sasl_plain_password": PASSWORD,
    }
    assert PASSWORD not in repr(options) and PASSWORD not in str(options)


def test_sasl_without_tls_in_development():
    options = kafka_client_options(
        config(
            KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
            KAFKA_SASL_MECHANISM="PLAIN",
            KAFKA_SASL_USERNAME="dev",
            KAFKA_SASL_PASSWORD=PASSWORD,
        )
    )

    assert options["security_protocol"] == "SASL_PLAINTEXT" and "ssl_cafile" not in options
    assert options["sasl_plain_password"] == PASSWORD


def test_every_client_gets_the_security_options(files):
    cluster = KafkaCluster.from_config(config(**sasl_ssl(files)))
    expected = kafka_client_options(config(**sasl_ssl(files)))

    for options in (
        producer_options(cluster),
        consumer_options(cluster, "hirfa-payments"),
        admin_options(cluster),
    ):
        assert {key: options[key] for key in expected} == expected
    assert PASSWORD not in repr(cluster)


def test_producers_wait_for_every_in_sync_replica_and_are_idempotent(files):
    options = producer_options(KafkaCluster.from_config(config(**sasl_ssl(files))))

    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True


def test_a_consumer_waits_at_most_a_tenth_of_a_second_for_a_fetch_with_nothing_new():
    # The embedded broker holds an empty fetch for its whole wait, even when a record arrives
    # meanwhile: kafka-python's 500 ms would be added to events' way to the ledger.
    options = consumer_options(KafkaCluster.plaintext("127.0.0.1:9092"), "hirfa-accounts")

    assert options["fetch_max_wait_ms"] == 100


class FakeAdmin:
    created: list = []
    options: dict = {}

    def __init__(self, **options):
        FakeAdmin.options = options

    def list_topics(self):
        return ["payments.events"]

    def create_topics(self, topics, timeout_ms):
        FakeAdmin.created = topics

    def close(self):
        pass


def test_topics_are_created_with_the_replication_factor_and_min_insync_replicas(files):
    production = config(
        "production", **sasl_ssl(files, PAYMENTS_KAFKA_SASL_USERNAME="hirfa-payments")
    )  # production defaults: 3 replicas, min.insync.replicas 2
    cluster = KafkaCluster.from_config(production)

    ensure_topics(cluster, ["payments.events", "payments.dead-letter"], admin_factory=FakeAdmin)

    [topic] = FakeAdmin.created
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("payments.dead-letter", 3, 3)
    assert topic.topic_configs == {"min.insync.replicas": "2"}
    assert FakeAdmin.options["security_protocol"] == "SASL_SSL"
    assert FakeAdmin.options["sasl_plain_password"] == PASSWORD


def test_configured_durability_settings_are_used(files):
    cluster = KafkaCluster.from_config(
        config(KAFKA_REPLICATION_FACTOR="5", KAFKA_MIN_INSYNC_REPLICAS="3", KAFKA_TOPIC_PARTITIONS="6")
    )

    ensure_topics(cluster, ["accounts.events"], admin_factory=FakeAdmin)

    [topic] = FakeAdmin.created
    assert (topic.num_partitions, topic.replication_factor, topic.topic_configs) == (
        6,
        5,
        {"min.insync.replicas": "3"},
    )


def test_production_defaults_to_three_replicas_and_two_in_sync(files):
    production = config("production", **sasl_ssl(files))
    development = config()

    assert (production.kafka_replication_factor, production.kafka_min_insync_replicas) == (3, 2)
    assert (development.kafka_replication_factor, development.kafka_min_insync_replicas) == (1, 1)


# (environment, settings, the setting the error names)
WRONG = [
    ("development", {"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    (
        "development",
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        },
        "KAFKA_SASL_USERNAME",
    ),
    (
        "development",
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"},
        "KAFKA_SASL_PASSWORD",
    ),
    (
        "development",
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
        "KAFKA_SASL_MECHANISM",
    ),
    (
        "development",
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "GSSAPI",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        },
        "KAFKA_SASL_MECHANISM",
    ),
    (
        "development",
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_PASSWORD": PASSWORD},
        "KAFKA_SASL_PASSWORD",
    ),
    ("development", {"KAFKA_SSL_CAFILE": "/etc/ca.crt"}, "KAFKA_SSL_CAFILE"),
    ("development", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "/k.pem"}, "KAFKA_SSL_CERTFILE"),
    (
        "development",
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD},
        "KAFKA_SSL_CERTFILE",
    ),
    ("development", {"KAFKA_MIN_INSYNC_REPLICAS": "2"}, "KAFKA_MIN_INSYNC_REPLICAS"),
    ("development", {"KAFKA_REPLICATION_FACTOR": "0"}, "KAFKA_REPLICATION_FACTOR"),
    ("production", {}, "KAFKA_SECURITY_PROTOCOL"),  # plaintext
    (
        "production",
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        },
        "KAFKA_SECURITY_PROTOCOL",
    ),
    (
        "production",
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        },
        "KAFKA_SSL_CAFILE",
    ),
    (
        "production",
        {"KAFKA_ALLOW_PLAINTEXT": "true", "KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "1"},
        "KAFKA_REPLICATION_FACTOR",
    ),
    (
        "production",
        {"KAFKA_ALLOW_PLAINTEXT": "true", "KAFKA_MIN_INSYNC_REPLICAS": "1"},
        "KAFKA_MIN_INSYNC_REPLICAS",
    ),
]


@pytest.mark.parametrize(("environment", "settings", "named"), WRONG)
def test_a_wrong_combination_is_refused_naming_the_setting(environment, settings, named):
    with pytest.raises(ConfigError) as refused:
        config(environment, **settings)

    assert named in str(refused.value)
    assert PASSWORD not in str(refused.value) and KEY_PASSWORD not in str(refused.value)


def test_production_accepts_plaintext_and_one_replica_only_when_allowed():
    allowed = config(
        "production",
        KAFKA_ALLOW_PLAINTEXT="true",
        KAFKA_REPLICATION_FACTOR="1",
        KAFKA_MIN_INSYNC_REPLICAS="1",
        KAFKA_ALLOW_SINGLE_REPLICA="true",
    )

    assert allowed.kafka_security_protocol == "PLAINTEXT" and allowed.kafka_replication_factor == 1


def test_a_certificate_file_that_cannot_be_read_is_named(files):
    settings = sasl_ssl(files, KAFKA_SSL_CAFILE="/nonexistent/ca.crt")

    with pytest.raises(ConfigError, match="KAFKA_SSL_CAFILE"):
        KafkaCluster.from_config(config(**settings))


def test_passwords_never_show_in_the_config_or_the_client_logs(files, caplog):
    secured = config(**sasl_ssl(files))
    options = admin_options(KafkaCluster.from_config(secured))

    # kafka-python's admin client logs its options at debug level.
    with caplog.at_level(logging.DEBUG, logger="test"):
        logging.getLogger("test").debug("Starting KafkaAdminClient with configuration: %s", options)

    assert PASSWORD not in repr(secured)
    assert PASSWORD not in caplog.text
    assert "hirfa-payments" in caplog.text
