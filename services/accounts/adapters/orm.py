"""Accounts' tables: ledger accounts, immutable journal entries and lines, artisan projections, payouts."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.accounts.domain.payouts import PayeeType, rib_last4
from shared.db import UTCDateTime, utcnow
from shared.events.outbox import BrokerTopicMixin, InboxMixin, OutboxMixin
from shared.idempotency_store import IdempotencyKeyMixin
from shared.kyc import KYC_ACTIVE
from shared.money import Money


class Base(DeclarativeBase):
    pass


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (sa.UniqueConstraint("owner_type", "owner_id", "kind", "currency"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner_type: Mapped[str] = mapped_column(sa.String(20))  # artisan, marketplace, platform
    owner_id: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(60))
    currency: Mapped[str] = mapped_column(sa.String(3))
    normal_side: Mapped[str] = mapped_column(sa.String(6), default="credit")  # debit | credit
    # Σ of the account's lines (positive = debit), kept in the posting transaction so reading a
    # balance is one row; GET /v1/ledger/integrity recomputes it from the lines.
    balance: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(Base):
    """Immutable: a correction is a new reversing entry, never an update."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        # A reversal names the entry it negates; unique, so an entry is reversed at most once. Only
        # reversals are indexed: every other entry (a payment's, each of a batch's) leaves it null,
        # and an entry of a unique index is one more to write for nothing.
        sa.Index(
            "ix_journal_entries_reverses_entry_id",
            "reverses_entry_id",
            unique=True,
            postgresql_where=sa.text("reverses_entry_id IS NOT NULL"),
            sqlite_where=sa.text("reverses_entry_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    cause: Mapped[str] = mapped_column(sa.String(20))  # payment, refund, dispute, release, payout, …
    cause_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    # One entry per posting: the event it came from (unique), and a key naming the movement
    # (e.g. "payment:pay_…:succeeded") so the same cause is never posted twice either.
    cause_event_id: Mapped[str | None] = mapped_column(sa.String(40), unique=True, nullable=True)
    posting_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    artisan_id: Mapped[str | None] = mapped_column(sa.String(40), index=True, nullable=True)
    description: Mapped[str] = mapped_column(sa.String(200))
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    reverses_entry_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class JournalLine(Base):
    """One account's side of an entry. An account's lines, in id order, are its history in the order
    it was posted (lines are written under the account's lock): ``balance_after`` is the account's
    stored balance right after the line, so a statement page starts from a line instead of a sum
    over everything before it (``ledger.balances_after`` computes it for every write)."""

    __tablename__ = "journal_lines"
    __table_args__ = (
        # A statement page: an account's lines in posting order, from a cursor line on.
        sa.Index("ix_journal_lines_account_id_id", "account_id", "id"),
        # Where a date range starts and ends in that history.
        sa.Index("ix_journal_lines_account_id_posted_at", "account_id", "posted_at", "id"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entry_id: Mapped[str] = mapped_column(sa.ForeignKey("journal_entries.id"), index=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # positive debit, negative credit
    currency: Mapped[str] = mapped_column(sa.String(3))
    # The entry's posted_at, beside the account's lines for a date range to find its place.
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    balance_after: Mapped[int] = mapped_column(sa.BigInteger)


class PendingHold(Base):
    """The artisan's share of one payment, held in ``pending`` until ``release_at``."""

    __tablename__ = "pending_holds"

    payment_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    held: Mapped[int] = mapped_column(sa.BigInteger)
    released: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # Taken back from pending by refunds and disputes (returned if a dispute is won).
    taken: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    release_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    @property
    def remaining(self) -> int:
        return self.held - self.released - self.taken


class DisputeHold(Base):
    """Where a disputed amount was taken from, so a won dispute gives it back the same way."""

    __tablename__ = "dispute_holds"

    dispute_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(sa.String(40))
    artisan_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    from_pending: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    from_available: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    from_reserve: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(10), default="open")  # open | won | lost


# The case the completeness check opens for a succeeded payment missing from the ledger
# (``service_layer/completeness.py``), and the cases of that kind still open: one per payment.
PAYMENT_NOT_IN_LEDGER = "payment_not_in_ledger"
OPEN_PAYMENT_GAPS = f"kind = '{PAYMENT_NOT_IN_LEDGER}' AND status = 'open'"


class LedgerCase(Base):
    """A posting the ledger refused (it would break a balance rule): for an operator to resolve.

    ``open``: refused for good, an operator decides. ``waiting``: a parked event that posts by
    itself once what it waits for happens (see ``ParkedEvent``). ``resolved``: it did.
    """

    __tablename__ = "ledger_cases"
    __table_args__ = (
        # Two workers checking at once open one case for a missing payment, not two: the second
        # one's insert finds the first one's case (ON CONFLICT DO NOTHING).
        sa.Index(
            "uq_ledger_cases_open_payment_gap",
            "cause_id",
            unique=True,
            postgresql_where=sa.text(OPEN_PAYMENT_GAPS),
            sqlite_where=sa.text(OPEN_PAYMENT_GAPS),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(20), default="open", index=True)
    cause: Mapped[str] = mapped_column(sa.String(20))
    cause_id: Mapped[str] = mapped_column(sa.String(64))
    event_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    artisan_id: Mapped[str | None] = mapped_column(sa.String(40), index=True, nullable=True)
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def mark_resolved(
        self, resolution: str, *, at: dt.datetime, by: str = "system", **record: object
    ) -> None:
        """Resolved, with its record kept in ``details``: how (``posted``, ``funds_returned``,
        ``reserve_funded``, ``adjustment``, ``noted``), when, by whom (``system`` when the ledger
        settled it itself) and whatever names the resolution (an entry, an adjustment, a note)."""
        self.status = "resolved"
        self.details = {
            **self.details,
            "resolved_at": at.isoformat(),
            "resolution": resolution,
            "resolved_by": by,
            **record,
        }


class ParkedEvent(Base):
    """A money event that cannot be posted yet, kept until what it waits for has happened.

    Accounts reads two topics that are not ordered with each other, so a payment can arrive before
    the artisan's tier (or the upgrade that makes room under their cap), and a replay can bring a
    refund before its payment. Such an event is handled (its inbox row is written) by parking it
    here with a ``waiting`` ledger case; ``post_parked_events`` tries it again after every batch
    that touches its artisan, and the worker after every interval. Posted, the row goes and the
    case is resolved.
    """

    __tablename__ = "parked_events"

    # Autoincrement: parked events are tried again in the order they were parked.
    seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(80))
    artisan_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    envelope: Mapped[dict] = mapped_column(sa.JSON)
    waiting_for: Mapped[str] = mapped_column(sa.String(40))  # the case's kind: why it cannot post yet
    case_id: Mapped[str] = mapped_column(sa.String(40))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    parked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


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
    kyc_status: Mapped[str] = mapped_column(sa.String(20), default=KYC_ACTIVE)  # active | rejected
    # Onboarding's per-artisan counter of KYC changes: older news (lower version) is ignored.
    kyc_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Set when the artisan's personal data was erased (``onboarding.artisan.erased``): a replayed
    # bank-account event brings no RIB back.
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
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


class Payout(Base):
    """Money paid from an artisan's available balance to one of their bank accounts, or from a
    marketplace's commission to its payout account (``payee_type``): one machinery, one set of states.

    The destination is copied when the payout is created, so changing the artisan's accounts later
    never redirects a payout already on its way. States: services/accounts/domain/payouts.py.
    """

    __tablename__ = "payouts"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    payee_type: Mapped[str] = mapped_column(sa.String(12), default="artisan")  # artisan | marketplace
    # Exactly one of the two is set, as payee_type says.
    artisan_id: Mapped[str | None] = mapped_column(sa.String(40), index=True, nullable=True)
    marketplace_id: Mapped[str | None] = mapped_column(sa.String(64), index=True, nullable=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(12), index=True)
    # The artisan's bank account (onboarding's id); none for a commission payout, whose RIB is the
    # marketplace's payout account (marketplace_settings).
    bank_account_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    rib: Mapped[str] = mapped_column(sa.String(24))
    holder_name: Mapped[str] = mapped_column(sa.String(200))
    bank_code: Mapped[str] = mapped_column(sa.String(3))  # the artisan's bank
    # The bank partner that executes the transfer (its callbacks settle the payout), and the bank
    # holding the client funds the money leaves from (credited when the payout is paid).
    partner_bank: Mapped[str] = mapped_column(sa.String(40))
    source_bank_code: Mapped[str] = mapped_column(sa.String(3))
    partner_reference: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    source: Mapped[str] = mapped_column(sa.String(10))  # api | schedule
    # Set on automatic payouts: one per artisan and schedule window, enforced by the database.
    schedule_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True, nullable=True)
    # "<client id>:<Idempotency-Key>" of a payout asked for over the API, kept with the payout in
    # its own transaction: even if the key's stored answer is lost (a crash before it was saved),
    # a retry finds this payout instead of paying out twice.
    request_key: Mapped[str | None] = mapped_column(sa.String(320), unique=True, nullable=True)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Indexed: the back office counts the payouts sent, paid and failed in a day or a week.
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def rib_last4(self) -> str:
        return rib_last4(self.rib)

    @property
    def payee_id(self) -> str:
        return self.marketplace_id if self.payee_type == PayeeType.MARKETPLACE else self.artisan_id


class PayoutSchedule(Base):
    """An artisan's choice of automatic payouts; no row means ``manual``."""

    __tablename__ = "payout_schedules"

    artisan_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    interval: Mapped[str] = mapped_column(sa.String(10), index=True)  # manual | daily | weekly | threshold
    threshold_amount: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    updated_by: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def threshold(self) -> Money | None:
        return None if self.threshold_amount is None else Money(self.threshold_amount, self.currency)


class IssuedStatement(Base):
    """A signed income statement as it was issued, found again by its verification code.

    The code is stored only as a digest (``domain.income_statements.code_digest``): whoever holds
    the code may fetch the statement, so a copy of this table does not hand out codes.
    """

    __tablename__ = "income_statements"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    code_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    period_from: Mapped[str] = mapped_column(sa.String(7))
    period_to: Mapped[str] = mapped_column(sa.String(7))
    kid: Mapped[str] = mapped_column(sa.String(40))
    jws: Mapped[str] = mapped_column(sa.Text)
    issued_by: Mapped[str] = mapped_column(sa.String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MarketplaceSettings(Base):
    """What the platform knows of a marketplace's money: the platform's fee on its payments, the
    bank account its commission is paid to, and how often. No row means the defaults: no fee, no
    payout account, manual commission payouts."""

    __tablename__ = "marketplace_settings"

    marketplace_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    platform_fee_bp: Mapped[int] = mapped_column(sa.Integer, default=0)
    platform_fee_fixed: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3))
    payout_rib: Mapped[str | None] = mapped_column(sa.String(24), nullable=True)
    payout_iban: Mapped[str | None] = mapped_column(sa.String(28), nullable=True)
    payout_bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    payout_holder_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    commission_payout_interval: Mapped[str] = mapped_column(sa.String(10), default="manual", index=True)
    updated_by: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        # The RIB stays out of logs and tracebacks.
        return f"MarketplaceSettings(marketplace_id={self.marketplace_id!r})"


class LedgerAdjustment(Base):
    """A reversal of a journal entry, or a manual adjustment between named accounts, with its reason.

    ``pending_approval`` until a second operator approves (four-eyes, above the configured amount),
    then ``posted`` with its entry; or ``rejected``. The lines are kept as proposed (owner type, owner
    id, kind, signed amount), so what is approved is exactly what was proposed.
    """

    __tablename__ = "ledger_adjustments"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10))  # reversal | manual
    status: Mapped[str] = mapped_column(sa.String(20), index=True)  # pending_approval | posted | rejected
    reason: Mapped[str] = mapped_column(sa.String(500))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # Σ of the debit lines: what four-eyes weighs
    lines: Mapped[list] = mapped_column(sa.JSON)
    reverses_entry_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    case_id: Mapped[str | None] = mapped_column(sa.String(40), index=True, nullable=True)
    entry_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    # "<client id>:<Idempotency-Key>": a retried proposal finds its adjustment.
    request_key: Mapped[str | None] = mapped_column(sa.String(320), unique=True, nullable=True)
    proposed_by: Mapped[str] = mapped_column(sa.String(64))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class BrokerTopic(BrokerTopicMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass


# Reconciliation's tables live beside these, on the same Base (imported last: it imports Base).
from services.accounts.adapters import reconciliation_orm as reconciliation_orm  # noqa: E402
