"""Dead letters: read a service's dead-letter topic, and redrive its messages once a fix is in.

The consumer writes a poison message to ``<service>.dead-letter`` unchanged (key and value), with
headers saying why (``error``) and where it came from (``original_topic``, ``original_partition``,
``original_offset``, ``consumer``). A dead letter is named by its place on that topic,
``<partition>:<offset>``, or by the id of the event it carries.

Redriving republishes the original message to its original topic with its original key, so the
consumer applies it (once: its inbox skips an event applied before). Each dead letter is redriven
at most once: a marker keyed by its place (and the fingerprint of its value, should the topic be
recreated) goes to ``<service>.dead-letter.redriven``, and a redrive skips dead letters that have
one. A redriven event that fails again is a new dead letter, which can be redriven after the next
fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from shared.config import ServiceConfig, is_secret
from shared.events.broker import KafkaCluster, close_quietly, consumer_options, ensure_topics
from shared.logging import mask_sensitive


class DeadLetterError(Exception):
    """A dead-letter operation that cannot be done; the message says why (never a secret)."""


def marker_topic(dead_letter_topic: str) -> str:
    return f"{dead_letter_topic}.redriven"


def _header(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return value.decode(errors="replace") if value is not None else None


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    dead_lettered_at: dt.datetime
    error: str
    consumer: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    event_id: str | None
    event_type: str | None

    @property
    def ref(self) -> str:
        """Its place on the dead-letter topic: ``<partition>:<offset>``."""
        return f"{self.partition}:{self.offset}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.value).hexdigest()[:16]

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        headers = {name: value for name, value in (record.headers or [])}
        event_id = event_type = None
        try:
            envelope = json.loads(record.value)
            if isinstance(envelope, dict):
                event_id = envelope.get("id") if isinstance(envelope.get("id"), str) else None
                event_type = envelope.get("type") if isinstance(envelope.get("type"), str) else None
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
            pass
        original_partition = _header(headers, "original_partition")
        original_offset = _header(headers, "original_offset")
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            dead_lettered_at=dt.datetime.fromtimestamp(record.timestamp / 1000, dt.UTC),
            error=_header(headers, "error") or "",
            consumer=_header(headers, "consumer") or "",
            original_topic=_header(headers, "original_topic"),
            original_partition=int(original_partition) if original_partition else None,
            original_offset=int(original_offset) if original_offset else None,
            event_id=event_id,
            event_type=event_type,
        )


def read_topic(
    cluster: KafkaCluster,
    topic: str,
    timeout_seconds: float = 10.0,
    consumer_factory: Callable[..., Any] = KafkaConsumer,
) -> list[Any]:
    """Every record on ``topic``, from the start to its end as of now, in (partition, offset) order."""
    consumer = consumer_factory(**consumer_options(cluster, None))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_seconds
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise DeadLetterError(f"{topic} could not be read within {timeout_seconds:g} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(
                    record
                    for record in batch
                    if record.offset < ends[TopicPartition(topic, record.partition)]
                )
        return sorted(records, key=lambda record: (record.partition, record.offset))
    finally:
        close_quietly(consumer)


@dataclasses.dataclass(frozen=True)
class DeadLetters:
    """What a dead-letter topic holds, and which of its letters were redriven."""

    topic: str
    letters: list[DeadLetter]
    redriven: frozenset[tuple[str, str]]  # (ref, fingerprint)

    def is_redriven(self, letter: DeadLetter) -> bool:
        return (letter.ref, letter.fingerprint) in self.redriven

    def find(self, identifier: str) -> list[DeadLetter]:
        """The dead letters ``identifier`` names: ``<partition>:<offset>``, a bare offset (when one
        partition only has it), or an event id (every dead letter of that event)."""
        identifier = identifier.strip()
        if ":" in identifier:
            found = [letter for letter in self.letters if letter.ref == identifier]
        elif identifier.isdigit():
            found = [letter for letter in self.letters if letter.offset == int(identifier)]
            if len(found) > 1:
                refs = ", ".join(letter.ref for letter in found)
                raise DeadLetterError(f"offset {identifier} is on several partitions: name one of {refs}")
        else:
            found = [letter for letter in self.letters if letter.event_id == identifier]
        if not found:
            raise DeadLetterError(f"no dead letter {identifier} on {self.topic}")
        return found


def load_dead_letters(
    cluster: KafkaCluster, dead_letter_topic: str, timeout_seconds: float = 10.0
) -> DeadLetters:
    ensure_topics(
        cluster, [dead_letter_topic, marker_topic(dead_letter_topic)], timeout_seconds=timeout_seconds
    )
    letters = [
        DeadLetter.from_record(record) for record in read_topic(cluster, dead_letter_topic, timeout_seconds)
    ]
    redriven = set()
    for record in read_topic(cluster, marker_topic(dead_letter_topic), timeout_seconds):
        try:
            marker = json.loads(record.value)
            redriven.add((str(marker["dead_letter"]), str(marker["fingerprint"])))
        except (ValueError, KeyError, TypeError):
            continue  # not a marker of ours
    return DeadLetters(dead_letter_topic, letters, frozenset(redriven))


@dataclasses.dataclass
class RedriveResult:
    redriven: int = 0
    already_redriven: int = 0
    unroutable: list[str] = dataclasses.field(default_factory=list)


def redrive(
    producer: Any,
    dead_letters: DeadLetters,
    letters: Sequence[DeadLetter],
    timeout_seconds: float = 10.0,
    progress: Callable[[Iterable[DeadLetter]], Iterable[DeadLetter]] = lambda letters: letters,
) -> RedriveResult:
    """Republish ``letters`` not redriven before to their original topics, keyed as before, then
    record each as redriven. ``progress`` wraps the iteration (a progress bar)."""
    result = RedriveResult()
    pending = []
    for letter in sorted(set(letters), key=lambda letter: (letter.partition, letter.offset)):
        if dead_letters.is_redriven(letter):
            result.already_redriven += 1
        elif not letter.original_topic:
            result.unroutable.append(letter.ref)
        else:
            pending.append(letter)
    published: set[str] = set()
    for letter in progress(pending):
        # Two dead letters of one event (it failed, was redriven, failed again): publish it once.
        if letter.event_id is None or letter.event_id not in published:
            headers = [("redriven_from", f"{dead_letters.topic}:{letter.ref}".encode())]
            if letter.event_id:
                headers.append(("event_id", letter.event_id.encode()))
                published.add(letter.event_id)
            if letter.event_type:
                headers.append(("event_type", letter.event_type.encode()))
            assert letter.original_topic is not None
            producer.send(letter.original_topic, key=letter.key, value=letter.value, headers=headers).get(
                timeout=timeout_seconds
            )
        # Only once the event is back on its topic: a crash in between redrives it again, which
        # the consumer's inbox makes harmless.
        marker = {
            "dead_letter": letter.ref,
            "fingerprint": letter.fingerprint,
            "event_id": letter.event_id,
            "original_topic": letter.original_topic,
            "redriven_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        producer.send(
            marker_topic(dead_letters.topic), key=letter.ref.encode(), value=json.dumps(marker).encode()
        ).get(timeout=timeout_seconds)
        result.redriven += 1
    return result


def secret_values(config: ServiceConfig) -> list[str]:
    """The config's secrets (and the database password), to keep out of what is displayed."""
    values = [
        value
        for field in dataclasses.fields(config)
        if is_secret(field) and isinstance(value := getattr(config, field.name), str) and len(value) >= 4
    ]
    password = urlsplit(config.database_url).password if config.database_url else None
    if password:
        values.append(password)
    return values


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced and card numbers, RIBs, phones and CINs masked."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return mask_sensitive(text)
