"""The KYC ladder in motion: tier changes (always recorded, audited and announced), automatic
promotions, the artisan's KYC view, the compliance review queue and its four-eyes decisions.

Every function here runs inside a caller's unit of work unless it opens its own; nothing commits
half a decision: the tier, its history row, the audit entry and the event go in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import artisans, kyc_reviews
from services.onboarding.adapters.artisan_sessions import revoke_all_sessions
from services.onboarding.adapters.orm import (
    Artisan,
    KycAuditEntry,
    KycDocument,
    KycReview,
    KycTierChange,
)
from services.onboarding.domain.kyc import (
    APPROVE_REASONS,
    DISQUALIFYING_REJECT_REASONS,
    REJECT_REASONS,
    KycFacts,
    automatic_tier,
    next_tier_requirements,
)
from services.onboarding.service_layer.artisans import TierPolicy, find_visible_artisan
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.logging import request_id_var
from shared.pagination import Page, paginate

SYSTEM_ACTOR = "system"
# A claim on a bank account another artisan holds (see service_layer/bank_accounts.py).
BANK_ACCOUNT_CLAIM = "bank_account_claim"


class ArtisanRejected(Conflict):
    code = "artisan_rejected"
    title = "This artisan's KYC was rejected"


class ReviewAlreadyDecided(Conflict):
    code = "review_already_decided"
    title = "This review has already been decided"


class FourEyesViolation(Forbidden):
    code = "four_eyes_violation"
    title = "The reviewer must not be the submitter"


def ensure_active(artisan: Artisan) -> None:
    if artisan.status == "rejected":
        raise ArtisanRejected(
            "This artisan's KYC was rejected by compliance; no further KYC steps are possible.",
            param="artisan_id",
        )


def audit(
    session: Session,
    artisan_id: str,
    action: str,
    actor: str,
    *,
    subject_id: str | None = None,
    reason_code: str | None = None,
    note: str | None = None,
) -> None:
    session.add(
        KycAuditEntry(
            id=new_id("aud"),
            artisan_id=artisan_id,
            action=action,
            actor=actor,
            subject_id=subject_id,
            reason_code=reason_code,
            note=note,
            request_id=request_id_var.get(),
            created_at=utcnow(),
        )
    )


def gather_facts(session: Session, artisan: Artisan) -> KycFacts:
    kinds = session.scalars(
        sa.select(KycDocument.kind).where(
            KycDocument.artisan_id == artisan.id, KycDocument.status == "active"
        )
    ).all()
    open_reviews = session.scalars(
        sa.select(KycReview.kind).where(KycReview.artisan_id == artisan.id, KycReview.status == "open")
    ).all()
    return KycFacts(
        tier=artisan.kyc_tier,
        status=artisan.status,
        phone_verified=artisan.phone_verified_at is not None,
        document_kinds=frozenset(kinds),
        screening_status=artisan.screening_status,
        open_review_kinds=frozenset(open_reviews),
    )


def change_tier(
    uow: UnitOfWork,
    artisan: Artisan,
    new_tier: int,
    *,
    reason_code: str,
    actor: str,
    tiers: TierPolicy,
    note: str | None = None,
) -> None:
    """Move an artisan to ``new_tier``: history row, audit entry and event, in the caller's tx."""
    previous = artisan.kyc_tier
    if new_tier == previous:
        return
    now = utcnow()
    artisan.kyc_tier = new_tier
    artisan.kyc_version += 1
    artisan.updated_at = now
    session = uow.session
    session.add(
        KycTierChange(
            id=new_id("ktc"),
            artisan_id=artisan.id,
            from_tier=previous,
            to_tier=new_tier,
            reason_code=reason_code,
            note=note,
            actor=actor,
            kyc_version=artisan.kyc_version,
            created_at=now,
        )
    )
    audit(session, artisan.id, "tier.changed", actor, reason_code=reason_code, note=note)
    uow.add_event(
        make_event(
            "onboarding.artisan.kyc_tier_changed",
            subject=artisan.id,
            data={
                "artisan_id": artisan.id,
                "previous_tier": previous,
                "kyc_tier": new_tier,
                "direction": "up" if new_tier > previous else "down",
                "tier_cap": tiers.cap(new_tier),
                "reason_code": reason_code,
                "actor": actor,
                "kyc_status": artisan.status,
                "kyc_version": artisan.kyc_version,
                "changed_at": now.isoformat(),
            },
        )
    )


