"""The inbox makes a redelivered event a no-op, even for a handler that is not idempotent."""

from __future__ import annotations

import sqlalchemy as sa

from services.payments.adapters.orm import InboxMessage
from shared.events import make_event
from shared.events.consumer import EventConsumer
from shared.ids import new_id


def test_redelivery_is_applied_once(payments_app):
    context = payments_app.extensions["hirfa"]
    calls = []
    consumer = EventConsumer(
        name="test-consumer",
        handlers={"onboarding.artisan.registered": lambda uow, event: calls.append(event.id)},
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=lambda: None,
        producer_factory=lambda: None,
        dead_letter_topic="payments.dead-letter",
    )
    artisan_id = new_id("art")
    event = make_event(
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
    assert consumer.apply(event) is True
    assert consumer.apply(event) is False
    assert calls == [event.id]
    with context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(InboxMessage)) == 1


def test_a_failing_handler_leaves_no_inbox_row(payments_app):
    context = payments_app.extensions["hirfa"]

    def explode(uow, event):
        raise RuntimeError("bug")

    consumer = EventConsumer(
        name="test-consumer",
        handlers={"onboarding.artisan.registered": explode},
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=lambda: None,
        producer_factory=lambda: None,
        dead_letter_topic="payments.dead-letter",
    )
    artisan_id = new_id("art")
    event = make_event(
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
    try:
        consumer.apply(event)
    except RuntimeError:
        pass
    with context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(InboxMessage)) == 0
