"""Artisans sign in with their phone: an OTP by SMS, then an access token and a refresh token.

- ``start_sign_in``: a 6-digit code by SMS (the phone-verification machinery: HMAC-kept, expiring,
  ``max_attempts`` guesses, ``max_sends_per_hour`` per number), rate limited per number and per IP.
  The answer is the same whether or not an active artisan holds the number: a number nobody holds
  gets a session whose code was never sent, and every answer takes at least ``min_response``.
- ``verify_sign_in``: the code and the app's ``device_id`` give a 15-minute access token (role
  artisan, ``sub`` the artisan, ``device_id`` claim, every service's audience) and an opaque
  refresh token bound to the device. Too many wrong codes for a number lock its sign-in a while.
- ``refresh_session`` rotates the refresh token; a rotated one presented again revokes its family
  (unless it is the same device retrying within ``retry_grace`` while the new token is still
  unused: an answer lost on a bad connection, not a stolen token).
- ``log_out`` ends a session; ``list_devices`` / ``revoke_device`` for the artisan or an operator.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import datetime as dt
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters import artisan_sessions as revocations
from services.onboarding.adapters.orm import (
    Artisan,
    ArtisanDevice,
    ArtisanRefreshToken,
    ArtisanSignIn,
    SignInLockout,
)
from services.onboarding.domain.artisan_sessions import (
    FailureCount,
    LockoutPolicy,
    hash_refresh_token,
    new_refresh_token,
)
from services.onboarding.domain.artisans import IdentityRuleError, normalise_moroccan_mobile
from services.onboarding.domain.ports import SmsDeliveryError, SmsSender
from services.onboarding.service_layer.api_clients import SERVICE_AUDIENCES
from services.onboarding.service_layer.phone import OTP_MESSAGE, OtpPolicy, _hash, _mask_phone, _retry_after
from shared.auth import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, HirfaError, NotFound, RateLimited, ValidationFailed
from shared.events import make_event
from shared.i18n import translate
from shared.ids import new_id

log = logging.getLogger(__name__)
_Row = TypeVar("_Row")

DEVICE_SCOPE = "devices:manage"


class InvalidRefreshToken(HirfaError):
    code = "invalid_refresh_token"
    status = 401
    title = "The refresh token is not valid"


@dataclasses.dataclass(frozen=True)
class SignInPolicy:
    otp: OtpPolicy
    issuer: TokenIssuer
    lockout: LockoutPolicy = LockoutPolicy()
    refresh_ttl: dt.timedelta = dt.timedelta(days=30)
    retry_grace: dt.timedelta = dt.timedelta(seconds=30)
    max_starts_per_ip_per_hour: int = 30
    min_response: dt.timedelta = dt.timedelta(milliseconds=300)


# -- the code by SMS -----------------------------------------------------------------------------------


# Sign-in codes go out beside the answers, from a few worker threads shared by every request (a
# slow provider queues codes here rather than starting a thread per request).
SMS_SENDERS = 4
_sms_senders = concurrent.futures.ThreadPoolExecutor(
    max_workers=SMS_SENDERS, thread_name_prefix="sign-in-sms"
)
_pending_sends: set[concurrent.futures.Future[None]] = set()
_pending_sends_lock = threading.Lock()


def wait_for_pending_sends(timeout: float | None = None) -> None:
    """Wait until the sign-in codes on their way have been handed to the provider (tests, shutdown)."""
    with _pending_sends_lock:
        pending = list(_pending_sends)
    concurrent.futures.wait(pending, timeout=timeout)


def _send_beside(job: Callable[[], None]) -> concurrent.futures.Future[None]:
    # The request's context (its request id, for the logs) goes with the job.
    future = _sms_senders.submit(contextvars.copy_context().run, job)
    with _pending_sends_lock:
        _pending_sends.add(future)
    future.add_done_callback(_forget_send)
    return future


def _forget_send(future: concurrent.futures.Future[None]) -> None:
    with _pending_sends_lock:
        _pending_sends.discard(future)


def start_sign_in(
    uow_factory: Callable[[], UnitOfWork],
    phone: str,
    *,
    client_ip: str | None,
    policy: SignInPolicy,
    sms: SmsSender,
) -> dict:
    started = time.monotonic()
    try:
        number = normalise_moroccan_mobile(phone)
    except IdentityRuleError as exc:
        raise ValidationFailed(str(exc), param="phone", code=exc.code) from None
    now = utcnow()
    code = f"{secrets.randbelow(10**6):06d}"
    with uow_factory() as uow:
        session = uow.session
        _refuse_if_locked(session, number, now)
        _limit_starts(session, number, client_ip, policy, now)
        artisan = session.scalar(
            # A restricted artisan (an erasure request) is no longer signed in, like an unknown number.
            sa.select(Artisan).where(
                Artisan.phone == number, Artisan.status == "active", Artisan.restricted_at.is_(None)
            )
        )
        # A new code replaces any earlier one still pending for this number.
        session.execute(
            sa.update(ArtisanSignIn)
            .where(ArtisanSignIn.phone == number, ArtisanSignIn.status == "pending")
            .values(status="superseded")
        )
        sign_in = ArtisanSignIn(
            id=new_id("asn"),
            phone=number,
            artisan_id=artisan.id if artisan is not None else None,
            client_ip=(client_ip or "")[:45] or None,
            code_hash="",
            status="pending",
            attempts=0,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=policy.otp.ttl_seconds),
        )
        sign_in.code_hash = _hash(policy.otp, sign_in.id, code)
        session.add(sign_in)
        uow.commit()
        language = artisan.preferred_language if artisan is not None else "fr"
    if artisan is not None:
        text = translate(language, OTP_MESSAGE, code=code, minutes=max(1, policy.otp.ttl_seconds // 60))
        # The code is sent beside the answer, not before it: the answer waits for the send only
        # until the minimum response time, so a slow or failing SMS provider never makes a
        # registered number's answer slower than an unknown one's.
        sign_in_id = sign_in.id
        sent = _send_beside(lambda: _send_sign_in_code(uow_factory, sms, number, text, sign_in_id))
        concurrent.futures.wait(
            [sent], timeout=max(policy.min_response.total_seconds() - (time.monotonic() - started), 0)
        )
    remaining = policy.min_response.total_seconds() - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    return {
        "object": "artisan_session",
        "id": sign_in.id,
        "status": "pending",
        "phone": _mask_phone(number),
        "expires_at": sign_in.expires_at,
        "max_attempts": policy.otp.max_attempts,
    }


def _send_sign_in_code(
    uow_factory: Callable[[], UnitOfWork], sms: SmsSender, number: str, text: str, sign_in_id: str
) -> None:
    """One code to the provider, on a sender thread: whatever goes wrong is logged here (nobody
    waits for this job's outcome)."""
    try:
        sms.send(number, text)
    except SmsDeliveryError:
        # Answered like any other start (a 503 here would tell who is registered); the artisan
        # asks again, and this code does not count against the number's hourly sends.
        log.warning("sign-in SMS delivery failed", extra={"sign_in_id": sign_in_id})
        try:
            with uow_factory() as uow:
                uow.session.execute(
                    sa.update(ArtisanSignIn)
                    .where(ArtisanSignIn.id == sign_in_id)
                    .values(status="send_failed")
                )
                uow.commit()
        except Exception:
            log.exception("could not record a failed sign-in SMS", extra={"sign_in_id": sign_in_id})
    except Exception:
        # Whether the provider got the code is unknown: the session stays pending (it counts).
        log.exception("sign-in SMS failed unexpectedly", extra={"sign_in_id": sign_in_id})


def _refuse_if_locked(session: Session, phone: str, now: dt.datetime) -> None:
    lockout = session.get(SignInLockout, phone)
    if lockout is not None and lockout.locked_until is not None and lockout.locked_until > now:
        raise RateLimited(
            "Too many wrong codes: sign-in is locked for this number for a while.",
            code="sign_in_locked",
            headers=_retry_after((lockout.locked_until - now).total_seconds()),
        )


def _limit_starts(
    session: Session, phone: str, client_ip: str | None, policy: SignInPolicy, now: dt.datetime
) -> None:
    hour_ago = now - dt.timedelta(hours=1)
    sent = session.scalars(
        sa.select(ArtisanSignIn.created_at)
        .where(
            ArtisanSignIn.phone == phone,
            ArtisanSignIn.created_at > hour_ago,
            ArtisanSignIn.status != "send_failed",
        )
        .order_by(ArtisanSignIn.created_at)
    ).all()
    limit = policy.otp.max_sends_per_hour
    if len(sent) >= limit:
        wait = (sent[len(sent) - limit] + dt.timedelta(hours=1) - now).total_seconds()
        raise RateLimited(
            f"At most {limit} codes per hour. Try again later.",
            code="otp_send_limit",
            headers=_retry_after(wait),
        )
    if client_ip:
        from_ip = session.scalar(
            sa.select(sa.func.count())
            .select_from(ArtisanSignIn)
            .where(ArtisanSignIn.client_ip == client_ip[:45], ArtisanSignIn.created_at > hour_ago)
        )
        if (from_ip or 0) >= policy.max_starts_per_ip_per_hour:
            raise RateLimited(
                "Too many sign-ins from this network. Try again later.",
                code="sign_in_ip_limit",
                headers=_retry_after(600),
            )


# -- the code typed in ----------------------------------------------------------------------------------


def verify_sign_in(
    uow: UnitOfWork, sign_in_id: str, code: str, device_id: str, *, policy: SignInPolicy
) -> dict:
    now = utcnow()
    with uow:
        session = uow.session
        sign_in = session.scalar(
            sa.select(ArtisanSignIn).where(ArtisanSignIn.id == sign_in_id).with_for_update()
        )
        if sign_in is None:
            raise NotFound(f"No sign-in {sign_in_id!r}.", param="id")
        _refuse_if_locked(session, sign_in.phone, now)
        # A code whose SMS failed is answered like any other (its status would tell who is registered).
        if sign_in.status not in ("pending", "send_failed"):
            raise Conflict(
                "This sign-in is over (used, replaced by a newer code, or never sent): start again.",
                code="sign_in_not_pending",
            )
        if sign_in.attempts >= policy.otp.max_attempts:
            raise RateLimited("Too many wrong codes. Request a new code.", code="otp_attempts_exceeded")
        if sign_in.expires_at <= now:
            raise ValidationFailed(
                "This code has expired. Request a new one.", code="otp_expired", param="code"
            )
        sign_in.attempts += 1
        matches = hmac.compare_digest(sign_in.code_hash, _hash(policy.otp, sign_in.id, code))
        artisan = session.get(Artisan, sign_in.artisan_id) if sign_in.artisan_id else None
        if not matches or artisan is None or artisan.status != "active" or artisan.restricted_at is not None:
            _count_failure(session, sign_in.phone, now, policy.lockout)
            uow.commit()  # the failed attempt counts even though we answer with an error
            raise ValidationFailed(
                "The code is not correct.",
                code="otp_incorrect",
                param="code",
                attempts_remaining=max(0, policy.otp.max_attempts - sign_in.attempts),
            )
        sign_in.status = "verified"
        sign_in.verified_at = now
        sign_in.device_id = device_id
        lockout = session.get(SignInLockout, sign_in.phone)
        if lockout is not None:
            session.delete(lockout)
        _record_device(uow, artisan.id, device_id, now)
        tokens = _issue_tokens(session, artisan.id, device_id, new_id("rtf"), policy, now)
        uow.commit()
        return _public(tokens)


def _count_failure(session: Session, phone: str, now: dt.datetime, policy: LockoutPolicy) -> None:
    row = session.get(SignInLockout, phone, with_for_update=True)
    if row is None:
        row, _ = _insert_or_read(
            session, SignInLockout(phone=phone, failed_codes=0, window_started_at=now), phone
        )
    count = FailureCount(row.failed_codes, row.window_started_at, row.locked_until).after_failure(now, policy)
    row.failed_codes, row.window_started_at, row.locked_until = (
        count.failed_codes,
        count.window_started_at,
        count.locked_until,
    )
    if count.is_locked(now):
        log.warning("sign-in locked after too many wrong codes", extra={"phone": _mask_phone(phone)})


def _record_device(uow: UnitOfWork, artisan_id: str, device_id: str, now: dt.datetime) -> None:
    """Remember the device; a device not seen before (or revoked since) is news for the artisan."""
    session = uow.session
    device = session.get(ArtisanDevice, (artisan_id, device_id), with_for_update=True)
    if device is None:
        device, inserted = _insert_or_read(
            session,
            ArtisanDevice(
                artisan_id=artisan_id, device_id=device_id, first_signed_in_at=now, last_signed_in_at=now
            ),
            (artisan_id, device_id),
        )
        if not inserted and device.revoked_at is None:
            device.last_signed_in_at = now
            return
    elif device.revoked_at is None:
        device.last_signed_in_at = now
        return
    device.last_signed_in_at = now
    device.revoked_at = None
    device.revoked_by = None
    uow.add_event(
        make_event(
            "onboarding.artisan.device_signed_in",
            subject=artisan_id,
            data={"artisan_id": artisan_id, "device_id": device_id, "signed_in_at": now.isoformat()},
        )
    )


def _insert_or_read(session: Session, row: _Row, key: object) -> tuple[_Row, bool]:
    """Insert a row whose key a FOR UPDATE read just found missing (which locks nothing): in a
    savepoint, so that when a concurrent request inserted the same key first, this transaction
    goes on with the row that request committed, locked. True when this one inserted it."""
    try:
        with session.begin_nested():
            session.add(row)
        return row, True
    except sa.exc.IntegrityError:
        existing = session.get(type(row), key, with_for_update=True, populate_existing=True)
        if existing is None:
            raise
        return existing, False


def _preferred_language(session: Session, artisan_id: str) -> str | None:
    artisan = session.get(Artisan, artisan_id)
    return None if artisan is None else artisan.preferred_language


def _issue_tokens(
    session: Session, artisan_id: str, device_id: str, family_id: str, policy: SignInPolicy, now: dt.datetime
) -> dict:
    refresh_token = new_refresh_token()
    row = ArtisanRefreshToken(
        id=new_id("rt"),
        family_id=family_id,
        artisan_id=artisan_id,
        device_id=device_id,
        token_hash=hash_refresh_token(refresh_token),
        status="active",
        created_at=now,
        expires_at=now + policy.refresh_ttl,
    )
    session.add(row)
    scopes = ROLE_SCOPES[Role.ARTISAN]
    access_token, expires_in = policy.issuer.issue(
        client_id=artisan_id,
        role=Role.ARTISAN,
        scopes=scopes,
        audiences=SERVICE_AUDIENCES,
        now=now,
        device_id=device_id,
        # The artisan's language travels with the token, so every service answers in it.
        lang=_preferred_language(session, artisan_id),
    )
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(scopes)),
        "refresh_token": refresh_token,
        "refresh_token_expires_in": int(policy.refresh_ttl.total_seconds()),
        "artisan_id": artisan_id,
        "device_id": device_id,
        "_refresh_token_id": row.id,
    }


