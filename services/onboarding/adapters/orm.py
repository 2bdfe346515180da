"""Onboarding's tables (SQLAlchemy 2 typed models). Migrations live in ``../migrations``."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from shared.db import UTCDateTime, utcnow
from shared.events.outbox import BrokerTopicMixin, InboxMixin, OutboxMixin
from shared.idempotency_store import IdempotencyKeyMixin


class Base(DeclarativeBase):
    pass


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(32))
    secret_hash: Mapped[str] = mapped_column(sa.String(200))
    # A bank partner's bank (three-digit Moroccan bank code): its tokens carry it as ``bank_code``
    # and accounts shows it that bank's client-funds account and artisans only. Null for other roles.
    bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Artisan(Base):
    __tablename__ = "artisans"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    cin: Mapped[str] = mapped_column(sa.String(20), unique=True)
    phone: Mapped[str] = mapped_column(sa.String(20), unique=True)
    date_of_birth: Mapped[dt.date] = mapped_column(sa.Date)
    region: Mapped[str] = mapped_column(sa.String(40), index=True)
    craft: Mapped[str] = mapped_column(sa.String(40))
    preferred_language: Mapped[str] = mapped_column(sa.String(2), default="fr")
    artisan_card_number: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    cooperative_ice: Mapped[str | None] = mapped_column(sa.String(15), nullable=True)
    # Non-blocking findings kept on the record, e.g. ``ice_checksum_mismatch``.
    warnings: Mapped[list] = mapped_column(sa.JSON, default=list)
    kyc_tier: Mapped[int] = mapped_column(sa.Integer, default=0, index=True)
    # Bumped on every tier change; projections in other services ignore older news with it.
    kyc_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default="active", index=True)
    phone_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # pending (no list screened yet) | clear | hit (waiting for review)
    screening_status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    # Set when the artisan asked for their personal data to be erased (law 09-08): until the
    # anti-money-laundering duty to keep it ends, it is kept but no longer processed, and shown to
    # compliance only (and to the artisan themself).
    restricted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ArtisanMarketplace(Base):
    """Which marketplaces registered an artisan: a marketplace sees only its own artisans."""

    __tablename__ = "artisan_marketplaces"

    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.ForeignKey("api_clients.id"), primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KycTierChange(Base):
    """Append-only history of an artisan's tier: every move, up or down, with actor and reason."""

    __tablename__ = "kyc_tier_changes"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    from_tier: Mapped[int] = mapped_column(sa.Integer)
    to_tier: Mapped[int] = mapped_column(sa.Integer)
    reason_code: Mapped[str] = mapped_column(sa.String(40))
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    actor: Mapped[str] = mapped_column(sa.String(64))
    kyc_version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PhoneVerification(Base):
    """One OTP sent by SMS. Only an HMAC of the code is kept."""

    __tablename__ = "phone_verifications"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    phone: Mapped[str] = mapped_column(sa.String(20))
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    # pending | verified | send_failed
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KycDocument(Base):
    """An identity document, encrypted at rest (AES-256-GCM, per-document key wrapped by a master
    key named by ``key_id``). The ciphertext is loaded only when asked for."""

    __tablename__ = "kyc_documents"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    content_type: Mapped[str] = mapped_column(sa.String(40))
    size_bytes: Mapped[int] = mapped_column(sa.Integer)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    # active | superseded (a newer upload of the same kind) | rejected (found invalid or forged)
    status: Mapped[str] = mapped_column(sa.String(20), default="active")
    submitted_by: Mapped[str] = mapped_column(sa.String(64))
    key_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    nonce: Mapped[bytes] = mapped_column(sa.LargeBinary)
    ciphertext: Mapped[bytes] = deferred(mapped_column(sa.LargeBinary))
    # Crypto-shredded when the artisan's data was erased: its data key destroyed (and the
    # ciphertext, of no use without it, dropped). Nothing can decrypt it any more.
    shredded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScreeningList(Base):
    """A loaded version of the sanctions/PEP list; the newest loaded one is in force."""

    __tablename__ = "screening_lists"

    version: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(300))
    entry_count: Mapped[int] = mapped_column(sa.Integer)
    entries: Mapped[list] = deferred(mapped_column(sa.JSON))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ScreeningResult(Base):
    __tablename__ = "screening_results"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    list_version: Mapped[str] = mapped_column(sa.String(80))
    screened_name: Mapped[str] = mapped_column(sa.String(200))
    outcome: Mapped[str] = mapped_column(sa.String(10))  # clear | hit
    matches: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KycReview(Base):
    """A case for a compliance officer: a screening hit, or a request for tier 3."""

    __tablename__ = "kyc_reviews"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # screening_hit | tier_upgrade | bank_account_claim
    requested_tier: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="open", index=True)
    # Who caused the case to be opened: the four-eyes rule forbids them from deciding it.
    submitted_by: Mapped[str] = mapped_column(sa.String(64))
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    decision: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ErasureRequest(Base):
    """An artisan's request to have their personal data erased (law 09-08), one per artisan.

    What the anti-money-laundering law obliges Hirfa to keep (identity, KYC file, transactions:
    ``retain_until``, years after the relationship ended) is restricted meanwhile, then erased.
    """

    __tablename__ = "erasure_requests"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), unique=True)
    # restricted (kept, not processed, until retain_until) | erased
    status: Mapped[str] = mapped_column(sa.String(20), default="restricted")
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The end of the business relationship, from which the retention duty runs: the request itself
    # (the artisan is no longer paid from then on).
    relationship_ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    retain_until: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KycAuditEntry(Base):
    """Append-only audit log: review decisions, tier changes, document downloads. The database
    refuses UPDATE and DELETE on it (``adapters/immutability.py``)."""

    __tablename__ = "kyc_audit_log"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    actor: Mapped[str] = mapped_column(sa.String(64))
    subject_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BankAccount(Base):
    """An artisan's bank account: linked by RIB/IBAN, or being opened at a partner bank."""

    __tablename__ = "bank_accounts"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(10))  # link | open
    # link: linked. open: pending -> opened | refused.
    status: Mapped[str] = mapped_column(sa.String(20))
    bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    partner_bank: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    rib: Mapped[str | None] = mapped_column(sa.String(24), nullable=True, unique=True)
    iban: Mapped[str | None] = mapped_column(sa.String(28), nullable=True)
    holder_name: Mapped[str] = mapped_column(sa.String(200))
    holder_name_score: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    # What the bank said of the holder when the account was linked: match, or unknown (the bank
    # cannot verify: only the holder-name check passed, and the account needs confirmation).
    holder_verification: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    # Only a usable (linked or opened) account is ever the default; an opening asked to become the
    # default remembers it in ``default_requested`` until the bank opens it.
    is_default: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    default_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    partner_reference: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refusal_reason: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Notification(Base):
    """One message to an artisan, in their language, and where its sending stands. The row is also
    the send queue: the worker sends ``queued`` rows whose ``next_attempt_at`` has come."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_artisan_created", "artisan_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    language: Mapped[str] = mapped_column(sa.String(2))
    text: Mapped[str] = mapped_column(sa.Text)
    channel: Mapped[str] = mapped_column(sa.String(10))  # sms | inbox
    # queued | sent | delivered | failed (domain/notifications.py)
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")
    # The event it tells of: one notification per event, however often the event is delivered.
    source_event_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True, nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(100), nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ArtisanSignIn(Base):
    """One sign-in by phone: an OTP sent (or, for a number no active artisan holds, a code nobody
    receives, so the answer is the same). Only an HMAC of the code is kept."""

    __tablename__ = "artisan_sign_ins"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    phone: Mapped[str] = mapped_column(sa.String(20), index=True)
    # None when no active artisan holds the number: such a sign-in can never succeed.
    artisan_id: Mapped[str | None] = mapped_column(sa.ForeignKey("artisans.id"), nullable=True, index=True)
    client_ip: Mapped[str | None] = mapped_column(sa.String(45), nullable=True, index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    # pending | verified | superseded | send_failed
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    device_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignInLockout(Base):
    """Failed sign-in codes per phone number: too many in the window locks sign-in for a while."""

    __tablename__ = "sign_in_lockouts"

    phone: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    failed_codes: Mapped[int] = mapped_column(sa.Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ArtisanDevice(Base):
    """A phone an artisan signed in from (the app's own device id)."""

    __tablename__ = "artisan_devices"

    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    first_signed_in_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_signed_in_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)


