"""Reconciliation's tables: the files received, the runs that matched them, their items, the cases
a break opens (with an append-only history), and the days the worker has fetched.

Kept apart from ``orm.py`` (same ``Base``, same database) so the ledger's tables read on their own.
``recon_items`` is also the staging table: a run streams its file's lines into it in chunks with no
state, then SQL statements (``service_layer/reconciliation.py``) give every row its state.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.accounts.adapters.orm import Base
from shared.db import UTCDateTime, utcnow


class ReconFile(Base):
    """A file as received, kept immutable in the file store under its SHA-256."""

    __tablename__ = "recon_files"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    source: Mapped[str] = mapped_column(sa.String(20))  # gateway_settlement | bank_statement
    name: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconRun(Base):
    """One file matched against the ledger (one run per file: the file's hash names it)."""

    __tablename__ = "recon_runs"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(sa.ForeignKey("recon_files.id"), unique=True)
    source: Mapped[str] = mapped_column(sa.String(20), index=True)
    gateway: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True, index=True)
    format: Mapped[str | None] = mapped_column(sa.String(12), nullable=True)  # csv | mt940 | camt053
    # The day the file is about: the settlement date, or the statement's closing date.
    day: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(12))  # completed
    lines_total: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    lines_done: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    counts: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # items per state
    # Statement runs: the bank's closing balance, and how far the ledger's expectation is from it.
    closing_balance: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    expected_balance: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReconItem(Base):
    """A line of a file (or what the ledger has that the file lacks) and the state it ended in.

    ``ledger_entry_id``: the ledger entry the line was matched to (the record proving the ledger
    leg); ``posted_entry_id``: the entry this line posted (a settlement, a returned payout, a bank
    fee, a reserve top-up).
    """

    __tablename__ = "recon_items"
    # A settlement run writes a row per line of its file: the indexes only other rows need are
    # partial (a settlement line is found by its object, ``ix_recon_items_object_id``).
    __table_args__ = (
        sa.Index("ix_recon_items_run_state", "run_id", "state"),
        sa.Index(
            "ix_recon_items_dedup_key",
            "dedup_key",
            postgresql_where=sa.text("source = 'statement'"),
            sqlite_where=sa.text("source = 'statement'"),
        ),
        sa.Index(
            "ix_recon_items_ledger_entry_id",
            "ledger_entry_id",
            postgresql_where=sa.text("source = 'ledger'"),
            sqlite_where=sa.text("source = 'ledger'"),
        ),
        sa.Index(
            "ix_recon_items_case_id",
            "case_id",
            postgresql_where=sa.text("case_id IS NOT NULL"),
            sqlite_where=sa.text("case_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(sa.String(40))
    source: Mapped[str] = mapped_column(sa.String(12))  # settlement | statement | ledger
    kind: Mapped[str] = mapped_column(sa.String(20))  # domain.reconciliation.ItemKind
    line_number: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    object_id: Mapped[str] = mapped_column(sa.String(140), index=True)
    reference: Mapped[str] = mapped_column(sa.String(140), default="")
    batch_reference: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    dedup_key: Mapped[str] = mapped_column(sa.String(300))
    gateway: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # gross (settlement), signed amount (statement)
    fee: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    net: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    expected_amount: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    expected_fee: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    card_scheme: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    card_region: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    value_date: Mapped[dt.date] = mapped_column(sa.Date)
    transaction_type: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
    bank_reference: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    state: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    ledger_entry_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    posted_entry_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    case_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    # A ledger item (missing_*) a later run explained: that run's id (its state is then matched).
    healed_by_run_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class ReconCase(Base):
    """A break for a person: ``open → investigating → resolved | written_off``."""

    __tablename__ = "recon_cases"
    # A run's cases, a page at a time from the cursor (the run page of the back office).
    __table_args__ = (sa.Index("ix_recon_cases_run_id_id", "run_id", "id"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), index=True)
    state: Mapped[str] = mapped_column(sa.String(14), index=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # the difference at stake, minor units, ≥ 0
    currency: Mapped[str] = mapped_column(sa.String(3))
    object_id: Mapped[str | None] = mapped_column(sa.String(140), nullable=True, index=True)
    bank_code: Mapped[str | None] = mapped_column(sa.String(3), nullable=True, index=True)
    gateway: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    run_id: Mapped[str] = mapped_column(sa.String(40))  # the run that opened it
    assignee: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # How it ended: {"run_id"|"item_id"|"entry_id"|"adjustment_id": …, "note": …}
    resolution: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconCaseEvent(Base):
    """A case's history, append-only: what happened to it, who did it, when."""

    __tablename__ = "recon_case_history"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    action: Mapped[str] = mapped_column(sa.String(20))  # opened, assigned, noted, investigating, …
    actor: Mapped[str] = mapped_column(sa.String(64))
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconFetchedDay(Base):
    """A day whose file the worker has fetched and run (so it is fetched once)."""

    __tablename__ = "recon_fetched_days"

    source: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    party: Mapped[str] = mapped_column(sa.String(20), primary_key=True)  # the gateway, or the bank code
    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String(40))
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
