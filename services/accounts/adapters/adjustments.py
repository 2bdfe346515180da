"""Ledger adjustments and the entries they reverse, in the database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount, LedgerAdjustment
from services.accounts.domain.ledger import AccountRef


def entry_lines(session: Session, entry_id: str) -> list[tuple[AccountRef, int, str]]:
    """The entry's lines in order: (account, signed amount, currency)."""
    rows = session.execute(
        sa.select(
            LedgerAccount.owner_type,
            LedgerAccount.owner_id,
            LedgerAccount.kind,
            JournalLine.amount,
            JournalLine.currency,
        )
        .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
        .where(JournalLine.entry_id == entry_id)
        .order_by(JournalLine.id)
    ).all()
    return [
        (AccountRef(row.owner_type, row.owner_id, row.kind), int(row.amount), row.currency) for row in rows
    ]


def reversal_of(session: Session, entry_id: str) -> str | None:
    """The id of the entry that reversed ``entry_id``, if one did."""
    return session.scalar(sa.select(JournalEntry.id).where(JournalEntry.reverses_entry_id == entry_id))


def pending_reversal_of(session: Session, entry_id: str) -> str | None:
    """The id of a reversal of ``entry_id`` waiting for approval, if there is one."""
    return session.scalar(
        sa.select(LedgerAdjustment.id).where(
            LedgerAdjustment.reverses_entry_id == entry_id, LedgerAdjustment.status == "pending_approval"
        )
    )


def locked(session: Session, adjustment_id: str) -> LedgerAdjustment | None:
    return session.scalar(
        sa.select(LedgerAdjustment).where(LedgerAdjustment.id == adjustment_id).with_for_update()
    )


def by_request_key(session: Session, request_key: str) -> LedgerAdjustment | None:
    return session.scalar(sa.select(LedgerAdjustment).where(LedgerAdjustment.request_key == request_key))
