"""The inbox makes a redelivered event a no-op, even for a handler that is not idempotent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.payments.adapters.orm import InboxMessage
from shared.events import make_event
from shared.events.consumer import EventConsumer
from shared.ids import new_id


def consumer_with(context, handler) -> EventConsumer:
    return EventConsumer(
        name="test-consumer",
        handlers={"onboarding.artisan.registered": handler},
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=lambda: None,
        producer_factory=lambda: None,
        dead_letter_topic="payments.dead-letter",
    )


def registered_event():
    artisan_id = new_id("art")
    return make_event(
        "onboarding.artisan.registered",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "marketplace_id": "cli_x",
            "kyc_tier": 0,
            "tier_cap": {"amount": 0, "currency": "MAD"},
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": "2026-11-23T10:00:00+00:00",
        },
    )


def inbox_rows(context) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(InboxMessage))


def test_redelivery_is_applied_once(payments_app):
    context = payments_app.extensions["hirfa"]
    calls = []
    consumer = consumer_with(context, lambda uow, event: calls.append(event.id))
    event = registered_event()
    assert consumer.apply(event) is True
    assert consumer.apply(event) is False
    assert calls == [event.id]
    assert inbox_rows(context) == 1


def test_a_failing_handler_leaves_no_inbox_row(payments_app):
    context = payments_app.extensions["hirfa"]

    def explode(uow, event):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        consumer_with(context, explode).apply(registered_event())
    assert inbox_rows(context) == 0
