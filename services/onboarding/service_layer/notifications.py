"""Notifications to artisans: written from events, sent by SMS from the worker, read in the inbox.

1. **Queued from events.** Onboarding's consumer hands every event of ``payments.events``,
   ``accounts.events`` and ``onboarding.events`` to ``make_notification_handlers``; an event about
   an artisan's money or file becomes one ``Notification`` row, rendered in the artisan's
   ``preferred_language`` (the consumer's inbox, and a unique ``source_event_id``, make that once
   per event). An artisan whose phone is not verified gets it in the inbox only.
2. **Sent by the worker** (``send_due_notifications``): queued rows whose time has come go to the
   SMS provider (our notification id is the provider's idempotency key); a refusal (4xx) fails the
   notification, anything else (5xx, timeout) is tried again after a doubling delay, until
   ``max_attempts``.
3. **Receipts** (``apply_receipt``): the provider's signed receipt moves ``sent`` to ``delivered``
   or ``failed``; a receipt seen before (the ``inbox`` table, consumer ``sms_receipts``) changes
   nothing.
4. **The inbox**: ``list_notifications`` (newest first, cursor pages, unread only on request) and
   ``mark_read``, each for the artisan's own notifications only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from services.onboarding.adapters.orm import ApiClient, Artisan, InboxMessage, Notification
from services.onboarding.domain.notifications import (
    DELIVERED,
    FAILED,
    INBOX,
    QUEUED,
    RECEIPT_MOVES,
    SENT,
    SMS,
    Draft,
    draft_for,
    render,
    sms_text,
)
from services.onboarding.domain.ports import (
    InvalidSmsReceipt,
    SmsDeliveryError,
    SmsGateway,
    SmsReceipt,
    SmsRejected,
)
from shared.db import UnitOfWork, utcnow
from shared.errors import NotFound, ServiceUnavailable, Unauthenticated
from shared.events.envelope import Event
from shared.i18n import Message, normalize_language
from shared.ids import new_id
from shared.pagination import Page

log = logging.getLogger(__name__)

RECEIPTS_CONSUMER = "sms_receipts"


@dataclasses.dataclass(frozen=True)
class NotificationSettings:
    max_attempts: int = 6
    retry_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """When to try again after ``attempts`` failed tries: the delay doubles, up to the cap."""
        delay = min(self.retry_seconds * 2 ** max(attempts - 1, 0), self.max_backoff_seconds)
        return now + dt.timedelta(seconds=delay)


# --- 1. from events -----------------------------------------------------------------------------


def queue_notification(
    uow: UnitOfWork,
    artisan: Artisan,
    draft: Draft,
    *,
    source_event_id: str | None,
    now: dt.datetime | None = None,
) -> Notification:
    """Write ``draft`` for ``artisan`` in their language, in the caller's transaction."""
    now = now or utcnow()
    language = normalize_language(artisan.preferred_language)
    by_sms = artisan.phone_verified_at is not None
    notification = Notification(
        id=new_id("ntf"),
        artisan_id=artisan.id,
        kind=draft.kind,
        language=language,
        text=render(draft, language),
        channel=SMS if by_sms else INBOX,
        # Inbox-only: it is where the artisan reads it, so it is there already.
        status=QUEUED if by_sms else DELIVERED,
        source_event_id=source_event_id,
        attempts=0,
        next_attempt_at=now if by_sms else None,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(notification)
    return notification


def notify_from_event(uow: UnitOfWork, event: Event) -> None:
    """The consumer's handler: the notification ``event`` calls for, if any."""
    session = uow.session

    def marketplace_name(client_id: str) -> str:
        client = session.get(ApiClient, client_id)
        return client.name if client is not None else client_id

    draft = draft_for(event.type, event.data, marketplace_name)
    if draft is None:
        return
    artisan = session.get(Artisan, draft.artisan_id)
    if artisan is None:
        log.warning("event about an unknown artisan", extra={"event_id": event.id, "event_type": event.type})
        return
    if artisan.restricted_at is not None:
        return  # an artisan who asked for erasure is no longer written to
    already = session.scalar(sa.select(Notification.id).where(Notification.source_event_id == event.id))
    if already is None:
        queue_notification(uow, artisan, draft, source_event_id=event.id)


def make_notification_handlers() -> dict[str, Callable[[UnitOfWork, Event], None]]:
    from services.onboarding.domain.notifications import DRAFTERS

    return dict.fromkeys(DRAFTERS, notify_from_event)


# --- 2. sending ---------------------------------------------------------------------------------


def send_due_notifications(
    uow_factory: Callable[[], UnitOfWork],
    sms: SmsGateway,
    settings: NotificationSettings,
    *,
    now: dt.datetime | None = None,
    batch_size: int = 50,
) -> dict[str, int]:
    """Send the queued notifications whose time has come; counts of sent, retried and failed.

    Each one in its own transaction, its row locked (``SKIP LOCKED``: two workers never send the
    same one) only while it is handed to the provider, and committed at once, so the provider's
    receipt finds it. When the provider fails one for a reason that is not the message's (5xx,
    timeout), the pass stops there: the others keep their turn instead of each waiting out a
    timeout against a provider that is down.
    """
    now = now or utcnow()
    counts = {"sent": 0, "retried": 0, "failed": 0}
    tried: set[str] = set()
    for _ in range(batch_size):
        with uow_factory() as uow:
            session = uow.session
            query = (
                sa.select(Notification)
                .where(Notification.status == QUEUED, Notification.next_attempt_at <= now)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if tried:
                query = query.where(Notification.id.not_in(tried))
            notification = session.scalar(query)
            if notification is None:
                break
            tried.add(notification.id)
            artisan = session.get(Artisan, notification.artisan_id)
            assert artisan is not None
            outcome = _send_one(notification, artisan.phone, sms, settings, now)
            uow.commit()
        counts[outcome] += 1
        if outcome == "retried":
            break
    return counts


def _send_one(
    notification: Notification, phone: str, sms: SmsGateway, settings: NotificationSettings, now: dt.datetime
) -> str:
    notification.attempts += 1
    notification.updated_at = now
    try:
        message_id = sms.submit(phone, sms_text(notification.text), reference=notification.id)
    except SmsRejected as error:
        notification.status, notification.next_attempt_at = FAILED, None
        notification.last_error = str(error)[:200]
        return "failed"
    except SmsDeliveryError as error:
        notification.last_error = str(error)[:200]
        if notification.attempts >= settings.max_attempts:
            notification.status, notification.next_attempt_at = FAILED, None
            return "failed"
        notification.next_attempt_at = settings.next_attempt(notification.attempts, now)
        return "retried"
    notification.status, notification.next_attempt_at = SENT, None
    notification.provider_message_id = message_id
    notification.sent_at = now
    notification.last_error = None
    return "sent"


# --- 3. receipts --------------------------------------------------------------------------------


def handle_receipt(uow: UnitOfWork, sms: SmsGateway, headers: Any, raw_body: bytes) -> dict[str, Any]:
    """Check a receipt's signature, then apply it once."""
    try:
        receipt = sms.parse_receipt(headers, raw_body)
    except InvalidSmsReceipt as exc:
        log.warning("SMS receipt refused", extra={"reason": str(exc)})
        raise Unauthenticated(
            Message("The receipt's signature is missing, invalid or outside the replay window."),
            code="invalid_signature",
        ) from None
    return apply_receipt(uow, receipt)


def apply_receipt(uow: UnitOfWork, receipt: SmsReceipt, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Apply one delivery receipt, once. A receipt for a message we have not recorded yet (the
    provider was quicker than our commit) is refused with 503, so the provider sends it again."""
    now = now or utcnow()
    with uow:
        session = uow.session
        seen = session.get(InboxMessage, (RECEIPTS_CONSUMER, receipt.receipt_id[:40]))
        if seen is not None:
            return {"received": True, "applied": False, "status": _status_of(session, receipt)}
        notification = session.scalar(
            sa.select(Notification)
            .where(Notification.provider_message_id == receipt.message_id)
            .with_for_update()
        )
        if notification is None:
            raise ServiceUnavailable(
                Message("This message is not known yet. Send the receipt again later."),
                code="sms_message_unknown",
            )
        applied = False
        if receipt.status != "other" and (notification.status, receipt.status) in RECEIPT_MOVES:
            notification.status = DELIVERED if receipt.status == "delivered" else FAILED
            notification.next_attempt_at = None
            notification.updated_at = now
            if receipt.status == "delivered":
                notification.delivered_at = now
            else:
                notification.last_error = f"receipt: {receipt.error_code or 'failed'}"
            applied = True
        session.add(
            InboxMessage(
                consumer=RECEIPTS_CONSUMER,
                event_id=receipt.receipt_id[:40],
                event_type=f"sms.receipt.{receipt.status}",
                processed_at=now,
            )
        )
        try:
            uow.commit()
        except sa_exc.IntegrityError:
            # The same receipt, delivered twice at once: the other delivery applied it.
            return {"received": True, "applied": False, "status": notification.status}
        return {"received": True, "applied": applied, "status": notification.status}


def _status_of(session: Any, receipt: SmsReceipt) -> str | None:
    return session.scalar(
        sa.select(Notification.status).where(Notification.provider_message_id == receipt.message_id)
    )


# --- 4. the inbox -------------------------------------------------------------------------------


def list_notifications(
    uow: UnitOfWork,
    artisan_id: str,
    *,
    unread: bool = False,
    limit: int = 20,
    starting_after: str | None = None,
) -> Page:
    """The artisan's notifications, newest first; ``starting_after`` is the previous page's cursor."""
    with uow:
        query = sa.select(Notification).where(Notification.artisan_id == artisan_id)
        if unread:
            query = query.where(Notification.read_at.is_(None))
        if starting_after:
            query = query.where(Notification.id < starting_after)
        rows = list(uow.session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = rows[:limit]
        return Page(data=rows, has_more=has_more, next_cursor=rows[-1].id if has_more and rows else None)


def mark_read(uow: UnitOfWork, artisan_id: str, notification_id: str) -> Notification:
    """Mark one of the artisan's notifications read (again is fine: the first time is kept)."""
    with uow:
        notification = uow.session.get(Notification, notification_id)
        if notification is None or notification.artisan_id != artisan_id:
            raise NotFound(
                Message("No notification {notification_id}.", notification_id=notification_id),
                param="notification_id",
            )
        if notification.read_at is None:
            notification.read_at = utcnow()
            uow.commit()
        return notification


def language_of(uow: UnitOfWork, artisan_id: str) -> str | None:
    """The artisan's preferred language, for the problems they are shown."""
    with uow:
        return uow.session.scalar(sa.select(Artisan.preferred_language).where(Artisan.id == artisan_id))
