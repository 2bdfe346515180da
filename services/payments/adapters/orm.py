"""Payments' tables."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, utcnow
from shared.events.outbox import InboxMixin, OutboxMixin
from shared.idempotency import IdempotencyKeyMixin


class Base(DeclarativeBase):
    pass


class Payee(Base):
    """Local projection of an artisan, fed by onboarding events: who may be paid, and how much."""

    __tablename__ = "payees"

    artisan_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kyc_tier: Mapped[int] = mapped_column(sa.Integer)
    tier_cap_amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    payout_eligible: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # active | rejected (a disqualifying KYC rejection): a rejected artisan cannot be paid.
    kyc_status: Mapped[str] = mapped_column(sa.String(20), default="active")
    # Onboarding's per-artisan counter of KYC changes: a tier event is applied only if it is newer
    # than this, so a replayed or redelivered older event never undoes a later change.
    kyc_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Time of the onboarding event this row reflects.
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PayeeMarketplace(Base):
    __tablename__ = "payee_marketplaces"

    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("payees.artisan_id"), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
