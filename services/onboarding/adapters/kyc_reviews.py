"""Loading compliance review cases: one locked for a decision, or an artisan's open ones."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.orm import KycReview


def locked(session: Session, review_id: str) -> KycReview | None:
    """The case, its row held until the transaction ends (one decision per case)."""
    return session.scalar(sa.select(KycReview).where(KycReview.id == review_id).with_for_update())


def open_for(session: Session, artisan_id: str, *, kind: str | None = None) -> Sequence[KycReview]:
    """The artisan's cases still waiting for a decision, of one ``kind`` if given."""
    query = sa.select(KycReview).where(KycReview.artisan_id == artisan_id, KycReview.status == "open")
    if kind is not None:
        query = query.where(KycReview.kind == kind)
    return session.scalars(query).all()