class ArtisanRefreshToken(Base):
    """An opaque refresh token, kept as its SHA-256. Each use rotates it within its family (one
    sign-in on one device); presenting a rotated one again revokes the whole family."""

    __tablename__ = "artisan_refresh_tokens"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), index=True)
    device_id: Mapped[str] = mapped_column(sa.String(128))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # active | rotated | revoked
    status: Mapped[str] = mapped_column(sa.String(20), default="active", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class StaffMember(Base):
    """A person of the back office: a compliance officer, an operator, or both.

    The password is kept as an argon2id hash; the TOTP secret encrypted at rest like KYC documents
    (AES-256-GCM under a data key wrapped by a document master key, bound to this row); the
    enrolment token as its SHA-256. None of them is ever shown again or logged.
    """

    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # Trimmed and lower-cased before it is stored, so unique means unique case-insensitively.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    # The staff roles held: ["compliance"], ["operator"] or both.
    roles: Mapped[list] = mapped_column(sa.JSON)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    # The TOTP secret, sealed (None until enrolment starts). While ``enrolled_at`` is None it is a
    # secret being enrolled, not yet a second factor.
    totp_key_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    totp_wrapped_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    totp_nonce: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    totp_ciphertext: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # The time step of the last code accepted: a code of that step or earlier is never taken again.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    enrolment_token_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, unique=True)
    enrolment_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # active | disabled
    status: Mapped[str] = mapped_column(sa.String(20), default="active")
    failed_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    failure_window_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_signed_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StaffRefreshToken(Base):
    """An opaque staff refresh token, kept as its SHA-256: what keeps a console session signed in
    past its 15-minute access token. Its ``session_id`` is one sign-in (the family every rotation
    stays in); each use rotates it. It lapses after ``expires_at`` unused (the staff session's
    idle bound) and at ``session_expires_at`` whatever happens (a working day at most). Signing
    out, disabling the person or resetting their second factor revokes it."""

    __tablename__ = "staff_refresh_tokens"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    staff_id: Mapped[str] = mapped_column(sa.ForeignKey("staff_members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # active | rotated | revoked
    status: Mapped[str] = mapped_column(sa.String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    session_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class BrokerTopic(BrokerTopicMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