def _public(tokens: dict) -> dict:
    return {name: value for name, value in tokens.items() if not name.startswith("_")}


# -- refreshing and ending sessions ---------------------------------------------------------------------


def refresh_session(uow: UnitOfWork, refresh_token: str, device_id: str, *, policy: SignInPolicy) -> dict:
    now = utcnow()
    with uow:
        session = uow.session
        row = session.scalar(
            sa.select(ArtisanRefreshToken)
            .where(ArtisanRefreshToken.token_hash == hash_refresh_token(refresh_token))
            .with_for_update()
        )
        if row is None:
            raise InvalidRefreshToken("Unknown refresh token: sign in again.")
        if row.device_id != device_id:
            # A token bound to another device: stolen, or copied. Either way the session ends.
            revocations.revoke_family(session, row.family_id, "device_mismatch", now)
            uow.commit()
            raise InvalidRefreshToken("This refresh token belongs to another device: sign in again.")
        if row.status == "rotated":
            successor = session.get(ArtisanRefreshToken, row.replaced_by, with_for_update=True)
            retried = (
                row.rotated_at is not None
                and now - row.rotated_at <= policy.retry_grace
                and successor is not None
                and successor.status == "active"
            )
            if not retried:
                revoked = revocations.revoke_family(session, row.family_id, "reuse_detected", now)
                uow.commit()
                log.warning(
                    "a rotated refresh token was used again: its family is revoked",
                    extra={"family_id": row.family_id, "revoked": revoked},
                )
                raise InvalidRefreshToken(
                    "This refresh token was already used: every session it belongs to is ended. Sign in again.",
                    code="refresh_token_reused",
                )
            # The same device asking again for an answer it lost: the unused successor gives way.
            assert successor is not None
            successor.status, successor.revoked_at, successor.revoked_reason = "revoked", now, "retried"
        elif row.status != "active":
            raise InvalidRefreshToken("This session was ended: sign in again.", code="refresh_token_revoked")
        if row.expires_at <= now:
            raise InvalidRefreshToken(
                "This refresh token has expired: sign in again.", code="refresh_token_expired"
            )
        artisan = session.get(Artisan, row.artisan_id)
        device = session.get(ArtisanDevice, (row.artisan_id, device_id))
        if (
            artisan is None
            or artisan.status != "active"
            or artisan.restricted_at is not None
            or device is None
            or device.revoked_at is not None
        ):
            revocations.revoke_family(session, row.family_id, "no_longer_allowed", now)
            uow.commit()
            raise InvalidRefreshToken("This session was ended: sign in again.", code="refresh_token_revoked")
        tokens = _issue_tokens(session, row.artisan_id, device_id, row.family_id, policy, now)
        row.status, row.rotated_at, row.replaced_by = "rotated", now, tokens["_refresh_token_id"]
        device.last_refreshed_at = now
        uow.commit()
        return _public(tokens)


