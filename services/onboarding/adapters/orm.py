"""Onboarding's tables (SQLAlchemy 2 typed models). Migrations live in ``../migrations``."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, utcnow
from shared.events.outbox import InboxMixin, OutboxMixin
from shared.idempotency import IdempotencyKeyMixin


class Base(DeclarativeBase):
    pass


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(32))
    secret_hash: Mapped[str] = mapped_column(sa.String(200))
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
    kyc_tier: Mapped[int] = mapped_column(sa.Integer, default=0, index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="active", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ArtisanMarketplace(Base):
    """Which marketplaces registered an artisan: a marketplace sees only its own artisans."""

    __tablename__ = "artisan_marketplaces"

    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("artisans.id"), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.ForeignKey("api_clients.id"), primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