_PROMOTION_REASONS = {1: "phone_verified", 2: "automated_checks_passed"}


def promote_if_earned(
    uow: UnitOfWork, artisan: Artisan, *, actor: str, tiers: TierPolicy, request_review: bool = False
) -> None:
    """Climb as far as the facts allow without a human, one recorded step at a time.

    Reaching tier 2 opens the tier-3 review case, submitted by whoever made the last move (so the
    four-eyes rule keeps them off it). ``request_review`` re-opens one for an artisan already at
    tier 2, e.g. after new documents follow a remediable rejection.
    """
    uow.session.flush()
    facts = gather_facts(uow.session, artisan)
    target = automatic_tier(facts)
    reached_two = False
    while artisan.kyc_tier < target:
        step = artisan.kyc_tier + 1
        change_tier(uow, artisan, step, reason_code=_PROMOTION_REASONS[step], actor=actor, tiers=tiers)
        reached_two = step == 2
    if (
        artisan.kyc_tier == 2
        and (reached_two or request_review)
        and "tier_upgrade" not in facts.open_review_kinds
    ):
        open_review(uow.session, artisan, kind="tier_upgrade", submitted_by=actor, requested_tier=3)


def open_review(
    session: Session,
    artisan: Artisan,
    *,
    kind: str,
    submitted_by: str,
    requested_tier: int | None = None,
    details: dict | None = None,
) -> KycReview:
    review = KycReview(
        id=new_id("rev"),
        artisan_id=artisan.id,
        kind=kind,
        requested_tier=requested_tier,
        status="open",
        submitted_by=submitted_by,
        details=details or {},
        created_at=utcnow(),
    )
    session.add(review)
    audit(session, artisan.id, "review.opened", submitted_by, subject_id=review.id)
    return review


def close_open_reviews(
    session: Session, artisan: Artisan, *, kind: str | None = None, keep: str | None = None
) -> None:
    """Close the artisan's cases still waiting (of one ``kind`` if given, all but ``keep``): what
    they asked has been decided another way."""
    for review in kyc_reviews.open_for(session, artisan.id, kind=kind):
        if review.id != keep:
            review.status = "closed"
            review.decided_at = utcnow()


# --- the artisan's KYC view --------------------------------------------------------------------


def kyc_view(uow: UnitOfWork, artisan_id: str, principal: Principal, tiers: TierPolicy) -> dict:
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal)
        facts = gather_facts(session, artisan)
        history = session.scalars(
            sa.select(KycTierChange)
            .where(KycTierChange.artisan_id == artisan.id)
            .order_by(KycTierChange.created_at, KycTierChange.id)
        ).all()
        next_tier = artisan.kyc_tier + 1 if artisan.kyc_tier < len(tiers.caps_centimes) - 1 else None
        return {
            "artisan_id": artisan.id,
            "object": "kyc",
            "status": artisan.status,
            "tier": artisan.kyc_tier,
            "limits": {"balance_cap": tiers.cap(artisan.kyc_tier)},
            "next_tier": next_tier if artisan.status != "rejected" else None,
            "next_tier_limits": (
                {"balance_cap": tiers.cap(next_tier)}
                if next_tier is not None and artisan.status != "rejected"
                else None
            ),
            "requirements": [dataclasses.asdict(r) for r in next_tier_requirements(facts)],
            "phone_verified_at": artisan.phone_verified_at,
            "screening_status": artisan.screening_status,
            "history": [
                {
                    "from_tier": change.from_tier,
                    "to_tier": change.to_tier,
                    "reason_code": change.reason_code,
                    "note": change.note,
                    "actor": change.actor,
                    "changed_at": change.created_at,
                }
                for change in history
            ],
        }


# --- the review queue --------------------------------------------------------------------------


