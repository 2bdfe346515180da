"""Events: the envelope, JSON Schemas, the transactional outbox, its relay, and the consumer runner."""

from shared.events.envelope import Event, make_event, parse_time
from shared.events.schemas import EventSchemaError, validate_event

__all__ = ["Event", "EventSchemaError", "make_event", "parse_time", "validate_event"]
