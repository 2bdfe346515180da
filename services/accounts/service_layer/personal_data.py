"""An artisan's personal data in accounts (law 09-08): their part of the export, and its erasure.

Accounts' part of the archive: the artisan's ledger accounts and their statement (every line,
oldest first, with the running balance, as ``/transactions`` shows it), their payouts, the bank
accounts payouts may go to, their payout schedule and the income statements issued to them. Only a
token onboarding minted for itself (scope ``personal_data:collect``) reads it.

Once the anti-money-laundering duty to keep them is over, ``onboarding.artisan.erased`` erases the
bank details (payout accounts, the RIB and holder name copied on each payout), the payout schedule
and the income statements issued. The ledger is not touched: its entries are immutable, name no
one but the artisan id, and keep their amounts under it, so the books still balance.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import (
    ArtisanLimits,
    IssuedStatement,
    JournalLine,
    LedgerAccount,
    Payout,
    PayoutDestination,
    PayoutSchedule,
)
from services.accounts.domain.ledger import shown_balance
from services.accounts.service_layer.statements import statement_lines
from shared.db import UnitOfWork
from shared.events import Event, parse_time

# What a payout's copy of the destination says once its artisan is erased: a RIB of zeros (it is
# a 24-digit column, and the ledger's descriptions already name only its last four digits).
ERASED_RIB = "0" * 24
ERASED_HOLDER = "Erased artisan"


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": int(amount), "currency": currency}


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def artisan_personal_data(uow: UnitOfWork, artisan_id: str) -> dict[str, Any]:
    """Everything accounts holds about ``artisan_id``; empty lists for an artisan it never heard of."""
    with uow:
        session = uow.session
        accounts = session.scalars(
            sa.select(LedgerAccount)
            .where(LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id)
            .order_by(LedgerAccount.kind, LedgerAccount.currency)
        ).all()
        schedule = session.get(PayoutSchedule, artisan_id)
        return {
            "object": "personal_data",
            "service": "accounts",
            "artisan_id": artisan_id,
            "ledger_accounts": [_statement(session, account) for account in accounts],
            "payouts": [
                _payout(payout)
                for payout in session.scalars(
                    sa.select(Payout).where(Payout.artisan_id == artisan_id).order_by(Payout.id)
                )
            ],
            "payout_destinations": [
                {
                    "bank_account_id": destination.bank_account_id,
                    "rib": destination.rib,
                    "iban": destination.iban,
                    "bank_code": destination.bank_code,
                    "bank_name": destination.bank_name,
                    "holder_name": destination.holder_name,
                    "is_default": destination.is_default,
                    "linked_at": _time(destination.linked_at),
                }
                for destination in session.scalars(
                    sa.select(PayoutDestination)
                    .where(PayoutDestination.artisan_id == artisan_id)
                    .order_by(PayoutDestination.bank_account_id)
                )
            ],
            "payout_schedule": None
            if schedule is None
            else {
                "interval": schedule.interval,
                "threshold": None
                if schedule.threshold_amount is None
                else _money(schedule.threshold_amount, schedule.currency),
                "updated_by": schedule.updated_by,
                "updated_at": _time(schedule.updated_at),
            },
            "income_statements": [
                {
                    "id": statement.id,
                    "period_from": statement.period_from,
                    "period_to": statement.period_to,
                    "issued_by": statement.issued_by,
                    "issued_at": _time(statement.issued_at),
                    # The signed statement as it was handed out (JWS compact serialisation).
                    "jws": statement.jws,
                }
                for statement in session.scalars(
                    sa.select(IssuedStatement)
                    .where(IssuedStatement.artisan_id == artisan_id)
                    .order_by(IssuedStatement.id)
                )
            ],
        }


def _statement(session: Session, account: LedgerAccount) -> dict[str, Any]:
    """One ledger account with all its lines, oldest first, from the artisan's point of view."""
    rows = session.execute(statement_lines(account.id).order_by(JournalLine.id)).all()
    side, currency = account.normal_side, account.currency
    return {
        "account": account.kind,
        "currency": currency,
        "balance": _money(shown_balance(int(account.balance), side), currency),
        "opened_at": _time(account.opened_at),
        "lines": [
            {
                "id": str(line_id),
                "entry_id": entry_id,
                "posted_at": _time(posted_at),
                "cause": cause,
                "cause_id": cause_id,
                "description": description,
                "amount": _money(shown_balance(int(amount), side), currency),
                "running_balance": _money(shown_balance(int(balance_after), side), currency),
            }
            for line_id, amount, balance_after, entry_id, posted_at, cause, cause_id, description in rows
        ],
    }


def _payout(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "amount": _money(payout.amount, payout.currency),
        "status": payout.status,
        "failure_code": payout.failure_code,
        "bank_account_id": payout.bank_account_id,
        "bank_code": payout.bank_code,
        "rib": payout.rib,
        "holder_name": payout.holder_name,
        "description": payout.description,
        "source": payout.source,
        "requested_by": payout.requested_by,
        "created_at": _time(payout.created_at),
        "submitted_at": _time(payout.submitted_at),
        "paid_at": _time(payout.paid_at),
        "failed_at": _time(payout.failed_at),
    }


def on_artisan_erased(uow: UnitOfWork, event: Event) -> None:
    """Erase the artisan's bank details, payout schedule and issued income statements (their
    verification codes find nothing from now on); the ledger keeps its amounts under the id."""
    session = uow.session
    artisan_id = event.data["artisan_id"]
    session.execute(sa.delete(PayoutDestination).where(PayoutDestination.artisan_id == artisan_id))
    session.execute(sa.delete(PayoutSchedule).where(PayoutSchedule.artisan_id == artisan_id))
    session.execute(sa.delete(IssuedStatement).where(IssuedStatement.artisan_id == artisan_id))
    session.execute(
        sa.update(Payout)
        .where(Payout.artisan_id == artisan_id)
        .values(rib=ERASED_RIB, holder_name=ERASED_HOLDER, description=None)
        .execution_options(synchronize_session=False)
    )
    limits = session.get(ArtisanLimits, artisan_id)
    if limits is not None and limits.erased_at is None:
        limits.erased_at = parse_time(event.data["erased_at"])


def is_erased(uow: UnitOfWork, artisan_id: str) -> bool:
    limits = uow.session.get(ArtisanLimits, artisan_id)
    return limits is not None and limits.erased_at is not None