def list_reviews(
    uow: UnitOfWork,
    *,
    limit: int,
    starting_after: str | None,
    status: str | None = "open",
    kind: str | None = None,
    artisan_id: str | None = None,
    region: str | None = None,
    min_age_days: int | None = None,
    now: dt.datetime | None = None,
) -> Page:
    """Oldest first: ids are time-sortable, so the cursor order is the queue order. Every filter is
    applied here, before the page is cut, so a later page never hides a match."""
    query = sa.select(KycReview)
    if status:
        query = query.where(KycReview.status == status)
    if kind:
        query = query.where(KycReview.kind == kind)
    if artisan_id:
        query = query.where(KycReview.artisan_id == artisan_id)
    if region:
        query = query.where(KycReview.artisan_id.in_(sa.select(Artisan.id).where(Artisan.region == region)))
    if min_age_days is not None:
        opened_before = (now or utcnow()) - dt.timedelta(days=min_age_days)
        query = query.where(KycReview.created_at <= opened_before)
    with uow:
        return paginate(uow.session, query, KycReview.id, limit=limit, starting_after=starting_after)


def get_review(uow: UnitOfWork, review_id: str) -> KycReview:
    with uow:
        review = uow.session.get(KycReview, review_id)
        if review is None:
            raise NotFound(f"No KYC review {review_id!r}.", param="review_id")
        return review


@dataclasses.dataclass(frozen=True)
class ReviewDecision:
    decision: str  # approve | reject
    reason_code: str
    note: str


def decide_review(
    uow: UnitOfWork, review_id: str, command: ReviewDecision, *, reviewer: str, tiers: TierPolicy
) -> KycReview:
    allowed = APPROVE_REASONS if command.decision == "approve" else REJECT_REASONS
    if command.reason_code not in allowed:
        raise ValidationFailed(
            f"For '{command.decision}', reason_code must be one of: {', '.join(allowed)}.",
            param="reason_code",
        )
    with uow:
        session = uow.session
        review = kyc_reviews.locked(session, review_id)
        if review is None:
            raise NotFound(f"No KYC review {review_id!r}.", param="review_id")
        if review.status != "open":
            raise ReviewAlreadyDecided(f"This review was already {review.status}.", param="review_id")
        if review.submitted_by == reviewer:
            raise FourEyesViolation(
                "You submitted this case, so another compliance officer must decide it (four-eyes).",
                param="review_id",
            )
        artisan = artisans.locked(session, review.artisan_id)
        now = utcnow()
        review.status = "approved" if command.decision == "approve" else "rejected"
        review.decision = command.decision
        review.decided_by = reviewer
        review.reason_code = command.reason_code
        review.note = command.note
        review.decided_at = now
        audit(
            session,
            artisan.id,
            f"review.{review.status}",
            reviewer,
            subject_id=review.id,
            reason_code=command.reason_code,
            note=command.note,
        )
        if command.decision == "approve":
            _apply_approval(uow, artisan, review, reviewer=reviewer, tiers=tiers)
        else:
            _apply_rejection(uow, artisan, review, reviewer=reviewer, tiers=tiers)
        uow.commit()
        return review


def _apply_approval(
    uow: UnitOfWork, artisan: Artisan, review: KycReview, *, reviewer: str, tiers: TierPolicy
) -> None:
    if artisan.status == "rejected":
        raise ArtisanRejected("This artisan's KYC was already rejected.", param="review_id")
    if review.kind == BANK_ACCOUNT_CLAIM:
        _settle_bank_account_claim(uow, review, approved=True, reviewer=reviewer)
        return
    if review.kind == "screening_hit":
        # A false positive: the officer clears the matched entries, which later rescreens of the
        # same entries will not raise again.
        artisan.screening_status = "clear"
        promote_if_earned(uow, artisan, actor=reviewer, tiers=tiers)
        return
    if artisan.kyc_tier != 2:
        raise Conflict(
            f"Tier 3 needs the artisan at tier 2; they are at tier {artisan.kyc_tier} now.",
            code="tier_prerequisite_unmet",
            param="review_id",
        )
    change_tier(
        uow, artisan, 3, reason_code="compliance_approved", actor=reviewer, tiers=tiers, note=review.note
    )


