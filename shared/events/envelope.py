"""The event envelope (CloudEvents-like), the same on every topic.

``key`` is not part of the envelope body: it is the Kafka message key (the artisan id), which
keeps one artisan's events in order within a partition.

``traceparent`` (optional, W3C Trace Context) names the trace the event was created in; the outbox
writes it when tracing is on (shared/tracing.py), and envelopes without it are as valid.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from shared.events.schemas import validate_event
from shared.ids import new_id, reserve_ulids, ulid_in_block


def parse_time(value: str) -> dt.datetime:
    """An event timestamp (RFC 3339, ``Z`` or an offset) as an aware datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclasses.dataclass(frozen=True)
class Event:
    id: str
    type: str
    source: str
    subject: str
    time: str
    schema_version: int
    data: dict[str, Any]
    key: str
    traceparent: str | None = None

    def envelope(self) -> dict[str, Any]:
        envelope = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "schema_version": self.schema_version,
            "data": self.data,
        }
        if self.traceparent is not None:
            envelope["traceparent"] = self.traceparent
        return envelope

    def to_bytes(self) -> bytes:
        return json.dumps(self.envelope(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_envelope(cls, envelope: dict[str, Any], key: str) -> Event:
        return cls(
            id=envelope["id"],
            type=envelope["type"],
            source=envelope["source"],
            subject=envelope["subject"],
            time=envelope["time"],
            schema_version=envelope["schema_version"],
            data=envelope["data"],
            key=key,
            traceparent=envelope.get("traceparent"),
        )


def make_event(
    event_type: str,
    *,
    subject: str,
    data: dict[str, Any],
    key: str | None = None,
    schema_version: int = 1,
) -> Event:
    """Build an event and check it against its JSON Schema (producer-side check)."""
    source = event_type.split(".", 1)[0]
    event = Event(
        id=new_id("evt"),
        type=event_type,
        source=source,
        subject=subject,
        time=_event_time(),
        schema_version=schema_version,
        data=data,
        key=key or subject,
    )
    validate_event(event.envelope())
    return event


def make_events(
    event_type: str, items: Sequence[tuple[str, dict[str, Any]]], *, schema_version: int = 1
) -> list[Event]:
    """Events of one type recorded together (a set-based write's), one per ``(subject, data)``: as
    ``make_event`` builds them, but with one creation time for all and their ids taken as one block
    of ULIDs (in order), which is most of what building an event costs besides its check. Each
    event is still checked against its JSON Schema, whole."""
    if not items:
        return []
    source = event_type.split(".", 1)[0]
    time = _event_time()
    head, first = reserve_ulids(len(items))
    events = []
    for number, (subject, data) in enumerate(items, start=first):
        event = Event(
            id="evt_" + ulid_in_block(head, number),
            type=event_type,
            source=source,
            subject=subject,
            time=time,
            schema_version=schema_version,
            data=data,
            key=subject,
        )
        validate_event(event.envelope())
        events.append(event)
    return events


def _event_time() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
