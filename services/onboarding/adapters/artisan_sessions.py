"""Revoking artisans' refresh tokens: one family (a session), one device's, or every one of an artisan.

Used by sign-in itself and by KYC (a rejection or a sanctions hit ends every session, in the same
transaction as the change). Access tokens already issued are not recalled: they expire within
their 15 minutes.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.orm import ArtisanRefreshToken
from shared.db import utcnow

LIVE = ("active", "rotated")


def _revoke(session: Session, condition: sa.ColumnElement[bool], reason: str, now: dt.datetime | None) -> int:
    result = session.execute(
        sa.update(ArtisanRefreshToken)
        .where(condition, ArtisanRefreshToken.status.in_(LIVE))
        .values(status="revoked", revoked_at=now or utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult


def revoke_family(session: Session, family_id: str, reason: str, now: dt.datetime | None = None) -> int:
    return _revoke(session, ArtisanRefreshToken.family_id == family_id, reason, now)


def revoke_device(
    session: Session, artisan_id: str, device_id: str, reason: str, now: dt.datetime | None = None
) -> int:
    condition = sa.and_(
        ArtisanRefreshToken.artisan_id == artisan_id, ArtisanRefreshToken.device_id == device_id
    )
    return _revoke(session, condition, reason, now)


def revoke_all_sessions(
    session: Session, artisan_id: str, reason: str, now: dt.datetime | None = None
) -> int:
    """End every session of the artisan (returns how many refresh tokens were still live)."""
    return _revoke(session, ArtisanRefreshToken.artisan_id == artisan_id, reason, now)
