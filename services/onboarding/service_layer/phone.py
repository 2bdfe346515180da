"""Phone verification by one-time code (OTP).

The code is six random digits, sent by SMS in the artisan's language and kept only as an HMAC
(keyed, because a bare hash of a 6-digit code is reversed by trying a million values). It expires
after ``otp_ttl_seconds``; each code allows ``otp_max_attempts`` guesses, and an artisan gets at
most ``otp_max_sends_per_hour`` codes per rolling hour. Past either limit: 429 with Retry-After.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets

import sqlalchemy as sa

from services.onboarding.adapters.orm import PhoneVerification
from services.onboarding.domain.ports import SmsDeliveryError, SmsSender
from services.onboarding.service_layer.artisans import TierPolicy, find_visible_artisan
from services.onboarding.service_layer.kyc import audit, ensure_active, promote_if_earned
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, HirfaError, RateLimited, ValidationFailed
from shared.i18n import N_, translate
from shared.ids import new_id

log = logging.getLogger(__name__)

# The one-time code's SMS, in the artisan's language from the catalogue (shared/locales).
OTP_MESSAGE = N_(
    "Hirfa: your verification code is {code}. It expires in {minutes} minutes. Do not share it with anyone."
)


@dataclasses.dataclass(frozen=True)
class OtpPolicy:
    secret: bytes
    ttl_seconds: int = 300
    max_attempts: int = 5
    max_sends_per_hour: int = 3


class SmsUnavailable(HirfaError):
    code = "sms_unavailable"
    status = 503
    title = "The SMS could not be sent"
    retryable = True


def _hash(policy: OtpPolicy, verification_id: str, code: str) -> str:
    return hmac.new(policy.secret, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _seconds_until_next_send(session, artisan_id: str, policy: OtpPolicy, now: dt.datetime) -> float:
    """0 when a code may be sent now, else how long until the oldest send leaves the hour."""
    window_start = now - dt.timedelta(hours=1)
    recent = session.scalars(
        sa.select(PhoneVerification.created_at)
        .where(
            PhoneVerification.artisan_id == artisan_id,
            PhoneVerification.created_at > window_start,
            PhoneVerification.status != "send_failed",
        )
        .order_by(PhoneVerification.created_at)
    ).all()
    if len(recent) < policy.max_sends_per_hour:
        return 0.0
    oldest_counted = recent[len(recent) - policy.max_sends_per_hour]
    return (oldest_counted + dt.timedelta(hours=1) - now).total_seconds()


def send_code(
    uow: UnitOfWork, artisan_id: str, principal: Principal, *, policy: OtpPolicy, sms: SmsSender
) -> dict:
    now = utcnow()
    code = f"{secrets.randbelow(10**6):06d}"
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        ensure_active(artisan)
        if artisan.phone_verified_at is not None:
            raise Conflict("This phone number is already verified.", code="phone_already_verified")
        wait = _seconds_until_next_send(session, artisan.id, policy, now)
        if wait > 0:
            raise RateLimited(
                f"At most {policy.max_sends_per_hour} codes per hour. Try again later.",
                code="otp_send_limit",
                headers=_retry_after(wait),
            )
        # A new code replaces any earlier one still pending.
        session.execute(
            sa.update(PhoneVerification)
            .where(PhoneVerification.artisan_id == artisan.id, PhoneVerification.status == "pending")
            .values(status="superseded")
        )
        verification = PhoneVerification(
            id=new_id("otp"),
            artisan_id=artisan.id,
            phone=artisan.phone,
            code_hash="",
            status="pending",
            attempts=0,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=policy.ttl_seconds),
        )
        verification.code_hash = _hash(policy, verification.id, code)
        session.add(verification)
        uow.commit()
        text = translate(
            artisan.preferred_language, OTP_MESSAGE, code=code, minutes=max(1, policy.ttl_seconds // 60)
        )
        phone = artisan.phone
    try:
        sms.send(phone, text)
    except SmsDeliveryError:
        log.warning("SMS delivery failed", extra={"verification_id": verification.id})
        with uow:
            # A code the artisan never received must not count against their hourly sends.
            uow.session.execute(
                sa.update(PhoneVerification)
                .where(PhoneVerification.id == verification.id)
                .values(status="send_failed")
            )
            uow.commit()
        raise SmsUnavailable("The SMS could not be sent; try again shortly.") from None
    return {
        "object": "phone_verification",
        "id": verification.id,
        "artisan_id": artisan_id,
        "status": "pending",
        "phone": _mask_phone(phone),
        "expires_at": verification.expires_at,
        "max_attempts": policy.max_attempts,
    }


def confirm_code(
    uow: UnitOfWork, artisan_id: str, code: str, principal: Principal, *, policy: OtpPolicy, tiers: TierPolicy
) -> dict:
    now = utcnow()
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        ensure_active(artisan)
        if artisan.phone_verified_at is not None:
            raise Conflict("This phone number is already verified.", code="phone_already_verified")
        verification = session.scalar(
            sa.select(PhoneVerification)
            .where(PhoneVerification.artisan_id == artisan.id, PhoneVerification.status == "pending")
            .order_by(PhoneVerification.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if verification is None:
            raise Conflict("No code is waiting: request one first.", code="no_pending_verification")
        if verification.attempts >= policy.max_attempts:
            wait = _seconds_until_next_send(session, artisan.id, policy, now)
            raise RateLimited(
                "Too many wrong codes. Request a new code.",
                code="otp_attempts_exceeded",
                headers=_retry_after(wait),
            )
        if verification.expires_at <= now:
            raise ValidationFailed(
                "This code has expired. Request a new one.", code="otp_expired", param="code"
            )
        verification.attempts += 1
        if not hmac.compare_digest(verification.code_hash, _hash(policy, verification.id, code)):
            remaining = policy.max_attempts - verification.attempts
            uow.commit()  # the failed attempt must count even though we answer with an error
            raise ValidationFailed(
                "The code is not correct.", code="otp_incorrect", param="code", attempts_remaining=remaining
            )
        verification.status = "verified"
        verification.verified_at = now
        artisan.phone_verified_at = now
        actor = principal.client_id
        audit(session, artisan.id, "phone.verified", actor, subject_id=verification.id)
        promote_if_earned(uow, artisan, actor=actor, tiers=tiers)
        uow.commit()
        return {
            "object": "phone_verification",
            "id": verification.id,
            "artisan_id": artisan.id,
            "status": "verified",
            "verified_at": now,
            "kyc_tier": artisan.kyc_tier,
        }


def _mask_phone(phone: str) -> str:
    return phone[:6] + "•" * max(0, len(phone) - 8) + phone[-2:]
