"""Staff sign in with email, password and a TOTP code, and get a staff access token.

- ``create_staff`` (the CLI, for the first admin and everyone after): the person with an argon2id
  password hash and a one-time enrolment token, shown once.
- ``start_enrolment`` / ``confirm_enrolment``: the enrolment token gives a fresh TOTP secret (for
  the QR code); a code from the authenticator confirms it, and the person is enrolled.
- ``sign_in``: email, password and code give a 15-minute access token with role ``staff``, ``sub``
  the person (``stf_…``), a ``name`` claim, every service's audience and the scopes of the roles
  they hold, and an opaque refresh token for the staff session. Every wrong credential gets one
  answer (401 ``invalid_credentials``); too many lock the account a while (429
  ``sign_in_locked``); a correct password without an enrolled second factor answers 403
  ``totp_enrolment_required`` with a new enrolment token.
- ``refresh_session``: the refresh token gives a new access token (the person's current name and
  roles) and a new refresh token; the one used is spent. It lapses unused after
  ``StaffPolicy.refresh_idle`` and, used or not, ``session_max`` after the sign-in: the console's
  inactivity timeout ends a session before the first, the second ends every working day. A spent
  token presented again within ``retry_grace`` (two requests of one console session renewing at
  once) gets a pair of its own; later, it is a stolen copy and the whole session is revoked.
  ``end_session`` (signing out), ``disable_staff`` and ``reset_second_factor`` revoke sessions.
- ``staff_card``: another staff member's id and name, for audit trails that show people.

Sign-ins are logged (who, from where, the outcome), never with a password, code, secret or token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.orm import StaffMember, StaffRefreshToken
from services.onboarding.domain.artisan_sessions import FailureCount, LockoutPolicy
from services.onboarding.domain.staff import (
    PASSWORDS,
    STAFF_ID_PREFIX,
    StaffRuleError,
    accepted_totp_step,
    hash_enrolment_token,
    hash_password,
    hash_staff_refresh_token,
    mask_email,
    new_enrolment_token,
    new_staff_refresh_token,
    new_totp_secret,
    normalise_email,
    otpauth_uri,
    password_needs_rehash,
    spend_password_check,
    staff_roles,
    totp_binding,
    verify_password,
)
from services.onboarding.service_layer.api_clients import SERVICE_AUDIENCES
from services.onboarding.service_layer.artisan_sessions import InvalidRefreshToken
from shared.auth import Principal
from shared.auth.scopes import Role, staff_scopes
from shared.auth.tokens import TokenIssuer
from shared.crypto import EnvelopeCipher, SealedBlob
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, Forbidden, HirfaError, NotFound, RateLimited, ValidationFailed
from shared.ids import new_id

log = logging.getLogger(__name__)


class InvalidCredentials(HirfaError):
    code = "invalid_credentials"
    status = 401
    title = "Wrong email, password or code"


class TotpEnrolmentRequired(Forbidden):
    code = "totp_enrolment_required"
    title = "Enrol a second factor before signing in"


class InvalidEnrolmentToken(HirfaError):
    code = "invalid_enrolment_token"
    status = 401
    title = "The enrolment token is not valid"


@dataclasses.dataclass(frozen=True)
class StaffPolicy:
    issuer: TokenIssuer
    cipher: EnvelopeCipher
    lockout: LockoutPolicy = LockoutPolicy(
        max_failed_codes=5, window=dt.timedelta(minutes=15), lockout=dt.timedelta(minutes=15)
    )
    enrolment_ttl: dt.timedelta = dt.timedelta(hours=72)
    # A refresh token unused this long lapses (longer than an access token plus the console's
    # inactivity timeout, which ends an idle session first).
    refresh_idle: dt.timedelta = dt.timedelta(hours=1)
    # A staff session ends this long after its sign-in, however busy: sign in again each day.
    session_max: dt.timedelta = dt.timedelta(hours=12)
    # A spent refresh token presented again this soon is a second request of the same session.
    retry_grace: dt.timedelta = dt.timedelta(seconds=30)


def profile(member: StaffMember) -> dict:
    return {
        "object": "staff_member",
        "id": member.id,
        "name": member.name,
        "email": member.email,
        "roles": list(member.roles),
    }


def _rule_broken(error: StaffRuleError, param: str) -> ValidationFailed:
    return ValidationFailed(str(error), param=param, code=error.code)


# -- creating staff (the CLI) ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NewStaff:
    staff: dict
    # Shown once: the person opens the console with it to enrol their authenticator.
    enrolment_token: str = dataclasses.field(repr=False)


def create_staff(
    uow: UnitOfWork, *, email: str, name: str, roles: list[str], password: str, policy: StaffPolicy
) -> NewStaff:
    try:
        address = normalise_email(email)
        held = staff_roles(roles)
        password_hash = hash_password(password)
    except StaffRuleError as error:
        raise _rule_broken(error, "email" if error.code == "invalid_email" else "password") from None
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("A staff member has a name (at most 200 characters).", param="name")
    token = new_enrolment_token()
    now = utcnow()
    taken = Conflict(f"A staff member already has the email {address}.", code="staff_email_taken")
    with uow:
        if uow.session.scalar(sa.select(StaffMember.id).where(StaffMember.email == address)):
            raise taken
        member = StaffMember(
            id=new_id(STAFF_ID_PREFIX),
            name=name,
            email=address,
            roles=[str(role) for role in held],
            password_hash=password_hash,
            enrolment_token_hash=hash_enrolment_token(token),
            enrolment_expires_at=now + policy.enrolment_ttl,
            status="active",
            failed_attempts=0,
            created_at=now,
        )
        uow.session.add(member)
        try:
            uow.commit()
        except sa.exc.IntegrityError:
            # Created at the same moment by someone else (the check above saw no row yet).
            raise taken from None
        log.info("staff member created", extra={"staff_id": member.id, "roles": member.roles})
        return NewStaff(profile(member), token)


def ensure_demo_staff(
    uow: UnitOfWork,
    *,
    email: str,
    name: str,
    roles: list[str],
    password: str,
    totp_secret: str,
    policy: StaffPolicy,
) -> bool:
    """A demo staff member, enrolled already with a published TOTP secret (development stacks
    only: the configuration refuses demo staff in production). True when created."""
    address = normalise_email(email)
    with uow:
        if uow.session.scalar(sa.select(StaffMember.id).where(StaffMember.email == address)):
            return False
    created = create_staff(uow, email=address, name=name, roles=roles, password=password, policy=policy)
    with uow:
        member = _by_id(uow.session, created.staff["id"], lock=True)
        _seal_secret(member, totp_secret, policy.cipher)
        member.enrolled_at = utcnow()
        member.enrolment_token_hash = None
        member.enrolment_expires_at = None
        uow.commit()
    return True


def list_staff(uow: UnitOfWork) -> list[dict]:
    with uow:
        members = uow.session.scalars(sa.select(StaffMember).order_by(StaffMember.email)).all()
        return [
            {
                **profile(member),
                "status": member.status,
                "enrolled_at": member.enrolled_at,
                "locked_until": member.locked_until,
                "created_at": member.created_at,
                "last_signed_in_at": member.last_signed_in_at,
            }
            for member in members
        ]


def _find(session: Session, id_or_email: str) -> StaffMember:
    """By id (``stf_…``) or by email, held under a row lock."""
    query = sa.select(StaffMember).with_for_update()
    if id_or_email.startswith(STAFF_ID_PREFIX + "_"):
        query = query.where(StaffMember.id == id_or_email)
    else:
        try:
            query = query.where(StaffMember.email == normalise_email(id_or_email))
        except StaffRuleError:
            raise NotFound(f"No staff member {id_or_email!r}.", param="staff") from None
    member = session.scalar(query)
    if member is None:
        raise NotFound(f"No staff member {id_or_email!r}.", param="staff")
    return member


def _by_id(session: Session, staff_id: str, *, lock: bool = False) -> StaffMember:
    member = session.get(StaffMember, staff_id, with_for_update=lock)
    assert member is not None
    return member


def disable_staff(uow: UnitOfWork, id_or_email: str) -> dict:
    """No more sign-ins, and every staff session revoked (access tokens already issued expire
    within their 15 minutes)."""
    with uow:
        member = _find(uow.session, id_or_email)
        if member.status != "disabled":
            member.status = "disabled"
            member.disabled_at = utcnow()
            member.enrolment_token_hash = None
            member.enrolment_expires_at = None
            _revoke_sessions(uow.session, StaffRefreshToken.staff_id == member.id, "staff_disabled")
            uow.commit()
            log.warning("staff member disabled", extra={"staff_id": member.id})
        return profile(member)


def reset_second_factor(uow: UnitOfWork, id_or_email: str, *, policy: StaffPolicy) -> NewStaff:
    """A lost phone: the old TOTP secret is dropped and a new enrolment token is shown once."""
    token = new_enrolment_token()
    with uow:
        member = _find(uow.session, id_or_email)
        if member.status != "active":
            raise Conflict("This staff member is disabled.", code="staff_disabled")
        _drop_secret(member)
        member.enrolment_token_hash = hash_enrolment_token(token)
        member.enrolment_expires_at = utcnow() + policy.enrolment_ttl
        # Whoever has the lost phone may be signed in with it: those sessions end too.
        _revoke_sessions(uow.session, StaffRefreshToken.staff_id == member.id, "second_factor_reset")
        uow.commit()
        log.warning("staff second factor reset", extra={"staff_id": member.id})
        return NewStaff(profile(member), token)


# -- the TOTP secret, sealed at rest ---------------------------------------------------------------


def _seal_secret(member: StaffMember, secret: str, cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(secret.encode(), totp_binding(member.id))
    member.totp_key_id = blob.key_id
    member.totp_wrapped_key = blob.wrapped_key
    member.totp_nonce = blob.nonce
    member.totp_ciphertext = blob.ciphertext
    member.totp_last_step = None


def _drop_secret(member: StaffMember) -> None:
    member.totp_key_id = member.totp_wrapped_key = member.totp_nonce = member.totp_ciphertext = None
    member.totp_last_step = None
    member.enrolled_at = None


def _open_secret(member: StaffMember, cipher: EnvelopeCipher) -> str:
    assert member.totp_key_id and member.totp_wrapped_key and member.totp_nonce and member.totp_ciphertext
    blob = SealedBlob(member.totp_key_id, member.totp_wrapped_key, member.totp_nonce, member.totp_ciphertext)
    return cipher.decrypt(blob, totp_binding(member.id)).decode()


def rewrap_totp_secrets(uow_factory, cipher: EnvelopeCipher) -> int:
    """Re-wrap every staff TOTP secret's data key under the active master key (a document key
    rotation: the same master keys seal them). Returns how many changed."""
    active = cipher.keyring.active_kid()
    with uow_factory() as uow:
        members = uow.session.scalars(
            sa.select(StaffMember).where(StaffMember.totp_key_id != active).with_for_update()
        ).all()
        for member in members:
            assert member.totp_key_id and member.totp_wrapped_key and member.totp_nonce
            rewrapped = cipher.rewrap(
                SealedBlob(member.totp_key_id, member.totp_wrapped_key, member.totp_nonce, b"")
            )
            member.totp_key_id = rewrapped.key_id
            member.totp_wrapped_key = rewrapped.wrapped_key
        uow.commit()
        return len(members)


# -- enrolment -------------------------------------------------------------------------------------


def _by_enrolment_token(session: Session, token: str, now: dt.datetime) -> StaffMember:
    member = session.scalar(
        sa.select(StaffMember)
        .where(StaffMember.enrolment_token_hash == hash_enrolment_token(token or ""))
        .with_for_update()
    )
    if (
        member is None
        or member.status != "active"
        or member.enrolment_expires_at is None
        or member.enrolment_expires_at <= now
    ):
        raise InvalidEnrolmentToken("Unknown, used or expired enrolment token: sign in again for a new one.")
    return member


def start_enrolment(uow: UnitOfWork, enrolment_token: str, *, policy: StaffPolicy) -> dict:
    """A new TOTP secret for the person holding the token (asking again replaces it, e.g. after
    losing the QR code). It becomes their second factor once a code from it is confirmed."""
    now = utcnow()
    secret = new_totp_secret()
    with uow:
        member = _by_enrolment_token(uow.session, enrolment_token, now)
        _seal_secret(member, secret, policy.cipher)
        member.enrolled_at = None
        uow.commit()
        log.info("staff enrolment started", extra={"staff_id": member.id})
        return {"otpauth_uri": otpauth_uri(secret, member.email), "secret": secret}


def confirm_enrolment(uow: UnitOfWork, enrolment_token: str, totp_code: str, *, policy: StaffPolicy) -> None:
    now = utcnow()
    with uow:
        member = _by_enrolment_token(uow.session, enrolment_token, now)
        if member.totp_ciphertext is None:
            raise Conflict(
                "Start the enrolment first (POST /v1/staff-enrolments).", code="enrolment_not_started"
            )
        step = accepted_totp_step(_open_secret(member, policy.cipher), totp_code, now, None)
        if step is None:
            raise ValidationFailed(
                "The code does not match: check the authenticator's clock and try the next code.",
                code="totp_code_incorrect",
                param="totp_code",
            )
        member.enrolled_at = now
        # The confirming code is spent: it cannot also sign in.
        member.totp_last_step = step
        member.enrolment_token_hash = None
        member.enrolment_expires_at = None
        uow.commit()
        log.info("staff enrolled a second factor", extra={"staff_id": member.id})


# -- signing in ------------------------------------------------------------------------------------


def sign_in(
    uow: UnitOfWork,
    email: str,
    password: str,
    totp_code: str,
    *,
    policy: StaffPolicy,
    client_ip: str | None = None,
) -> dict:
    now = utcnow()
    try:
        address: str | None = normalise_email(email)
    except StaffRuleError:
        address = None
    with uow:
        session = uow.session
        member = (
            session.scalar(sa.select(StaffMember).where(StaffMember.email == address).with_for_update())
            if address
            else None
        )
        if member is None:
            spend_password_check(password)
            raise _refusal(None, "unknown_email", client_ip, email=address)
        if member.locked_until is not None and member.locked_until > now:
            _log_refusal(member, "locked", client_ip)
            raise RateLimited(
                "Too many failed sign-ins: this account is locked for a while.",
                code="sign_in_locked",
                headers={"Retry-After": str(max(1, math.ceil((member.locked_until - now).total_seconds())))},
            )
        if not verify_password(password, member.password_hash):
            _count_failure(uow, member, now, policy.lockout)
            raise _refusal(member, "wrong_password", client_ip)
        if member.status != "active":
            raise _refusal(member, "disabled", client_ip)
        if member.enrolled_at is None:
            token = new_enrolment_token()
            member.enrolment_token_hash = hash_enrolment_token(token)
            member.enrolment_expires_at = now + policy.enrolment_ttl
            _clear_failures(member)
            uow.commit()
            log.info("staff sign-in needs enrolment", extra={"staff_id": member.id, "client_ip": client_ip})
            raise TotpEnrolmentRequired(
                "Enrol an authenticator app with this enrolment token, then sign in again.",
                enrolment_token=token,
            )
        step = accepted_totp_step(_open_secret(member, policy.cipher), totp_code, now, member.totp_last_step)
        if step is None:
            _count_failure(uow, member, now, policy.lockout)
            raise _refusal(member, "wrong_code", client_ip)
        member.totp_last_step = step
        member.last_signed_in_at = now
        _clear_failures(member)
        if password_needs_rehash(member.password_hash):
            member.password_hash = PASSWORDS.hash(password)
        tokens = _issue_tokens(session, member, new_id("sts"), now + policy.session_max, policy, now)
        uow.commit()
        log.info(
            "staff signed in",
            extra={"staff_id": member.id, "roles": member.roles, "client_ip": client_ip},
        )
        return _public(tokens)


def _issue_tokens(
    session: Session,
    member: StaffMember,
    session_id: str,
    session_expires_at: dt.datetime,
    policy: StaffPolicy,
    now: dt.datetime,
) -> dict:
    """An access token for the person as they are now (name, roles) and the session's next
    refresh token."""
    refresh_token = new_staff_refresh_token()
    row = StaffRefreshToken(
        id=new_id("srt"),
        session_id=session_id,
        staff_id=member.id,
        token_hash=hash_staff_refresh_token(refresh_token),
        status="active",
        created_at=now,
        expires_at=min(now + policy.refresh_idle, session_expires_at),
        session_expires_at=session_expires_at,
    )
    session.add(row)
    scopes = staff_scopes([Role(role) for role in member.roles])
    access_token, expires_in = policy.issuer.issue(
        client_id=member.id,
        role=Role.STAFF,
        scopes=scopes,
        audiences=SERVICE_AUDIENCES,
        now=now,
        name=member.name,
    )
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(scopes)),
        "refresh_token": refresh_token,
        "refresh_token_expires_in": max(0, int((row.expires_at - now).total_seconds())),
        "staff": profile(member),
        "_refresh_token_id": row.id,
    }


def _public(tokens: dict) -> dict:
    return {name: value for name, value in tokens.items() if not name.startswith("_")}


# -- staying signed in: refreshing and ending a staff session ----------------------------------------


def _revoke_sessions(session: Session, condition: sa.ColumnElement[bool], reason: str) -> int:
    result = session.execute(
        sa.update(StaffRefreshToken)
        .where(condition, StaffRefreshToken.status.in_(("active", "rotated")))
        .values(status="revoked", revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult


def _session_ended() -> InvalidRefreshToken:
    return InvalidRefreshToken("This session was ended: sign in again.", code="refresh_token_revoked")


def refresh_session(uow: UnitOfWork, refresh_token: str, *, policy: StaffPolicy) -> dict:
    """A new access token and refresh token for the session ``refresh_token`` belongs to (the
    module's docstring says when it is refused: 401 ``invalid_refresh_token`` and its kin)."""
    now = utcnow()
    with uow:
        session = uow.session
        row = session.scalar(
            sa.select(StaffRefreshToken)
            .where(StaffRefreshToken.token_hash == hash_staff_refresh_token(refresh_token or ""))
            .with_for_update()
        )
        if row is None:
            raise InvalidRefreshToken("Unknown refresh token: sign in again.")
        if row.status == "rotated":
            # A retry of a renewal whose answer was lost: within the grace, and only while the token
            # it was exchanged for is still unused; otherwise the session has forked, which is reuse.
            successor = session.get(StaffRefreshToken, row.replaced_by, with_for_update=True)
            retried = (
                row.rotated_at is not None
                and now - row.rotated_at <= policy.retry_grace
                and successor is not None
                and successor.status == "active"
            )
            if not retried:
                revoked = _revoke_sessions(
                    session, StaffRefreshToken.session_id == row.session_id, "reuse_detected"
                )
                uow.commit()
                log.warning(
                    "a spent staff refresh token was used again: its session is revoked",
                    extra={"staff_id": row.staff_id, "session_id": row.session_id, "revoked": revoked},
                )
                raise InvalidRefreshToken(
                    "This refresh token was already used: every session it belongs to is ended. Sign in again.",
                    code="refresh_token_reused",
                )
        elif row.status != "active":
            raise _session_ended()
        if row.expires_at <= now or row.session_expires_at <= now:
            raise InvalidRefreshToken(
                "This refresh token has expired: sign in again.", code="refresh_token_expired"
            )
        member = session.get(StaffMember, row.staff_id)
        if member is None or member.status != "active" or member.enrolled_at is None:
            _revoke_sessions(session, StaffRefreshToken.session_id == row.session_id, "no_longer_allowed")
            uow.commit()
            raise _session_ended()
        tokens = _issue_tokens(session, member, row.session_id, row.session_expires_at, policy, now)
        if row.status == "active":
            row.status, row.rotated_at, row.replaced_by = "rotated", now, tokens["_refresh_token_id"]
        uow.commit()
        log.info("staff session refreshed", extra={"staff_id": member.id, "session_id": row.session_id})
        return _public(tokens)


def end_session(uow: UnitOfWork, refresh_token: str) -> None:
    """Signing out: the session this refresh token belongs to is revoked. An unknown or ended one:
    nothing to do (signing out twice is not an error)."""
    with uow:
        session = uow.session
        # Locked, so that a renewal of the same session in flight commits its new token first and
        # the revocation below sees it (else that token would outlive the sign-out).
        row = session.scalar(
            sa.select(StaffRefreshToken)
            .where(StaffRefreshToken.token_hash == hash_staff_refresh_token(refresh_token or ""))
            .with_for_update()
        )
        if row is not None:
            revoked = _revoke_sessions(session, StaffRefreshToken.session_id == row.session_id, "signed_out")
            uow.commit()
            if revoked:
                log.info("staff signed out", extra={"staff_id": row.staff_id, "session_id": row.session_id})


# -- who is who, for audit trails -----------------------------------------------------------------


def staff_card(uow: UnitOfWork, staff_id: str, principal: Principal) -> dict:
    """Another staff member's id, name and roles, for staff reading audit trails (which name
    people by id). Nothing else about them (no email, no sign-in history)."""
    if not principal.is_staff:
        raise Forbidden("Staff members are looked up by staff.", code="role_not_allowed")
    with uow:
        member = (
            uow.session.get(StaffMember, staff_id) if staff_id.startswith(STAFF_ID_PREFIX + "_") else None
        )
        if member is None:
            raise NotFound(f"No staff member {staff_id!r}.", param="staff_id")
        return {"object": "staff_member", "id": member.id, "name": member.name, "roles": list(member.roles)}


def _count_failure(uow: UnitOfWork, member: StaffMember, now: dt.datetime, policy: LockoutPolicy) -> None:
    """One more failure, committed even though the answer is an error."""
    count = FailureCount(
        member.failed_attempts, member.failure_window_started_at or now, member.locked_until
    ).after_failure(now, policy)
    member.failed_attempts = count.failed_codes
    member.failure_window_started_at = count.window_started_at
    member.locked_until = count.locked_until
    uow.commit()
    if count.is_locked(now):
        log.warning("staff sign-in locked after too many failures", extra={"staff_id": member.id})


def _clear_failures(member: StaffMember) -> None:
    member.failed_attempts = 0
    member.failure_window_started_at = None
    member.locked_until = None


def _refusal(
    member: StaffMember | None, reason: str, client_ip: str | None, *, email: str | None = None
) -> InvalidCredentials:
    """Log why (the audit trail of sign-ins), and return the one answer every wrong credential gets."""
    _log_refusal(member, reason, client_ip, email=email)
    return InvalidCredentials("The email, password or code is not correct.")


def _log_refusal(
    member: StaffMember | None, reason: str, client_ip: str | None, *, email: str | None = None
) -> None:
    log.warning(
        "staff sign-in refused",
        extra={
            "staff_id": member.id if member is not None else None,
            # An address nobody holds is logged masked: enough to spot a pattern, not a list.
            "email": mask_email(email) if member is None and email else None,
            "reason": reason,
            "client_ip": client_ip,
        },
    )
