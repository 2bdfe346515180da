"""Kafka clients configured the way Hirfa needs them: one set of security options (TLS, SASL) for
every client, acks=all and idempotent producers, topics with a replication factor and
``min.insync.replicas``, bounded timeouts, explicit commits.

Every wait on the broker is bounded, including the first connection (``bootstrap_timeout_ms``,
30 s by default in kafka-python) and closing a client: a process must be able to stop within
seconds of SIGTERM whether the broker is up, down or hanging.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from shared.config import KAFKA_SASL_PROTOCOLS, KAFKA_TLS_PROTOCOLS, ConfigError, ServiceConfig

log = logging.getLogger(__name__)

# The longest any client waits for its first broker connection before giving up (and retrying
# from its own loop, where a stop request is seen).
BOOTSTRAP_TIMEOUT_SECONDS = 5.0
# Closing a client while the broker is away must not hold up a shutdown.
CLOSE_TIMEOUT_SECONDS = 2.0
# Reconnection attempts to a dead broker back off up to this, never kafka-python's 30 s.
_RECONNECT_BACKOFF_MAX_MS = 1000
# The longest a consumer's fetch waits at the broker for new records (see consumer_options).
CONSUMER_FETCH_WAIT_MS = 100

ALL_TOPICS = ("onboarding.events", "payments.events", "accounts.events")


class _Hidden(str):
    """A password handed to kafka-python: the value itself, but never shown by ``repr`` (which is
    what a logged dict of client options prints)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def _servers(bootstrap_servers: str) -> list[str]:
    return [server.strip() for server in bootstrap_servers.split(",") if server.strip()]


def _readable(config: ServiceConfig, field_name: str) -> str:
    path: str = getattr(config, field_name)
    if not os.access(path, os.R_OK):
        raise config.refuse(field_name, f"names a file that cannot be read: {path}")
    return path


def kafka_client_options(config: ServiceConfig) -> dict[str, Any]:
    """The keyword arguments every kafka-python client this project creates shares: where the
    cluster is and how to reach it securely (TLS, SASL). Passwords are hidden from ``repr``.

    The combinations are checked by ``ServiceConfig.validate``; this checks that the files exist.
    """
    protocol = config.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": _servers(config.kafka_bootstrap_servers),
        "security_protocol": protocol,
    }
    if protocol in KAFKA_TLS_PROTOCOLS:
        options["ssl_check_hostname"] = True
        for field_name, option in (
            ("kafka_ssl_cafile", "ssl_cafile"),
            ("kafka_ssl_certfile", "ssl_certfile"),
            ("kafka_ssl_keyfile", "ssl_keyfile"),
        ):
            if getattr(config, field_name):
                options[option] = _readable(config, field_name)
        if config.kafka_ssl_key_password:
            options["ssl_password"] = _Hidden(config.kafka_ssl_key_password)
    if protocol in KAFKA_SASL_PROTOCOLS:
        options["sasl_mechanism"] = config.kafka_sasl_mechanism
        options["sasl_plain_username"] = config.kafka_sasl_username
        options["sasl_plain_password"] = _Hidden(config.kafka_sasl_password)
    return options


@dataclasses.dataclass(frozen=True)
class KafkaCluster:
    """The cluster as this project's clients reach it, and how its topics are made."""

    # kafka_client_options(): may hold passwords, so never in the repr.
    options: Mapping[str, Any] = dataclasses.field(repr=False)
    partitions: int = 3
    replication_factor: int = 1
    min_insync_replicas: int = 1

    @classmethod
    def from_config(cls, config: ServiceConfig) -> KafkaCluster:
        return cls(
            options=kafka_client_options(config),
            partitions=config.kafka_topic_partitions,
            replication_factor=config.kafka_replication_factor,
            min_insync_replicas=config.kafka_min_insync_replicas,
        )

    @classmethod
    def plaintext(cls, bootstrap_servers: str) -> KafkaCluster:
        """An unsecured development cluster (the embedded broker)."""
        return cls(
            options={"bootstrap_servers": _servers(bootstrap_servers), "security_protocol": "PLAINTEXT"}
        )

    @property
    def servers(self) -> list[str]:
        return list(self.options["bootstrap_servers"])

    @property
    def topic_configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    def __repr__(self) -> str:
        return (
            f"KafkaCluster(servers={self.servers!r}, security_protocol={self.options['security_protocol']!r})"
        )


def as_cluster(kafka: KafkaCluster | str) -> KafkaCluster:
    """A bare bootstrap-servers string is a plaintext development cluster."""
    return kafka if isinstance(kafka, KafkaCluster) else KafkaCluster.plaintext(kafka)


def _bootstrap_timeout_ms(timeout_seconds: float) -> int:
    return int(min(timeout_seconds, BOOTSTRAP_TIMEOUT_SECONDS) * 1000)


def producer_options(kafka: KafkaCluster | str, timeout_seconds: float = 10.0) -> dict[str, Any]:
    return {
        **as_cluster(kafka).options,
        "bootstrap_timeout_ms": _bootstrap_timeout_ms(timeout_seconds),
        # Durability: every in-sync replica has the record before it counts as sent, and a retried
        # send is written once and in order (the broker deduplicates by producer id and sequence).
        "acks": "all",
        "enable_idempotence": True,
        # The outbox retries for us; a short client-side budget surfaces a dead broker quickly.
        "request_timeout_ms": int(timeout_seconds * 1000),
        "max_block_ms": int(timeout_seconds * 1000),
        "delivery_timeout_ms": int(timeout_seconds * 1000) + 1000,
        "linger_ms": 5,
        "reconnect_backoff_max_ms": _RECONNECT_BACKOFF_MAX_MS,
    }


