"""Loading and locking bank accounts, and finding the account openings a partner bank still owes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.onboarding.adapters.orm import BankAccount


def locked(session: Session, account_id: str) -> BankAccount | None:
    """The account, its row held until the transaction ends (a bank's answer is applied once)."""
    return session.scalar(sa.select(BankAccount).where(BankAccount.id == account_id).with_for_update())


def openings_never_submitted(session: Session, limit: int) -> Sequence[str]:
    """Ids of pending openings the bank never acknowledged (no partner reference yet), oldest first."""
    return session.scalars(
        sa.select(BankAccount.id)
        .where(
            BankAccount.mode == "open",
            BankAccount.status == "pending",
            BankAccount.partner_reference.is_(None),
        )
        .order_by(BankAccount.id)
        .limit(limit)
    ).all()


def openings_unanswered_since(
    session: Session, submitted_before: dt.datetime, limit: int
) -> Sequence[sa.Row[str, str | None, str | None]]:
    """``(id, partner bank, partner reference)`` of pending openings submitted before
    ``submitted_before`` that the bank has not answered."""
    return session.execute(
        sa.select(BankAccount.id, BankAccount.partner_bank, BankAccount.partner_reference)
        .where(
            BankAccount.mode == "open",
            BankAccount.status == "pending",
            BankAccount.partner_reference.is_not(None),
            BankAccount.submitted_at < submitted_before,
        )
        .order_by(BankAccount.id)
        .limit(limit)
    ).all()
