"""Registering artisans and reading them, as a marketplace (own artisans) or back office (all)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from services.onboarding.adapters.orm import Artisan, ArtisanMarketplace
from services.onboarding.domain.artisans import (
    IdentityRuleError,
    check_adult,
    normalise_cin,
    normalise_moroccan_mobile,
)
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.pagination import Page, paginate


class DuplicateIdentity(Conflict):
    code = "duplicate_identity"
    title = "Another artisan already holds this identity"


@dataclasses.dataclass(frozen=True)
class RegisterArtisan:
    full_name: str
    cin: str
    date_of_birth: dt.date
    phone: str
    region: str
    craft: str
    preferred_language: str = "fr"


@dataclasses.dataclass(frozen=True)
class Registration:
    artisan: Artisan
    created: bool


@dataclasses.dataclass(frozen=True)
class TierPolicy:
    caps_centimes: tuple[int, ...]
    currency: str = "MAD"

    def cap(self, tier: int) -> dict:
        return {"amount": self.caps_centimes[tier], "currency": self.currency}


def register_artisan(
    uow: UnitOfWork,
    command: RegisterArtisan,
    *,
    marketplace_id: str,
    cin_pattern: str,
    minimum_age: int,
    tiers: TierPolicy,
    today: dt.date | None = None,
) -> Registration:
    try:
        cin = normalise_cin(command.cin, cin_pattern)
        phone = normalise_moroccan_mobile(command.phone)
        check_adult(command.date_of_birth, today or dt.date.today(), minimum_age)
    except IdentityRuleError as exc:
        raise ValidationFailed(str(exc), param=exc.param, code=exc.code) from None

    with uow:
        existing = uow.session.scalars(
            sa.select(Artisan).where(sa.or_(Artisan.cin == cin, Artisan.phone == phone))
        ).all()
        if existing:
            return _existing_registration(uow, existing, cin=cin, marketplace_id=marketplace_id)
        artisan = Artisan(
            id=new_id("art"),
            full_name=command.full_name.strip(),
            cin=cin,
            phone=phone,
            date_of_birth=command.date_of_birth,
            region=command.region,
            craft=command.craft,
            preferred_language=command.preferred_language,
            kyc_tier=0,
            status="active",
            created_at=utcnow(),
        )
        uow.session.add(artisan)
        uow.session.add(ArtisanMarketplace(artisan_id=artisan.id, marketplace_id=marketplace_id))
        uow.add_event(
            make_event(
                "onboarding.artisan.registered",
                subject=artisan.id,
                data={
                    "artisan_id": artisan.id,
                    "marketplace_id": marketplace_id,
                    "kyc_tier": 0,
                    "tier_cap": tiers.cap(0),
                    "region": artisan.region,
                    "craft": artisan.craft,
                    "registered_at": artisan.created_at.isoformat(),
                },
            )
        )
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            # A concurrent registration of the same CIN/phone won the race: answer as if we had
            # arrived second.
            uow.rollback()
            existing = uow.session.scalars(
                sa.select(Artisan).where(sa.or_(Artisan.cin == cin, Artisan.phone == phone))
            ).all()
            if not existing:
                raise
            return _existing_registration(uow, existing, cin=cin, marketplace_id=marketplace_id)
        return Registration(artisan, created=True)


def _existing_registration(uow: UnitOfWork, existing: list[Artisan], *, cin: str, marketplace_id: str) -> Registration:
    artisan = existing[0]
    linked = uow.session.get(ArtisanMarketplace, (artisan.id, marketplace_id)) is not None
    if len(existing) == 1 and artisan.cin == cin and linked:
        return Registration(artisan, created=False)
    param = "cin" if any(a.cin == cin for a in existing) else "phone"
    raise DuplicateIdentity(
        f"This {param.upper() if param == 'cin' else param} is already registered to another artisan.",
        param=param,
    )


def _visible_artisans(principal: Principal) -> sa.Select:
    query = sa.select(Artisan)
    if principal.is_marketplace:
        query = query.join(ArtisanMarketplace).where(
            ArtisanMarketplace.marketplace_id == principal.client_id
        )
    return query


def get_artisan(uow: UnitOfWork, artisan_id: str, principal: Principal) -> Artisan:
    with uow:
        artisan = uow.session.scalar(_visible_artisans(principal).where(Artisan.id == artisan_id))
        if artisan is None:
            # Another marketplace's artisan is "not found", never "forbidden".
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        return artisan


def list_artisans(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    tier: int | None = None,
    status: str | None = None,
    region: str | None = None,
) -> Page:
    query = _visible_artisans(principal)
    if tier is not None:
        query = query.where(Artisan.kyc_tier == tier)
    if status:
        query = query.where(Artisan.status == status)
    if region:
        query = query.where(Artisan.region == region)
    with uow:
        return paginate(uow.session, query, Artisan.id, limit=limit, starting_after=starting_after)
