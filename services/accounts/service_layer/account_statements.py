"""Bank statements of ledger accounts (``GET /v1/statements``): the client-funds account
``bank:{code}`` for the bank partner holding it, an artisan's available account for the artisan,
their marketplaces and operators.

The statement is built from the ledger alone, so a bank partner can tie every line of its own
MT940 or camt.053 to a journal entry:

- the opening balance is the account's ledger balance at the first day's start (UTC), the closing
  balance at the last day's end, each one SUM over the lines before that instant;
- every line is one journal line, with its entry id (the statement's ``bank_reference``) and the
  reference of what caused it (``reference``: the payout, payment, refund… id);
- amounts are the holder's point of view (``domain.ledger.shown_balance``): for ``bank:{code}``,
  a debit-normal asset of Hirfa, a debit is money in; for an artisan's available account
  (credit-normal, what Hirfa owes them), a credit is money in.

So closing = opening + Σ lines, and the lines' total is the ledger's movement over the days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re

import sqlalchemy as sa

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount
from services.accounts.domain.ledger import ArtisanAccountKind, bank, shown_balance
from services.accounts.service_layer.ledger import check_artisan_visible
from services.accounts.service_layer.statements import _one_snapshot, statement_lines
from shared.auth import Principal
from shared.auth.principal import is_bank_code
from shared.auth.scopes import Role
from shared.bank_statements import Balance, Statement, StatementEntry
from shared.db import UnitOfWork
from shared.errors import NotFound, ValidationFailed

# The longest range one statement covers: a quarter. Longer ranges are asked for piece by piece.
MAX_DAYS = 92

_ARTISAN_ID = re.compile(r"^art_[0-9A-Za-z]{1,36}$")
_BANK_ACCOUNT = re.compile(r"^bank:(.*)$")

# SWIFT transaction type identification codes by journal cause: transfers are transfers, anything
# else is "miscellaneous" (no charges or returned items are posted by Hirfa's own ledger today).
_TRANSACTION_TYPES = {"payout": "NTRF", "settlement": "NTRF", "commission_payout": "NTRF"}


@dataclasses.dataclass(frozen=True)
class StatementAccount:
    """Whose statement: the client-funds account at a bank, or an artisan's available account."""

    bank_code: str | None = None
    artisan_id: str | None = None

    @property
    def label(self) -> str:
        return f"bank:{self.bank_code}" if self.bank_code else str(self.artisan_id)


def parse_account(value: str) -> StatementAccount:
    """``bank:{three-digit code}`` or an artisan id (``art_…``); anything else is a 422."""
    found = _BANK_ACCOUNT.match(value)
    if found and is_bank_code(found.group(1)):
        return StatementAccount(bank_code=found.group(1))
    if _ARTISAN_ID.match(value):
        return StatementAccount(artisan_id=value)
    raise ValidationFailed(
        "account must be bank:{three-digit bank code} or an artisan id (art_…).", param="account"
    )


def statement_days(
    day: dt.date | None, first: dt.date | None, last: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The days a statement covers, from ``date`` or from ``from`` and ``to`` (both inclusive)."""
    if day is not None:
        if first is not None or last is not None:
            raise ValidationFailed("Give either date or from and to, not both.", param="date")
        return day, day
    if first is None or last is None:
        raise ValidationFailed("Give date, or from and to (dates, both inclusive).", param="date")
    if last < first:
        raise ValidationFailed("to must not be before from.", param="to")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationFailed(f"A statement covers at most {MAX_DAYS} days.", param="to")
    return first, last


def _check_visible(session, account: StatementAccount, principal: Principal) -> None:
    """``bank:{code}``: its bank partner and operators only; an artisan's: ``check_artisan_visible``.
    Anything else is "not found", so a bank cannot even learn another bank's account exists."""
    if account.artisan_id is not None:
        check_artisan_visible(session, account.artisan_id, principal)
        return
    allowed = principal.acts_as(Role.OPERATOR) or (
        principal.is_bank_partner and principal.bank_code == account.bank_code
    )
    if not allowed:
        raise NotFound(f"No statement for {account.label!r}.", param="account")


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _statement_id(account: StatementAccount, first: dt.date, last: dt.date) -> str:
    """16 characters at most (MT940 :20:): the first day, then a digest of the account and range."""
    digest = hashlib.sha256(f"{account.label}|{first}|{last}".encode()).hexdigest()[:8].upper()
    return f"H{first:%y%m%d}{digest}"


def build_statement(
    uow: UnitOfWork,
    account: StatementAccount,
    principal: Principal,
    *,
    first_day: dt.date,
    last_day: dt.date,
    currency: str,
    bank_code: str,
) -> Statement:
    """The statement of ``account`` for ``first_day``..``last_day`` (UTC days, inclusive).

    ``bank_code`` is the bank holding an artisan's money (the client funds); a ``bank:{code}``
    statement is at its own bank.
    """
    start, end = _start_of(first_day), _start_of(last_day + dt.timedelta(days=1))
    with uow:
        session = uow.session
        _one_snapshot(session)  # opening, lines and closing from one committed state
        _check_visible(session, account, principal)
        if account.bank_code is not None:
            ref = bank(account.bank_code)
            found = session.scalar(
                sa.select(LedgerAccount).where(
                    LedgerAccount.owner_type == ref.owner_type,
                    LedgerAccount.owner_id == ref.owner_id,
                    LedgerAccount.kind == ref.kind,
                    LedgerAccount.currency == currency,
                )
            )
        else:
            found = ledger.artisan_account(
                session, account.artisan_id, ArtisanAccountKind.AVAILABLE, currency
            )
        if found is None:
            raise NotFound(f"No {currency} ledger account for {account.label!r} (yet).", param="account")

        of_account = (
            sa.select(sa.func.coalesce(sa.func.sum(JournalLine.amount), 0))
            .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
            .where(JournalLine.account_id == found.id)
        )
        opening_stored = int(session.scalar(of_account.where(JournalEntry.posted_at < start)))
        closing_stored = int(session.scalar(of_account.where(JournalEntry.posted_at < end)))
        rows = session.execute(
            statement_lines(found.id)
            .where(JournalEntry.posted_at >= start, JournalEntry.posted_at < end)
            .order_by(JournalEntry.posted_at, JournalLine.id)
        ).all()
        side = found.normal_side
        opened_on = found.opened_at.date()

    entries = tuple(
        StatementEntry(
            value_date=posted_at.astimezone(dt.UTC).date(),
            booking_date=posted_at.astimezone(dt.UTC).date(),
            amount=shown_balance(int(amount), side),
            transaction_type=_TRANSACTION_TYPES.get(cause, "NMSC"),
            reference=cause_id,
            bank_reference=entry_id,
            description=f"{cause} {cause_id}: {description}",
        )
        for _line_id, amount, _balance_after, entry_id, posted_at, cause, cause_id, description in rows
    )
    return Statement(
        statement_id=_statement_id(account, first_day, last_day),
        # The n-th daily statement since the account was opened (MT940 :28C:, camt.053 ElctrncSeqNb).
        sequence_number=max((first_day - opened_on).days + 1, 1),
        account=account.label,
        bank_code=account.bank_code or bank_code,
        currency=currency,
        opening=Balance(date=first_day - dt.timedelta(days=1), amount=shown_balance(opening_stored, side)),
        closing=Balance(date=last_day, amount=shown_balance(closing_stored, side)),
        entries=entries,
        holder_name="Hirfa" if account.bank_code else "",
        created_at=dt.datetime.now(dt.UTC),
    )
