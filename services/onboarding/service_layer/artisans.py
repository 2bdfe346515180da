"""Registering artisans and reading them, as a marketplace (own artisans) or back office (all)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import artisans
from services.onboarding.adapters.orm import Artisan, ArtisanMarketplace
from services.onboarding.domain.artisans import (
    IdentityRuleError,
    check_adult,
    normalise_cin,
    normalise_full_name,
    normalise_moroccan_mobile,
)
from services.onboarding.domain.kyc import IceRuleError, check_ice
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
    artisan_card_number: str | None = None
    cooperative_ice: str | None = None


@dataclasses.dataclass(frozen=True)
class Registration:
    artisan: Artisan
    created: bool
    # True when another marketplace had registered this person and this one is now linked too.
    linked: bool = False


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
    screen: Callable[[UnitOfWork, Artisan], None] | None = None,
) -> Registration:
    """Register an artisan, or recognise one already registered.

    ``screen`` runs the sanctions/PEP screening in the same transaction, so a new artisan is never
    saved without a screening result (when a list is loaded).
    """
    problems: list[dict] = []
    cin = phone = ice = full_name = None
    warnings: list[str] = []
    try:
        full_name = normalise_full_name(command.full_name)
    except IdentityRuleError as exc:
        problems.append({"param": exc.param, "code": exc.code, "message": str(exc)})
    try:
        cin = normalise_cin(command.cin, cin_pattern)
    except IdentityRuleError as exc:
        problems.append({"param": exc.param, "code": exc.code, "message": str(exc)})
    try:
        phone = normalise_moroccan_mobile(command.phone)
    except IdentityRuleError as exc:
        problems.append({"param": exc.param, "code": exc.code, "message": str(exc)})
    try:
        check_adult(command.date_of_birth, today or dt.date.today(), minimum_age)
    except IdentityRuleError as exc:
        problems.append({"param": exc.param, "code": exc.code, "message": str(exc)})
    if command.cooperative_ice is not None:
        try:
            ice, warnings = check_ice(command.cooperative_ice)
        except IceRuleError as exc:
            problems.append({"param": exc.param, "code": exc.code, "message": str(exc)})
    if problems:
        first = problems[0]
        raise ValidationFailed(
            first["message"] if len(problems) == 1 else "Some details break the registration rules.",
            param=first["param"] if len(problems) == 1 else None,
            code=first["code"] if len(problems) == 1 else "validation_error",
            errors=problems,
        )

    with uow:
        existing = artisans.sharing_identity(uow.session, cin=cin, phone=phone)
        if existing:
            return _existing_registration(
                uow, existing, command, cin=cin, phone=phone, marketplace_id=marketplace_id, tiers=tiers
            )
        artisan = Artisan(
            id=new_id("art"),
            full_name=full_name,
            cin=cin,
            phone=phone,
            date_of_birth=command.date_of_birth,
            region=command.region,
            craft=command.craft,
            preferred_language=command.preferred_language,
            artisan_card_number=(command.artisan_card_number or "").strip() or None,
            cooperative_ice=ice,
            warnings=warnings,
            kyc_tier=0,
            kyc_version=0,
            status="active",
            screening_status="pending",
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
        if screen is not None:
            screen(uow, artisan)
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            # A concurrent registration of the same CIN/phone won the race: answer as if we had
            # arrived second.
            uow.rollback()
            existing = artisans.sharing_identity(uow.session, cin=cin, phone=phone)
            if not existing:
                raise
            return _existing_registration(
                uow, existing, command, cin=cin, phone=phone, marketplace_id=marketplace_id, tiers=tiers
            )
        return Registration(artisan, created=True)


def _existing_registration(
    uow: UnitOfWork,
    existing: Sequence[Artisan],
    command: RegisterArtisan,
    *,
    cin: str,
    phone: str,
    marketplace_id: str,
    tiers: TierPolicy,
) -> Registration:
    """The same person (same CIN, phone and date of birth) is one artisan, linked to every
    marketplace that registers them; anything else sharing a CIN or phone is refused."""
    artisan = existing[0]
    same_person = (
        # A person restricted after an erasure request is processed no more: registering them again
        # is refused like any other reuse of their identity, and says nothing more.
        artisan.restricted_at is None
        and len(existing) == 1
        and artisan.cin == cin
        and artisan.phone == phone
        and artisan.date_of_birth == command.date_of_birth
    )
    if same_person:
        if uow.session.get(ArtisanMarketplace, (artisan.id, marketplace_id)) is not None:
            return Registration(artisan, created=False)
        uow.session.add(ArtisanMarketplace(artisan_id=artisan.id, marketplace_id=marketplace_id))
        uow.add_event(
            make_event(
                "onboarding.artisan.marketplace_linked",
                subject=artisan.id,
                data={
                    "artisan_id": artisan.id,
                    "marketplace_id": marketplace_id,
                    "kyc_tier": artisan.kyc_tier,
                    "tier_cap": tiers.cap(artisan.kyc_tier),
                    "linked_at": utcnow().isoformat(),
                },
            )
        )
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            uow.rollback()  # the same link made concurrently: it exists, which is all we wanted
        return Registration(artisan, created=False, linked=True)
    param = "cin" if any(a.cin == cin for a in existing) else "phone"
    raise DuplicateIdentity(
        f"This {param.upper() if param == 'cin' else param} is already registered to another artisan.",
        param=param,
    )


def find_visible_artisan(
    session: Session, artisan_id: str, principal: Principal, *, lock: bool = False
) -> Artisan:
    """The artisan, if ``principal`` may see it; another marketplace's artisan is "not found"."""
    artisan = artisans.find_visible(session, artisan_id, principal, lock=lock)
    if artisan is None:
        raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
    return artisan


def get_artisan(uow: UnitOfWork, artisan_id: str, principal: Principal) -> Artisan:
    with uow:
        return find_visible_artisan(uow.session, artisan_id, principal)


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
    query = artisans.visible_to(principal)
    if tier is not None:
        query = query.where(Artisan.kyc_tier == tier)
    if status:
        query = query.where(Artisan.status == status)
    if region:
        query = query.where(Artisan.region == region)
    with uow:
        return paginate(uow.session, query, Artisan.id, limit=limit, starting_after=starting_after)


@dataclasses.dataclass(frozen=True)
class KycFunnel:
    """How far the artisans one can see have come on the KYC ladder."""

    tiers: list[dict[str, int]]  # [{"tier": 0, "count": …}, …, {"tier": 3, …}]: active artisans
    rejected: int
    suspended: int


def kyc_funnel(uow: UnitOfWork, principal: Principal, tiers: TierPolicy) -> KycFunnel:
    """Active artisans per tier (every tier, zero included), and those rejected or suspended."""
    with uow:
        rows = artisans.count_by_tier_and_status(uow.session, principal)
    active = {tier: count for tier, status, count in rows if status == "active"}
    return KycFunnel(
        tiers=[{"tier": tier, "count": active.get(tier, 0)} for tier in range(len(tiers.caps_centimes))],
        rejected=sum(count for _, status, count in rows if status == "rejected"),
        suspended=sum(count for _, status, count in rows if status == "suspended"),
    )
