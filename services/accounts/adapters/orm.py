"""Accounts' tables: ledger accounts, immutable journal entries and lines, artisan projections."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, utcnow
from shared.events.outbox import InboxMixin, OutboxMixin
from shared.idempotency import IdempotencyKeyMixin


class Base(DeclarativeBase):
    pass


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (sa.UniqueConstraint("owner_type", "owner_id", "kind", "currency"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_type: Mapped[str] = mapped_column(sa.String(20))  # artisan, marketplace, platform
    owner_id: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(40))
    currency: Mapped[str] = mapped_column(sa.String(3))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(Base):
    """Immutable: a correction is a new reversing entry, never an update."""

    __tablename__ = "journal_entries"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    cause: Mapped[str] = mapped_column(sa.String(20))  # payment, refund, dispute, payout, …
    cause_event_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    description: Mapped[str] = mapped_column(sa.String(200))
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalLine(Base):
    __tablename__ = "journal_lines"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(sa.ForeignKey("journal_entries.id"), index=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("ledger_accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # positive debit, negative credit
    currency: Mapped[str] = mapped_column(sa.String(3))


class ArtisanOwner(Base):
    """Which marketplaces an artisan belongs to (from onboarding events), for data isolation."""

    __tablename__ = "artisan_marketplaces"

    artisan_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class ArtisanLimits(Base):
    """An artisan's KYC tier and the cap that comes with it (from onboarding events)."""

    __tablename__ = "artisan_limits"

    artisan_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kyc_tier: Mapped[int] = mapped_column(sa.Integer)
    cap_amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    kyc_status: Mapped[str] = mapped_column(sa.String(20), default="active")  # active | rejected
    # Onboarding's per-artisan counter of KYC changes: older news (lower version) is ignored.
    kyc_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PayoutDestination(Base):
    """A bank account an artisan's payouts may go to; at most one per artisan is the default."""

    __tablename__ = "payout_destinations"

    bank_account_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    rib: Mapped[str] = mapped_column(sa.String(24))
    iban: Mapped[str] = mapped_column(sa.String(28))
    bank_code: Mapped[str] = mapped_column(sa.String(3))
    bank_name: Mapped[str] = mapped_column(sa.String(100))
    holder_name: Mapped[str] = mapped_column(sa.String(200))
    is_default: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