def _apply_rejection(
    uow: UnitOfWork, artisan: Artisan, review: KycReview, *, reviewer: str, tiers: TierPolicy
) -> None:
    if review.kind == BANK_ACCOUNT_CLAIM:
        _settle_bank_account_claim(uow, review, approved=False, reviewer=reviewer)
        if review.reason_code not in DISQUALIFYING_REJECT_REASONS:
            return  # only the claim is refused; the artisan's KYC stands
    if review.reason_code in DISQUALIFYING_REJECT_REASONS:
        artisan.status = "rejected"
        change_tier(
            uow, artisan, 0, reason_code=review.reason_code, actor=reviewer, tiers=tiers, note=review.note
        )
        # Close whatever else was waiting: nothing more will be decided for this artisan.
        close_open_reviews(uow.session, artisan, keep=review.id)
    # A rejection ends the artisan's sessions in the same transaction (they sign in again, if allowed).
    revoke_all_sessions(uow.session, artisan.id, "kyc_rejected")
    uow.add_event(
        make_event(
            "onboarding.artisan.kyc_rejected",
            subject=artisan.id,
            data={
                "artisan_id": artisan.id,
                "review_id": review.id,
                "review_kind": review.kind,
                "reason_code": review.reason_code,
                "kyc_tier": artisan.kyc_tier,
                "kyc_status": artisan.status,
                "kyc_version": artisan.kyc_version,
                "rejected_at": review.decided_at.isoformat(),
            },
        )
    )


def _settle_bank_account_claim(uow: UnitOfWork, review: KycReview, *, approved: bool, reviewer: str) -> None:
    # Imported here: the bank-account handlers build on this module (audit, review cases).
    from services.onboarding.service_layer.bank_accounts import settle_claim

    settle_claim(uow, review, approved=approved, reviewer=reviewer)


# --- downgrades and the audit log -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Downgrade:
    tier: int
    reason_code: str
    note: str
    document_ids: tuple[str, ...] = ()


def downgrade_tier(
    uow: UnitOfWork, artisan_id: str, command: Downgrade, *, officer: str, tiers: TierPolicy
) -> dict:
    """A compliance officer lowers a tier (a document found forged, a late screening hit…).

    Documents named in ``document_ids`` are marked rejected, so the requirement they met comes
    back. No four-eyes here: lowering risk must never wait for a second person.
    """
    with uow:
        session = uow.session
        artisan = artisans.locked(session, artisan_id)
        if artisan is None:
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        if command.tier >= artisan.kyc_tier:
            raise ValidationFailed(
                f"A downgrade must go below the current tier ({artisan.kyc_tier}).", param="tier"
            )
        for document_id in command.document_ids:
            document = session.get(KycDocument, document_id)
            if document is None or document.artisan_id != artisan.id:
                raise ValidationFailed(f"No document {document_id!r} for this artisan.", param="document_ids")
            document.status = "rejected"
            audit(
                session,
                artisan.id,
                "document.rejected",
                officer,
                subject_id=document.id,
                reason_code=command.reason_code,
            )
        close_open_reviews(session, artisan, kind="tier_upgrade")
        change_tier(
            uow,
            artisan,
            command.tier,
            reason_code=command.reason_code,
            actor=officer,
            tiers=tiers,
            note=command.note,
        )
        uow.commit()
        return {"artisan_id": artisan.id, "tier": artisan.kyc_tier, "kyc_version": artisan.kyc_version}


def audit_log(
    uow: UnitOfWork,
    artisan_id: str,
    *,
    limit: int,
    starting_after: str | None,
    since: dt.datetime | None = None,
) -> Page:
    with uow:
        if uow.session.get(Artisan, artisan_id) is None:
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        query = sa.select(KycAuditEntry).where(KycAuditEntry.artisan_id == artisan_id)
        if since is not None:
            query = query.where(KycAuditEntry.created_at >= since)
        return paginate(uow.session, query, KycAuditEntry.id, limit=limit, starting_after=starting_after)
