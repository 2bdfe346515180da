"""Artisans' bank accounts: linking an existing account (tier 1, exact RIB/IBAN checks, holder-name
match, the bank's account-holder verification; a RIB another artisan holds becomes a claim for
compliance) or opening one at a partner bank (asynchronous, confirmed by a signed callback).

An opening is saved as ``pending`` before the bank is called, so a crash or a bank outage never
loses it: ``sync_openings`` (run by the worker) submits what was never accepted and polls what the
bank has not answered, so a lost callback cannot leave an opening pending forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import bank_accounts, kyc_reviews
from services.onboarding.adapters.orm import Artisan, BankAccount, KycReview
from services.onboarding.domain.names import name_similarity
from services.onboarding.domain.ports import (
    AccountOpening,
    AccountOpeningRequest,
    BankPartners,
    HolderMatch,
    HolderVerificationRequest,
)
from services.onboarding.service_layer.artisans import find_visible_artisan
from services.onboarding.service_layer.kyc import (
    BANK_ACCOUNT_CLAIM,
    SYSTEM_ACTOR,
    audit,
    ensure_active,
    open_review,
)
from shared.auth import Principal
from shared.banking import (
    KNOWN_BANKS,
    BankAccountNumber,
    BankIdentifierError,
    parse_iban,
    parse_rib,
)
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ServiceUnavailable, Unauthenticated, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.partner_ports import InvalidCallback, PartnerError

log = logging.getLogger(__name__)

MINIMUM_TIER_TO_LINK = 1
MINIMUM_TIER_TO_OPEN = 2
USABLE_STATUSES = ("linked", "opened")
CLAIM_REVIEW_KIND = BANK_ACCOUNT_CLAIM


class BankVerificationUnavailable(ServiceUnavailable):
    code = "bank_verification_unavailable"
    title = "The bank could not verify the account holder"
    retry_after_seconds = 5

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(self.retry_after_seconds)})
        super().__init__(detail, **kwargs)


@dataclasses.dataclass(frozen=True)
class BankAccountSettings:
    partners: BankPartners
    partner_banks: tuple[str, ...]
    holder_name_threshold: float
    callback_base_url: str

    @property
    def verifying_bank(self) -> str:
        """The partner bank asked to verify account holders (it asks the account's bank in turn)."""
        return self.partner_banks[0]


@dataclasses.dataclass(frozen=True)
class LinkAccount:
    holder_name: str
    rib: str | None = None
    iban: str | None = None
    make_default: bool = False


@dataclasses.dataclass(frozen=True)
class OpenAccount:
    bank: str
    make_default: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    account: BankAccount
    created: bool


def _validated_number(command: LinkAccount) -> BankAccountNumber:
    if bool(command.rib) == bool(command.iban):
        raise ValidationFailed(
            "Give either a RIB or an IBAN, not both.", param="rib" if command.rib else "iban"
        )
    try:
        number = parse_rib(command.rib) if command.rib else parse_iban(command.iban or "")
    except BankIdentifierError as exc:
        raise ValidationFailed(str(exc), code=exc.code, param=exc.param) from None
    return number


def link_account(
    uow: UnitOfWork,
    artisan_id: str,
    command: LinkAccount,
    principal: Principal,
    settings: BankAccountSettings,
) -> Outcome:
    """Link an existing account: tier 1 or more, the holder's name close to the artisan's, and the
    bank's own check of the holder (``match``, or ``unknown`` when it cannot tell). A RIB already
    linked by another artisan becomes a claim for compliance to decide, never a silent refusal."""
    number = _validated_number(command)
    holder_name = command.holder_name.strip()
    with uow:
        artisan = find_visible_artisan(uow.session, artisan_id, principal)
        _ensure_may_link(artisan)
        score = round(name_similarity(holder_name, artisan.full_name), 1)
        if score < settings.holder_name_threshold:
            raise ValidationFailed(
                "The account holder's name does not match the artisan's name.",
                code="holder_name_mismatch",
                param="holder_name",
            )
        existing = uow.session.scalar(sa.select(BankAccount).where(BankAccount.rib == number.rib))
        if existing is not None and existing.artisan_id == artisan.id:
            return Outcome(existing, created=False)
        cin = artisan.cin
    # Asked outside any transaction: no row stays locked while the bank answers.
    verification = _verify_holder(settings, number, holder_name, cin)
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        _ensure_may_link(artisan)  # again: the tier may have been lowered while the bank answered
        existing = session.scalar(sa.select(BankAccount).where(BankAccount.rib == number.rib))
        if existing is not None:
            if existing.artisan_id == artisan.id:
                return Outcome(existing, created=False)
            claim = Claim(holder_name, score, verification, command.make_default)
            return _claim(uow, artisan, existing, claim, principal)
        now = utcnow()
        account = BankAccount(
            id=new_id("ba"),
            artisan_id=artisan.id,
            mode="link",
            status="linked",
            bank_code=number.bank_code,
            rib=number.rib,
            iban=number.iban,
            holder_name=holder_name,
            holder_name_score=score,
            holder_verification=verification,
            is_default=False,
            created_by=principal.client_id,
            created_at=now,
            updated_at=now,
        )
        session.add(account)
        _make_usable(uow, account, make_default=command.make_default)
        audit(
            session,
            artisan.id,
            "bank_account.linked",
            principal.client_id,
            subject_id=account.id,
            reason_code=f"holder_{verification}",
        )
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            uow.rollback()  # the same RIB linked concurrently: the client retries and gets a claim
            raise Conflict(
                "This account was just linked by another request; try again.",
                code="bank_account_in_use",
                param="rib",
            ) from None
        return Outcome(account, created=True)


def _ensure_may_link(artisan: Artisan) -> None:
    ensure_active(artisan)
    if artisan.kyc_tier < MINIMUM_TIER_TO_LINK:
        raise Conflict(
            f"Linking a bank account needs KYC tier {MINIMUM_TIER_TO_LINK}; the artisan is at tier "
            f"{artisan.kyc_tier}.",
            code="kyc_tier_too_low",
            param="mode",
        )


@dataclasses.dataclass(frozen=True)
class Claim:
    """What the claimant asked, kept on the review case until compliance decides."""

    holder_name: str
    holder_name_score: float
    holder_verification: HolderMatch
    make_default: bool


def _verify_holder(
    settings: BankAccountSettings, number: BankAccountNumber, holder_name: str, cin: str
) -> HolderMatch:
    """Ask the bank whether the holder is who the artisan says; refuse a mismatch."""
    request = HolderVerificationRequest(rib=number.rib, holder_name=holder_name, cin=cin)
    try:
        result = settings.partners.get(settings.verifying_bank).verify_account_holder(request)
    except PartnerError as exc:
        log.warning("account holder not verified: bank unreachable", extra={"error": str(exc)})
        raise BankVerificationUnavailable(
            "The bank could not confirm the account holder right now; nothing was linked. Retry in a moment.",
        ) from None
    if result == "mismatch":
        raise ValidationFailed(
            "The bank says this account is not held by this person.",
            code="account_holder_mismatch",
            param="holder_name",
        )
    return result


def _claim(
    uow: UnitOfWork,
    artisan: Artisan,
    account: BankAccount,
    claim: Claim,
    principal: Principal,
) -> Outcome:
    """Another artisan holds this RIB: record the claimant's claim as a compliance case (one open
    case per claimant and account) and answer with the account as it would become theirs."""
    already = next(
        (
            review
            for review in kyc_reviews.open_for(uow.session, artisan.id, kind=CLAIM_REVIEW_KIND)
            if review.details.get("bank_account_id") == account.id
        ),
        None,
    )
    review = already or open_review(
        uow.session,
        artisan,
        kind=CLAIM_REVIEW_KIND,
        submitted_by=principal.client_id,
        details={
            "bank_account_id": account.id,
            "rib": account.rib,
            "bank_code": account.bank_code,
            **dataclasses.asdict(claim),
            "current_artisan_id": account.artisan_id,
        },
    )
    if already is None:
        audit(
            uow.session,
            account.artisan_id,
            "bank_account.claimed",
            principal.client_id,
            subject_id=account.id,
            note=review.id,
        )
        uow.commit()
    return Outcome(_claim_view(account, artisan.id, review), created=already is None)


def _claim_view(account: BankAccount, claimant_id: str, review: KycReview) -> BankAccount:
    """The claimed account as the claimant sees it until the decision (never saved)."""
    view = BankAccount(
        id=account.id,
        artisan_id=claimant_id,
        mode="link",
        status="pending_review",
        bank_code=account.bank_code,
        rib=account.rib,
        iban=account.iban,
        holder_name=review.details["holder_name"],
        is_default=False,
        created_at=review.created_at,
        updated_at=review.created_at,
    )
    view.review_id = review.id  # type: ignore[attr-defined]
    return view


def settle_claim(uow: UnitOfWork, review: KycReview, *, approved: bool, reviewer: str) -> None:
    """Apply compliance's decision on a claim, in the caller's transaction.

    Approved: the account (same id, so payments' and accounts' copies follow it) moves to the
    claimant and is announced as linked to them; the previous holder's link ends, and if it was
    their default, their oldest other usable account becomes the default (announced). Rejected:
    the claim is refused and nothing changes.
    """
    session = uow.session
    details = review.details
    if not approved:
        audit(session, review.artisan_id, "bank_account.claim_refused", reviewer, subject_id=review.id)
        return
    account = bank_accounts.locked(session, details["bank_account_id"])
    if (
        account is None
        or account.rib != details["rib"]
        or account.artisan_id != details["current_artisan_id"]
    ):
        raise Conflict(
            "The claimed account has changed hands since this claim was made: reject it, and the "
            "claimant may link the account again.",
            code="bank_account_claim_stale",
            param="review_id",
        )
    previous_holder = account.artisan_id
    was_default = account.is_default
    now = utcnow()
    account.artisan_id = review.artisan_id
    account.mode = "link"
    account.status = "linked"
    account.holder_name = details["holder_name"]
    account.holder_name_score = details["holder_name_score"]
    account.holder_verification = details.get("holder_verification", "match")
    account.is_default = False
    account.default_requested = False
    account.updated_at = now
    session.flush()
    _make_usable(uow, account, make_default=bool(details.get("make_default")))
    audit(session, review.artisan_id, "bank_account.linked", reviewer, subject_id=account.id, note=review.id)
    audit(
        session,
        previous_holder,
        "bank_account.closed",
        reviewer,
        subject_id=account.id,
        reason_code="claimed_by_holder",
        note=review.id,
    )
    if was_default:
        _pass_default_on(uow, previous_holder)


def _pass_default_on(uow: UnitOfWork, artisan_id: str) -> None:
    """The artisan lost their default account: their oldest other usable one takes over."""
    successor = uow.session.scalar(
        sa.select(BankAccount)
        .where(BankAccount.artisan_id == artisan_id, BankAccount.status.in_(USABLE_STATUSES))
        .order_by(BankAccount.id)
        .limit(1)
    )
    if successor is None:
        return
    successor.is_default = True
    audit(uow.session, artisan_id, "bank_account.default_changed", SYSTEM_ACTOR, subject_id=successor.id)
    _announce_default(uow, successor)


def _make_usable(uow: UnitOfWork, account: BankAccount, *, make_default: bool) -> None:
    """Mark the account default when asked or when it is the first usable one, and announce it."""
    session: Session = uow.session
    has_default = session.scalar(
        sa.select(sa.func.count())
        .select_from(BankAccount)
        .where(
            BankAccount.artisan_id == account.artisan_id,
            BankAccount.is_default.is_(True),
            BankAccount.id != account.id,
        )
    )
    if make_default or not has_default:
        session.execute(
            sa.update(BankAccount)
            .where(BankAccount.artisan_id == account.artisan_id, BankAccount.id != account.id)
            .values(is_default=False)
        )
        account.is_default = True
    bank = KNOWN_BANKS[account.bank_code]
    uow.add_event(
        make_event(
            "onboarding.bank_account.linked",
            subject=account.artisan_id,
            data={
                "artisan_id": account.artisan_id,
                "bank_account_id": account.id,
                "mode": account.mode,
                "rib": account.rib,
                "iban": account.iban,
                "bank_code": account.bank_code,
                "bank_name": bank.name,
                "holder_name": account.holder_name,
                "is_default": account.is_default,
                "linked_at": utcnow().isoformat(),
            },
        )
    )


def open_account(
    uow: UnitOfWork,
    artisan_id: str,
    command: OpenAccount,
    principal: Principal,
    settings: BankAccountSettings,
) -> Outcome:
    if command.bank not in settings.partner_banks or command.bank not in settings.partners:
        raise ValidationFailed(
            f"Accounts can be opened at: {', '.join(settings.partner_banks)}.",
            code="unknown_partner_bank",
            param="bank",
        )
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        ensure_active(artisan)
        if artisan.kyc_tier < MINIMUM_TIER_TO_OPEN:
            raise Conflict(
                f"Opening a bank account needs KYC tier {MINIMUM_TIER_TO_OPEN}; the artisan is at tier "
                f"{artisan.kyc_tier}.",
                code="kyc_tier_too_low",
                param="mode",
            )
        already = session.scalar(
            sa.select(BankAccount).where(
                BankAccount.artisan_id == artisan.id,
                BankAccount.mode == "open",
                BankAccount.partner_bank == command.bank,
                BankAccount.status.in_(("pending", "opened")),
            )
        )
        if already is not None:
            return Outcome(already, created=False)
        now = utcnow()
        account = BankAccount(
            id=new_id("ba"),
            artisan_id=artisan.id,
            mode="open",
            status="pending",
            partner_bank=command.bank,
            holder_name=artisan.full_name,
            # Only a usable account can be the default: the wish is applied when the bank opens it.
            is_default=False,
            default_requested=command.make_default,
            created_by=principal.client_id,
            created_at=now,
            updated_at=now,
        )
        session.add(account)
        audit(
            session, artisan.id, "bank_account.opening_requested", principal.client_id, subject_id=account.id
        )
        uow.commit()
    _submit(uow, account.id, settings)
    with uow:
        return Outcome(uow.session.get(BankAccount, account.id), created=True)


def _submit(uow: UnitOfWork, account_id: str, settings: BankAccountSettings) -> None:
    """Hand one pending opening to its bank; on a failure it stays unsubmitted for the worker."""
    with uow:
        account = uow.session.get(BankAccount, account_id)
        artisan = uow.session.get(Artisan, account.artisan_id)
        request = AccountOpeningRequest(
            reference=account.id,
            bank=account.partner_bank,
            holder_name=account.holder_name,
            cin=artisan.cin,
            phone=artisan.phone,
            callback_url=f"{settings.callback_base_url.rstrip('/')}/v1/banks/{account.partner_bank}/callbacks",
        )
    try:
        ack = settings.partners.get(request.bank).request_account_opening(request)
    except PartnerError as exc:
        log.warning(
            "account opening not submitted; will retry",
            extra={"bank_account_id": account_id, "error": str(exc)},
        )
        return
    with uow:
        account = bank_accounts.locked(uow.session, account_id)
        account.partner_reference = ack.partner_reference
        account.submitted_at = account.submitted_at or utcnow()
        if ack.status in ("opened", "refused"):
            _settle_opening(uow, account, ack)
        uow.commit()


def _settle_opening(uow: UnitOfWork, account: BankAccount, opening: AccountOpening) -> bool:
    """Apply the bank's answer once. Returns False when there was nothing to change."""
    if account.status != "pending" or opening.status not in ("opened", "refused"):
        return False
    now = utcnow()
    if opening.status == "refused":
        account.status = "refused"
        account.refusal_reason = (opening.refusal_reason or "unspecified")[:80]
        account.updated_at = now
        audit(
            uow.session,
            account.artisan_id,
            "bank_account.refused",
            "bank:" + account.partner_bank,
            subject_id=account.id,
            reason_code=account.refusal_reason,
        )
        return True
    try:
        number = parse_rib(opening.rib or "")
    except BankIdentifierError:
        # A bank must never hand us an invalid RIB; refuse to make it usable for payouts.
        log.error("bank returned an invalid RIB", extra={"bank_account_id": account.id})
        return False
    holder = uow.session.scalar(
        sa.select(BankAccount.id).where(BankAccount.rib == number.rib, BankAccount.id != account.id)
    )
    if holder is not None:
        # One account, one owner: a RIB already linked elsewhere must not become a second payout
        # destination. The bank has made a mistake; refuse it visibly rather than fail the callback.
        log.error("bank opened an account under a RIB already linked", extra={"bank_account_id": account.id})
        opening = dataclasses.replace(opening, status="refused", refusal_reason="rib_already_linked")
        return _settle_opening(uow, account, opening)
    account.status = "opened"
    account.rib = number.rib
    account.iban = number.iban
    account.bank_code = number.bank_code
    account.updated_at = now
    audit(
        uow.session,
        account.artisan_id,
        "bank_account.opened",
        "bank:" + account.partner_bank,
        subject_id=account.id,
    )
    _make_usable(uow, account, make_default=account.default_requested)
    return True


def handle_callback(
    uow: UnitOfWork, bank: str, headers, raw_body: bytes, settings: BankAccountSettings
) -> dict:
    """Verify and apply a bank callback. Idempotent: a duplicate or late callback changes nothing."""
    if bank not in settings.partners:
        raise NotFound(f"No partner bank {bank!r}.", param="bank")
    try:
        callback = settings.partners.get(bank).parse_callback(headers, raw_body)
    except InvalidCallback as exc:
        log.warning("bank callback refused", extra={"bank": bank, "reason": exc.reason})
        raise Unauthenticated(
            "The callback signature is missing, invalid or outside the replay window.",
            code="invalid_signature",
        ) from None
    with uow:
        account = bank_accounts.locked(uow.session, callback.opening.reference)
        if (
            account is None
            or account.partner_bank != bank
            or account.partner_reference not in (None, callback.opening.partner_reference)
        ):
            raise NotFound("No account opening with this reference.", param="reference")
        if account.partner_reference is None:
            account.partner_reference = callback.opening.partner_reference
            account.submitted_at = account.submitted_at or utcnow()
        changed = _settle_opening(uow, account, callback.opening)
        uow.commit()
        return {"received": True, "applied": changed, "status": account.status}


def sync_openings(
    uow_factory, settings: BankAccountSettings, *, poll_after: dt.timedelta, limit: int = 50
) -> dict:
    """Submit openings the bank never accepted, and poll those it has not answered in time."""
    now = utcnow()
    with uow_factory() as uow:
        unsubmitted = bank_accounts.openings_never_submitted(uow.session, limit)
        overdue = bank_accounts.openings_unanswered_since(uow.session, now - poll_after, limit)
    for account_id in unsubmitted:
        _submit(uow_factory(), account_id, settings)
    settled = 0
    for account_id, bank, partner_reference in overdue:
        try:
            opening = settings.partners.get(bank).account_opening(partner_reference)
        except PartnerError as exc:
            log.warning(
                "could not poll account opening", extra={"bank_account_id": account_id, "error": str(exc)}
            )
            continue
        with uow_factory() as uow:
            account = bank_accounts.locked(uow.session, account_id)
            if _settle_opening(uow, account, opening):
                settled += 1
            uow.commit()
    return {"submitted": len(unsubmitted), "polled": len(overdue), "settled": settled}


def list_accounts(uow: UnitOfWork, artisan_id: str, principal: Principal) -> list[BankAccount]:
    with uow:
        artisan = find_visible_artisan(uow.session, artisan_id, principal)
        return list(
            uow.session.scalars(
                sa.select(BankAccount).where(BankAccount.artisan_id == artisan.id).order_by(BankAccount.id)
            )
        )


def get_account(uow: UnitOfWork, artisan_id: str, account_id: str, principal: Principal) -> BankAccount:
    with uow:
        artisan = find_visible_artisan(uow.session, artisan_id, principal)
        account = uow.session.get(BankAccount, account_id)
        if account is None or account.artisan_id != artisan.id:
            raise NotFound(f"No bank account {account_id!r}.", param="bank_account_id")
        return account


def make_default(uow: UnitOfWork, artisan_id: str, account_id: str, principal: Principal) -> BankAccount:
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        account = session.get(BankAccount, account_id)
        if account is None or account.artisan_id != artisan.id:
            raise NotFound(f"No bank account {account_id!r}.", param="bank_account_id")
        if account.status not in USABLE_STATUSES:
            raise Conflict(
                "Only a linked or opened account can receive payouts.", code="bank_account_not_usable"
            )
        if account.is_default:
            return account
        session.execute(
            sa.update(BankAccount).where(BankAccount.artisan_id == artisan.id).values(is_default=False)
        )
        account.is_default = True
        audit(session, artisan.id, "bank_account.default_changed", principal.client_id, subject_id=account.id)
        _announce_default(uow, account)
        uow.commit()
        return account


def _announce_default(uow: UnitOfWork, account: BankAccount) -> None:
    uow.add_event(
        make_event(
            "onboarding.bank_account.default_changed",
            subject=account.artisan_id,
            data={
                "artisan_id": account.artisan_id,
                "bank_account_id": account.id,
                "changed_at": utcnow().isoformat(),
            },
        )
    )
