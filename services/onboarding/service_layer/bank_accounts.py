"""Artisans' bank accounts: linking an existing account (exact RIB/IBAN checks, holder-name match)
or opening one at a partner bank (asynchronous, confirmed by a signed callback).

An opening is saved as ``pending`` before the bank is called, so a crash or a bank outage never
loses it: ``sync_openings`` (run by the worker) submits what was never accepted and polls what the
bank has not answered, so a lost callback cannot leave an opening pending forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import bank_accounts
from services.onboarding.adapters.orm import Artisan, BankAccount
from services.onboarding.domain.banking import (
    KNOWN_BANKS,
    BankAccountNumber,
    BankIdentifierError,
    parse_iban,
    parse_rib,
)
from services.onboarding.domain.names import name_similarity
from services.onboarding.domain.ports import AccountOpening, AccountOpeningRequest, BankPartners
from services.onboarding.service_layer.artisans import find_visible_artisan
from services.onboarding.service_layer.kyc import audit, ensure_active
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.partner_ports import InvalidCallback, PartnerError

log = logging.getLogger(__name__)

MINIMUM_TIER_TO_OPEN = 2
USABLE_STATUSES = ("linked", "opened")


@dataclasses.dataclass(frozen=True)
class BankAccountSettings:
    partners: BankPartners
    partner_banks: tuple[str, ...]
    holder_name_threshold: float
    callback_base_url: str


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
    number = _validated_number(command)
    holder_name = command.holder_name.strip()
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        ensure_active(artisan)
        score = round(name_similarity(holder_name, artisan.full_name), 1)
        if score < settings.holder_name_threshold:
            raise ValidationFailed(
                "The account holder's name does not match the artisan's name.",
                code="holder_name_mismatch",
                param="holder_name",
            )
        existing = session.scalar(sa.select(BankAccount).where(BankAccount.rib == number.rib))
        if existing is not None:
            if existing.artisan_id != artisan.id:
                raise Conflict(
                    "This account is already linked to another artisan.",
                    code="bank_account_in_use",
                    param="rib",
                )
            return Outcome(existing, created=False)
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
            is_default=False,
            created_by=principal.client_id,
            created_at=now,
            updated_at=now,
        )
        session.add(account)
        _make_usable(uow, account, make_default=command.make_default)
        audit(session, artisan.id, "bank_account.linked", principal.client_id, subject_id=account.id)
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            uow.rollback()  # the same RIB linked concurrently
            raise Conflict(
                "This account was just linked by another request.", code="bank_account_in_use", param="rib"
            ) from None
        return Outcome(account, created=True)


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
        uow.add_event(
            make_event(
                "onboarding.bank_account.default_changed",
                subject=artisan.id,
                data={
                    "artisan_id": artisan.id,
                    "bank_account_id": account.id,
                    "changed_at": utcnow().isoformat(),
                },
            )
        )
        uow.commit()
        return account
