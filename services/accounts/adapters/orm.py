"""Accounts' tables: ledger accounts, immutable journal entries and lines, artisan projection."""

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


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
