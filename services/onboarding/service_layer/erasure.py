"""Erasure requests (law 09-08): an artisan asks for their personal data to be erased.

What the anti-money-laundering law obliges Hirfa to keep cannot be erased at once: the request is
recorded, and the artisan restricted in the same transaction (no longer processed: no sign-in, no
new payment, no notification, no rescreening, no KYC decision; shown to compliance only), which
leaves through the outbox as ``onboarding.artisan.processing_restricted`` for payments (which
refuses new payments to them) and accounts. Once the duty ends, the erasure job
(``erase_due_artisans``, on the onboarding worker) erases it: onboarding's copy pseudonymised, the
KYC documents crypto-shredded, and ``onboarding.artisan.erased`` for the other services.

What stays: the artisan id (a random identifier that names no one once nothing else ties it to a
person: the pseudonym under which the ledger keeps its amounts, so the books still balance), the
KYC audit log (append-only: the database refuses to change it) and figures without a person
behind them (tiers, dates, statuses, region and craft).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import artisans
from services.onboarding.adapters.artisan_sessions import revoke_all_sessions
from services.onboarding.adapters.orm import (
    ArtisanDevice,
    ArtisanRefreshToken,
    ArtisanSignIn,
    BankAccount,
    ErasureRequest,
    KycDocument,
    KycReview,
    KycTierChange,
    Notification,
    OutboxMessage,
    PhoneVerification,
    ScreeningResult,
    SignInLockout,
)
from services.onboarding.domain.notifications import FAILED, QUEUED
from services.onboarding.domain.personal_data import (
    ERASED_DATE_OF_BIRTH,
    ERASED_NAME,
    ERASURE_DONE,
    ERASURE_RESTRICTED,
    pseudonym,
    retention_ends,
    retention_over,
)
from services.onboarding.service_layer.artisans import find_visible_artisan
from services.onboarding.service_layer.kyc import SYSTEM_ACTOR, audit, close_open_reviews
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.events import make_event
from shared.events.schemas import validate_event
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


# --- the erasure job: once the retention duty is over ---------------------------------------------


def erase_due_artisans(
    uow_factory: Callable[[], UnitOfWork], *, now: dt.datetime | None = None, batch_size: int = 50
) -> int:
    """Erase the artisans whose retention duty is over (``retain_until`` passed); how many.

    Each in its own transaction, its request locked (``SKIP LOCKED``: two workers never erase the
    same artisan): onboarding's copy of their personal data pseudonymised, their KYC documents
    crypto-shredded, and ``onboarding.artisan.erased`` written to the outbox, for payments and
    accounts to pseudonymise theirs. Safe to run again: an erased request is not due any more.
    """
    now = now or utcnow()
    erased = 0
    while erased < batch_size:
        with uow_factory() as uow:
            request = uow.session.scalar(
                sa.select(ErasureRequest)
                .where(ErasureRequest.status == ERASURE_RESTRICTED, ErasureRequest.retain_until <= now)
                .order_by(ErasureRequest.retain_until, ErasureRequest.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if request is None or not retention_over(request.retain_until, now):
                return erased
            _erase(uow, request, now)
            uow.commit()
        erased += 1
    return erased


def _erase(uow: UnitOfWork, request: ErasureRequest, now: dt.datetime) -> None:
    session = uow.session
    artisan = artisans.locked(session, request.artisan_id)
    assert artisan is not None  # the request's foreign key
    alias = pseudonym(artisan.id)
    former_phone = artisan.phone
    artisan.full_name = ERASED_NAME
    artisan.cin = alias
    artisan.phone = alias
    artisan.date_of_birth = ERASED_DATE_OF_BIRTH
    artisan.artisan_card_number = None
    artisan.cooperative_ice = None
    artisan.warnings = []
    artisan.updated_at = now
    of_artisan = {"artisan_id": artisan.id}
    session.execute(sa.update(PhoneVerification).filter_by(**of_artisan).values(phone=alias))
    session.execute(
        sa.update(ArtisanSignIn).filter_by(**of_artisan).values(phone=alias, client_ip=None, device_id=None)
    )
    session.execute(sa.delete(SignInLockout).where(SignInLockout.phone == former_phone))
    session.execute(sa.delete(ArtisanRefreshToken).filter_by(**of_artisan))
    session.execute(sa.delete(ArtisanDevice).filter_by(**of_artisan))
    session.execute(
        sa.update(ScreeningResult).filter_by(**of_artisan).values(screened_name=ERASED_NAME, matches=[])
    )
    # Officers' notes and a case's details (screening matches, a claimed RIB) are about the person.
    session.execute(sa.update(KycReview).filter_by(**of_artisan).values(details={}, note=None))
    session.execute(sa.update(KycTierChange).filter_by(**of_artisan).values(note=None))
    session.execute(
        sa.update(BankAccount)
        .filter_by(**of_artisan)
        .values(rib=None, iban=None, holder_name=ERASED_NAME, updated_at=now)
    )
    session.execute(sa.update(Notification).filter_by(**of_artisan).values(text="", updated_at=now))
    shredded = shred_documents(session, artisan.id, now)
    _scrub_outbox(session, artisan.id)
    request.status = ERASURE_DONE
    request.erased_at = now
    audit(
        session,
        artisan.id,
        "personal_data.erased",
        SYSTEM_ACTOR,
        subject_id=request.id,
        note=f"{shredded} document(s) crypto-shredded",
    )
    uow.add_event(
        make_event(
            "onboarding.artisan.erased",
            subject=artisan.id,
            data={"artisan_id": artisan.id, "erasure_request_id": request.id, "erased_at": now.isoformat()},
        )
    )


# What the events onboarding keeps in its outbox (to publish, and to replay) said about the person,
# and what they say once the person is erased (still valid against the events' schemas).
_ERASED_EVENT_FIELDS: dict[str, dict[str, str]] = {
    "onboarding.bank_account.linked": {"rib": "0" * 24, "iban": "MA" + "0" * 26, "holder_name": ERASED_NAME},
    "onboarding.artisan.device_signed_in": {"device_id": "erased-device"},
}


def _scrub_outbox(session: Session, artisan_id: str) -> None:
    """Erase the person from the artisan's events still in the outbox: a replay must not send their
    RIB or device again. (The outbox is keyed by artisan but not indexed by it: a scan, once per
    erased artisan.)"""
    rows = session.scalars(
        sa.select(OutboxMessage).where(
            OutboxMessage.key == artisan_id, OutboxMessage.event_type.in_(list(_ERASED_EVENT_FIELDS))
        )
    )
    for row in rows:
        envelope = json.loads(row.payload)
        envelope["data"].update(_ERASED_EVENT_FIELDS[row.event_type])
        validate_event(envelope)
        row.payload = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def shred_documents(session: Session, artisan_id: str, now: dt.datetime) -> int:
    """Crypto-shred the artisan's KYC documents: each one's data key (kept only wrapped, beside its
    ciphertext) is destroyed, so nothing, not even the master keys, can decrypt the document again;
    the ciphertext, of no use without it, goes too. How many were shredded."""
    result = session.execute(
        sa.update(KycDocument)
        .where(KycDocument.artisan_id == artisan_id, KycDocument.shredded_at.is_(None))
        .values(wrapped_key=b"", nonce=b"", ciphertext=b"", sha256="", shredded_at=now)
    )
    return int(result.rowcount or 0)
