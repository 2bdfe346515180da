"""Erasure requests (law 09-08): an artisan asks for their personal data to be erased.

What the anti-money-laundering law obliges Hirfa to keep cannot be erased at once: the request is
recorded, and the artisan restricted in the same transaction (no longer processed: no sign-in, no
new payment, no notification, no rescreening, no KYC decision; shown to compliance only), which
leaves through the outbox as ``onboarding.artisan.processing_restricted`` for payments (which
refuses new payments to them) and accounts. Once the duty ends, the erasure job erases it.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.artisan_sessions import revoke_all_sessions
from services.onboarding.adapters.orm import ErasureRequest, Notification
from services.onboarding.domain.notifications import FAILED, QUEUED
from services.onboarding.domain.personal_data import ERASURE_RESTRICTED, retention_ends
from services.onboarding.service_layer.artisans import find_visible_artisan
from services.onboarding.service_layer.kyc import audit, close_open_reviews
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.events import make_event
from shared.ids import new_id


def erasure_request_of(session: Session, artisan_id: str) -> ErasureRequest | None:
    return session.scalar(sa.select(ErasureRequest).where(ErasureRequest.artisan_id == artisan_id))


def request_erasure(
    uow: UnitOfWork,
    artisan_id: str,
    principal: Principal,
    *,
    retention_years: int,
    now: dt.datetime | None = None,
) -> tuple[ErasureRequest, bool]:
    """Record ``principal``'s request to erase the artisan's data and restrict the artisan; returns
    the request and whether it is new (one per artisan: asking again answers the first)."""
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        existing = erasure_request_of(session, artisan.id)
        if existing is not None:
            return existing, False
        now = now or utcnow()
        request = ErasureRequest(
            id=new_id("era"),
            artisan_id=artisan.id,
            status=ERASURE_RESTRICTED,
            requested_by=principal.client_id,
            requested_at=now,
            relationship_ended_at=now,
            retain_until=retention_ends(now, retention_years),
        )
        session.add(request)
        artisan.restricted_at = now
        # No session outlives the request (an access token already issued lives out its minutes).
        revoke_all_sessions(session, artisan.id, "erasure_requested", now)
        # Nothing more is decided for a restricted artisan, nor sent to them.
        close_open_reviews(session, artisan)
        session.execute(
            sa.update(Notification)
            .where(Notification.artisan_id == artisan.id, Notification.status == QUEUED)
            .values(status=FAILED, last_error="erasure_requested", next_attempt_at=None, updated_at=now)
        )
        audit(
            session, artisan.id, "personal_data.erasure_requested", principal.client_id, subject_id=request.id
        )
        uow.add_event(
            make_event(
                "onboarding.artisan.processing_restricted",
                subject=artisan.id,
                data={
                    "artisan_id": artisan.id,
                    "erasure_request_id": request.id,
                    "restricted_at": now.isoformat(),
                    "retain_until": request.retain_until.isoformat(),
                },
            )
        )
        uow.commit()
        return request, True


def get_erasure_requests(uow: UnitOfWork, artisan_id: str, principal: Principal) -> list[ErasureRequest]:
    """The artisan's erasure request, if any, as a list (for the artisan themself, or compliance)."""
    with uow:
        artisan = find_visible_artisan(uow.session, artisan_id, principal)
        request = erasure_request_of(uow.session, artisan.id)
        return [] if request is None else [request]
