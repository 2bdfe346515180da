"""Kafka clients configured the way Hirfa needs them: acks=all, bounded timeouts, explicit commits.

Every wait on the broker is bounded, including the first connection (``bootstrap_timeout_ms``,
30 s by default in kafka-python) and closing a client: a process must be able to stop within
seconds of SIGTERM whether the broker is up, down or hanging.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

# The longest any client waits for its first broker connection before giving up (and retrying
# from its own loop, where a stop request is seen).
BOOTSTRAP_TIMEOUT_SECONDS = 5.0
# Closing a client while the broker is away must not hold up a shutdown.
CLOSE_TIMEOUT_SECONDS = 2.0
# Reconnection attempts to a dead broker back off up to this, never kafka-python's 30 s.
_RECONNECT_BACKOFF_MAX_MS = 1000

ALL_TOPICS = ("onboarding.events", "payments.events", "accounts.events")


def _servers(bootstrap_servers: str) -> list[str]:
    return [server.strip() for server in bootstrap_servers.split(",") if server.strip()]


def _bootstrap_timeout_ms(timeout_seconds: float) -> int:
    return int(min(timeout_seconds, BOOTSTRAP_TIMEOUT_SECONDS) * 1000)


def make_producer(bootstrap_servers: str, timeout_seconds: float = 10.0) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=_servers(bootstrap_servers),
        bootstrap_timeout_ms=_bootstrap_timeout_ms(timeout_seconds),
        acks="all",
        # The outbox retries for us; a short client-side budget surfaces a dead broker quickly.
        request_timeout_ms=int(timeout_seconds * 1000),
        max_block_ms=int(timeout_seconds * 1000),
        delivery_timeout_ms=int(timeout_seconds * 1000) + 1000,
        linger_ms=5,
        reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
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
        bootstrap_timeout_ms=_bootstrap_timeout_ms(BOOTSTRAP_TIMEOUT_SECONDS),
        group_id=group_id,
        enable_auto_commit=False,  # offsets are committed only after the database commit
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 5, 500),
        max_poll_interval_ms=max(session_timeout_ms * 3, 30000),
        max_poll_records=max_poll_records,
        request_timeout_ms=max(session_timeout_ms + 5000, 15000),
        reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
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
        bootstrap_timeout_ms=_bootstrap_timeout_ms(timeout_seconds),
        request_timeout_ms=int(timeout_seconds * 1000),
        reconnect_backoff_max_ms=_RECONNECT_BACKOFF_MAX_MS,
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
    "BOOTSTRAP_TIMEOUT_SECONDS",
    "CLOSE_TIMEOUT_SECONDS",
    "KafkaError",
    "broker_reachable",
    "close_quietly",
    "ensure_topics",
    "make_consumer",
    "make_producer",
]
