"""Loading and locking artisans: the queries the service layer would otherwise repeat.

A marketplace sees only the artisans it registered, an artisan only themself; back-office clients
see every artisan, except those restricted after an erasure request, whom compliance alone sees.
Locked reads (``SELECT … FOR UPDATE``) serialise changes to one artisan's KYC and accounts.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.orm import Artisan, ArtisanMarketplace
from shared.auth import Principal

# Who sees an artisan whose data is restricted (an erasure request waiting for the end of the
# anti-money-laundering retention duty): compliance, besides the artisan themself.
SEES_RESTRICTED_SCOPE = "personal_data:manage"


def visible_to(principal: Principal) -> sa.Select[Artisan]:
    """The artisans ``principal`` may see, as a query to narrow further."""
    query = sa.select(Artisan)
    if principal.is_artisan:
        return query.where(Artisan.id == principal.client_id)
    if not principal.has_scopes(SEES_RESTRICTED_SCOPE):
        query = query.where(Artisan.restricted_at.is_(None))
    if principal.is_marketplace:
        query = query.join(ArtisanMarketplace).where(ArtisanMarketplace.marketplace_id == principal.client_id)
    return query


def find_visible(
    session: Session, artisan_id: str, principal: Principal, *, lock: bool = False
) -> Artisan | None:
    """The artisan if ``principal`` may see it; ``lock`` holds its row until the transaction ends."""
    query = visible_to(principal).where(Artisan.id == artisan_id)
    if lock:
        query = query.with_for_update(of=Artisan)
    return session.scalar(query)


def locked(session: Session, artisan_id: str) -> Artisan | None:
    """The artisan, its row held until the transaction ends."""
    return session.scalar(sa.select(Artisan).where(Artisan.id == artisan_id).with_for_update())


def sharing_identity(session: Session, *, cin: str | None, phone: str | None) -> Sequence[Artisan]:
    """Every artisan registered with this CIN or this phone number."""
    return session.scalars(sa.select(Artisan).where(sa.or_(Artisan.cin == cin, Artisan.phone == phone))).all()


def locked_active_after(session: Session, after: str, limit: int) -> Sequence[Artisan]:
    """The next ``limit`` active artisans by id after ``after`` (a restricted one is no longer
    processed), their rows held (a batch of a sweep)."""
    return session.scalars(
        sa.select(Artisan)
        .where(Artisan.status == "active", Artisan.restricted_at.is_(None), Artisan.id > after)
        .order_by(Artisan.id)
        .limit(limit)
        .with_for_update()
    ).all()


def count_by_tier_and_status(session: Session, principal: Principal) -> list[tuple[int, str, int]]:
    """``(kyc tier, status, how many)`` of the artisans ``principal`` may see."""
    visible = visible_to(principal).with_only_columns(Artisan.id).subquery()
    rows = session.execute(
        sa.select(Artisan.kyc_tier, Artisan.status, sa.func.count())
        .where(Artisan.id.in_(sa.select(visible.c.id)))
        .group_by(Artisan.kyc_tier, Artisan.status)
    )
    return [(int(tier), str(status), int(count)) for tier, status, count in rows]
