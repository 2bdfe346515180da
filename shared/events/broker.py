"""Kafka clients configured the way Hirfa needs them: acks=all, bounded timeouts, explicit commits."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

ALL_TOPICS = ("onboarding.events", "payments.events", "accounts.events")


def _servers(bootstrap_servers: str) -> list[str]:
    return [server.strip() for server in bootstrap_servers.split(",") if server.strip()]


def make_producer(bootstrap_servers: str, timeout_seconds: float = 10.0) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=_servers(bootstrap_servers),
        acks="all",
        # The outbox retries for us; a short client-side budget surfaces a dead broker quickly.
        request_timeout_ms=int(timeout_seconds * 1000),
        max_block_ms=int(timeout_seconds * 1000),
        delivery_timeout_ms=int(timeout_seconds * 1000) + 1000,
        linger_ms=5,
        reconnect_backoff_max_ms=2000,
    )


def make_consumer(
    bootstrap_servers: str,
    group_id: str,
    topics: Iterable[str],
    session_timeout_ms: int = 10000,
    max_poll_records: int = 100,
) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=_servers(bootstrap_servers),
        group_id=group_id,
        enable_auto_commit=False,  # offsets are committed only after the database commit
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 5, 500),
        max_poll_interval_ms=max(session_timeout_ms * 3, 30000),
        max_poll_records=max_poll_records,
        request_timeout_ms=max(session_timeout_ms + 5000, 15000),
        reconnect_backoff_max_ms=2000,
        metadata_max_age_ms=5000,
    )
    consumer.subscribe(list(topics))
    return consumer


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int = 3,
    timeout_seconds: float = 5.0,
    replication_factor: int = 1,
) -> None:
    """Create the topics that do not exist yet. Safe to call at every start."""
    admin = KafkaAdminClient(
        bootstrap_servers=_servers(bootstrap_servers),
        request_timeout_ms=int(timeout_seconds * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, replication_factor) for name in missing],
                    timeout_ms=int(timeout_seconds * 1000),
                )
                log.info("created topics", extra={"topics": missing})
            except TopicAlreadyExistsError:
                pass  # another process created it between our list and create
    finally:
        admin.close()


def broker_reachable(bootstrap_servers: str, timeout_seconds: float = 1.0) -> bool:
    """Cheap readiness probe: can we open a TCP connection to any bootstrap server?"""
    for server in _servers(bootstrap_servers):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout_seconds):
                return True
        except (OSError, ValueError):
            continue
    return False


__all__ = [
    "ALL_TOPICS",
    "KafkaError",
    "broker_reachable",
    "ensure_topics",
    "make_consumer",
    "make_producer",
]
