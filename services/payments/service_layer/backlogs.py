"""What the payments worker has still to do, on its ``/metrics`` (read at scrape time): the webhook
queue, and the payments and refunds left waiting on the gateway past the point the recovery job
polls them. A queue that grows, or whose oldest item keeps ageing, is a worker that cannot keep up
or a counterpart that is down."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payment, Refund, WebhookDelivery
from services.payments.domain.gateway import RefundStatus
from services.payments.domain.payments import AWAITING_GATEWAY
from services.payments.domain.webhooks import DeliveryStatus
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow
from shared.probes import seconds_since


def webhook_queue(session: Session, now: dt.datetime) -> tuple[int, int, dt.datetime | None]:
    """Deliveries waiting for an attempt: all of them, those due now, and when the longest-waiting
    due one became due."""
    pending = WebhookDelivery.status == DeliveryStatus.PENDING
    waiting = session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery).where(pending)) or 0
    due, oldest_due = session.execute(
        sa.select(sa.func.count(), sa.func.min(WebhookDelivery.next_attempt_at)).where(
            pending, WebhookDelivery.next_attempt_at <= now
        )
    ).one()
    return waiting, due or 0, oldest_due


def recovery_backlog(
    session: Session, settings: PaymentSettings, now: dt.datetime
) -> dict[str, tuple[int, dt.datetime | None]]:
    """Payments and refunds the recovery job is due to poll the gateway about (nothing heard of
    them for ``recovery_after``): how many of each, and when the longest-silent was last heard of."""
    cutoff = now - settings.recovery_after
    backlog = {}
    for kind, model, waiting in (
        ("payment", Payment, Payment.status.in_([str(status) for status in AWAITING_GATEWAY])),
        ("refund", Refund, Refund.status == RefundStatus.PENDING),
    ):
        last_heard = sa.func.coalesce(model.gateway_checked_at, model.created_at)
        count, oldest = session.execute(
            sa.select(sa.func.count(), sa.func.min(last_heard)).where(waiting, last_heard < cutoff)
        ).one()
        backlog[kind] = (count or 0, oldest)
    return backlog


class WorkerBacklogsCollector:
    """``/metrics`` of the payments worker: its webhook queue and its recovery backlog."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], settings: PaymentSettings) -> None:
        self.uow_factory = uow_factory
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        try:
            with self.uow_factory() as uow:
                waiting, due, oldest_due = webhook_queue(uow.session, now)
                backlog = recovery_backlog(uow.session, self.settings, now)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            return
        yield GaugeMetricFamily(
            "hirfa_webhook_deliveries_pending",
            "Webhook deliveries waiting for their first or next attempt",
            value=waiting,
        )
        yield GaugeMetricFamily(
            "hirfa_webhook_deliveries_due",
            "Webhook deliveries whose attempt is due now (the dispatcher has not got to them yet)",
            value=due,
        )
        yield GaugeMetricFamily(
            "hirfa_webhook_oldest_due_seconds",
            "How long the longest-waiting due webhook delivery has been due (0: none)",
            value=seconds_since(oldest_due),
        )
        count = GaugeMetricFamily(
            "hirfa_payments_recovery_backlog",
            "Payments and refunds nothing was heard of for the recovery delay: the worker polls the gateway for them",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "hirfa_payments_recovery_oldest_seconds",
            "How long ago the longest-silent payment or refund of the recovery backlog was last heard of (0: none)",
            labels=["kind"],
        )
        for kind, (how_many, last_heard) in backlog.items():
            count.add_metric([kind], how_many)
            oldest.add_metric([kind], seconds_since(last_heard))
        yield count
        yield oldest

    def describe(self) -> list[GaugeMetricFamily]:
        return []