def log_out(uow: UnitOfWork, refresh_token: str) -> None:
    """End the session this refresh token belongs to. An unknown or ended one: nothing to do."""
    with uow:
        session = uow.session
        row = session.scalar(
            sa.select(ArtisanRefreshToken).where(
                ArtisanRefreshToken.token_hash == hash_refresh_token(refresh_token)
            )
        )
        if row is not None:
            revocations.revoke_family(session, row.family_id, "logged_out")
            uow.commit()


# -- devices ---------------------------------------------------------------------------------------------


def _check_device_owner(session: Session, artisan_id: str, principal: Principal) -> None:
    """The artisan themself or an operator; another artisan's devices are "not found"."""
    if principal.is_artisan:
        if principal.client_id != artisan_id:
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
    elif not principal.has_scopes(DEVICE_SCOPE):
        raise Forbidden(f"This operation needs the scope: {DEVICE_SCOPE}.")
    if session.get(Artisan, artisan_id) is None:
        raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")


def list_devices(uow: UnitOfWork, artisan_id: str, principal: Principal) -> list[dict]:
    with uow:
        session = uow.session
        _check_device_owner(session, artisan_id, principal)
        devices = session.scalars(
            sa.select(ArtisanDevice)
            .where(ArtisanDevice.artisan_id == artisan_id)
            .order_by(ArtisanDevice.first_signed_in_at, ArtisanDevice.device_id)
        ).all()
        live = set(
            session.scalars(
                sa.select(ArtisanRefreshToken.device_id).where(
                    ArtisanRefreshToken.artisan_id == artisan_id,
                    ArtisanRefreshToken.status == "active",
                    ArtisanRefreshToken.expires_at > utcnow(),
                )
            ).all()
        )
        return [
            {
                "object": "artisan_device",
                "artisan_id": artisan_id,
                "device_id": device.device_id,
                "first_signed_in_at": device.first_signed_in_at,
                "last_signed_in_at": device.last_signed_in_at,
                "last_refreshed_at": device.last_refreshed_at,
                "signed_in": device.device_id in live and device.revoked_at is None,
                "revoked_at": device.revoked_at,
            }
            for device in devices
        ]


def revoke_device(uow: UnitOfWork, artisan_id: str, device_id: str, principal: Principal) -> None:
    """Sign the device out: its refresh tokens are revoked (a lost or stolen phone)."""
    now = utcnow()
    with uow:
        session = uow.session
        _check_device_owner(session, artisan_id, principal)
        device = session.get(ArtisanDevice, (artisan_id, device_id), with_for_update=True)
        if device is None:
            raise NotFound(f"No device {device_id!r} for this artisan.", param="device_id")
        if device.revoked_at is None:
            device.revoked_at = now
            device.revoked_by = principal.client_id
        revocations.revoke_device(session, artisan_id, device_id, "device_revoked", now)
        uow.commit()