def make_producer(kafka: KafkaCluster | str, timeout_seconds: float = 10.0) -> KafkaProducer:
    return KafkaProducer(**producer_options(kafka, timeout_seconds))


def consumer_options(
    kafka: KafkaCluster | str,
    group_id: str | None,
    session_timeout_ms: int = 10000,
    max_poll_records: int = 100,
) -> dict[str, Any]:
    return {
        **as_cluster(kafka).options,
        "bootstrap_timeout_ms": _bootstrap_timeout_ms(BOOTSTRAP_TIMEOUT_SECONDS),
        "group_id": group_id,
        "enable_auto_commit": False,  # offsets are committed only after the database commit
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(session_timeout_ms // 5, 500),
        "max_poll_interval_ms": max(session_timeout_ms * 3, 30000),
        "max_poll_records": max_poll_records,
        # How long the broker may hold a fetch that found nothing new. Kafka answers as soon as a
        # record arrives, but a broker that holds every fetch for its whole wait (the embedded
        # one does) adds up to that wait to each event's way to the ledger: kafka-python's 500 ms
        # alone took half the second a payment may take to reach the artisan's balance. An idle
        # consumer then asks ten times a second, a request the broker answers from memory.
        "fetch_max_wait_ms": CONSUMER_FETCH_WAIT_MS,
        "request_timeout_ms": max(session_timeout_ms + 5000, 15000),
        "reconnect_backoff_max_ms": _RECONNECT_BACKOFF_MAX_MS,
        "metadata_max_age_ms": 5000,
        # A consumer never makes a topic by asking for it: a broker that lost its topics would
        # make them anew with its own default partition count, not the configured one
        # (``ensure_topics``, run by the relays and by each consumer as it starts, makes them).
        "allow_auto_create_topics": False,
    }


def make_consumer(
    kafka: KafkaCluster | str,
    group_id: str | None,
    topics: Iterable[str],
    session_timeout_ms: int = 10000,
    max_poll_records: int = 100,
) -> KafkaConsumer:
    consumer = KafkaConsumer(**consumer_options(kafka, group_id, session_timeout_ms, max_poll_records))
    topics = list(topics)
    if topics:
        consumer.subscribe(topics)
    return consumer


def admin_options(kafka: KafkaCluster | str, timeout_seconds: float = 5.0) -> dict[str, Any]:
    return {
        **as_cluster(kafka).options,
        "bootstrap_timeout_ms": _bootstrap_timeout_ms(timeout_seconds),
        "request_timeout_ms": int(timeout_seconds * 1000),
        "reconnect_backoff_max_ms": _RECONNECT_BACKOFF_MAX_MS,
    }


def ensure_topics(
    kafka: KafkaCluster | str,
    topics: Iterable[str],
    partitions: int | None = None,
    timeout_seconds: float = 5.0,
    replication_factor: int | None = None,
    admin_factory: Callable[..., Any] = KafkaAdminClient,
) -> None:
    """Create the topics that do not exist yet, with the cluster's replication factor and
    ``min.insync.replicas``. Safe to call at every start; existing topics are left as they are."""
    cluster = as_cluster(kafka)
    admin = admin_factory(**admin_options(cluster, timeout_seconds))
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new_topics = [
                NewTopic(
                    name,
                    partitions or cluster.partitions,
                    replication_factor or cluster.replication_factor,
                    topic_configs=cluster.topic_configs,
                )
                for name in missing
            ]
            try:
                admin.create_topics(new_topics, timeout_ms=int(timeout_seconds * 1000))
                log.info("created topics", extra={"topics": missing})
            except TopicAlreadyExistsError:
                pass  # another process created it between our list and create
    finally:
        admin.close()


def close_quietly(client: object) -> None:
    """Close a producer, consumer or admin client within ``CLOSE_TIMEOUT_SECONDS``, whatever the
    broker does; a failure to close a broken client is not worth reporting over its cause."""
    try:
        if isinstance(client, KafkaConsumer):
            # Offsets are committed explicitly, after the database commit: never on close.
            client.close(autocommit=False, timeout_ms=int(CLOSE_TIMEOUT_SECONDS * 1000))
        elif isinstance(client, KafkaProducer):
            client.close(timeout=CLOSE_TIMEOUT_SECONDS)
        else:
            client.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - see the docstring
        log.debug("closing a Kafka client failed", exc_info=True)


def _tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context kafka-python builds from the same options (CA, client certificate)."""
    context = ssl.create_default_context(cafile=options.get("ssl_cafile"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(
            options["ssl_certfile"], options.get("ssl_keyfile"), password=options.get("ssl_password")
        )
    return context


def broker_reachable(kafka: KafkaCluster | str, timeout_seconds: float = 1.0) -> bool:
    """Cheap readiness probe: can we open a connection to any bootstrap server? Over TLS, the
    handshake must succeed too (the brokers' certificate checks against the configured CA)."""
    cluster = as_cluster(kafka)
    tls = cluster.options["security_protocol"] in KAFKA_TLS_PROTOCOLS
    context = _tls_context(cluster.options) if tls else None
    for server in cluster.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout_seconds) as sock:
                if context is not None:
                    with context.wrap_socket(sock, server_hostname=host or None):
                        pass
                return True
        except (OSError, ValueError):
            continue
    return False


__all__ = [
    "ALL_TOPICS",
    "ConfigError",
    "KafkaCluster",
    "admin_options",
    "as_cluster",
    "consumer_options",
    "kafka_client_options",
    "producer_options",
    "BOOTSTRAP_TIMEOUT_SECONDS",
    "CLOSE_TIMEOUT_SECONDS",
    "KafkaError",
    "broker_reachable",
    "close_quietly",
    "ensure_topics",
    "make_consumer",
    "make_producer",
]
