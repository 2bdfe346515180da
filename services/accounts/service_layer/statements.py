"""Reading the ledger: artisan statements, journal entries, the integrity check, and the balances
of the platform's and marketplaces' accounts (ledger cases: ``ledger_cases``).

Nothing here writes; money moves only through ``posting.post``. Reads that combine several
queries (an opening balance and the page after it, the integrity checks and their counts) run in
one snapshot on PostgreSQL, so a posting committed meanwhile cannot make them disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount
from services.accounts.adapters.payouts import artisans_paid_at
from services.accounts.domain.ledger import PLATFORM_OWNER, bank, shown_balance
from services.accounts.service_layer.completeness import open_gaps
from services.accounts.service_layer.ledger import check_artisan_visible
from shared.auth import Principal
from shared.db import UnitOfWork, is_postgres, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.pagination import Page, paginate

# A statement cursor is a journal line id (a positive BIGINT); longer digit strings cannot be one.
_LINE_CURSOR = re.compile(r"^[0-9]{1,18}$")


@dataclasses.dataclass(frozen=True)
class TimeRange:
    """Entries posted at or after ``start`` and before ``end`` (either may be open)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None


def _one_snapshot(session: Session) -> None:
    """Make every query of this transaction see the same committed state (PostgreSQL's default,
    READ COMMITTED, takes a new snapshot per statement). Must run before the first query."""
    if is_postgres(session):
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


# --- artisan statements ---------------------------------------------------------------------------


def artisan_statement(
    uow: UnitOfWork,
    artisan_id: str,
    principal: Principal,
    *,
    account_kind: str,
    currency: str,
    posted: TimeRange,
    limit: int,
    starting_after: str | None,
) -> dict[str, Any]:
    """One page of an artisan account's lines, oldest first, each with the balance right after it.

    Amounts are the artisan's point of view (money in is positive). Lines come in the order they
    were posted (line id), each with the balance stored beside it (``balance_after``), so a page
    costs the same however long the account's history: its opening balance is the balance after
    the line before it, found by the cursor or by the first line of the date range, and the page
    is a range of the account's line ids. A date range runs from the first line posted at or after
    ``posted.start`` to the first line posted at or after ``posted.end`` (excluded).
    """
    with uow:
        session = uow.session
        _one_snapshot(session)
        check_artisan_visible(session, artisan_id, principal)
        account = ledger.artisan_account(session, artisan_id, account_kind, currency)
        if account is None:
            raise NotFound(
                f"No {account_kind} {currency} account for artisan {artisan_id!r} (yet).", param="artisan_id"
            )

        # The page is the account's lines with ids in (after, before), the opening balance the
        # stored balance after line ``after``: from the start of the history by default.
        after, opening_stored, before = 0, 0, None
        if posted.start is not None:
            first = _first_line_posted_from(session, account.id, posted.start)
            if first is None:  # everything was posted before the range
                after, opening_stored = None, int(account.balance)
            else:
                after, opening_stored = first.id - 1, int(first.balance_after) - int(first.amount)
        if starting_after is not None:
            cursor = _cursor_line(session, account.id, starting_after)
            if after is not None and cursor.id > after:
                after, opening_stored = cursor.id, int(cursor.balance_after)
        if posted.end is not None:
            past_the_end = _first_line_posted_from(session, account.id, posted.end)
            before = None if past_the_end is None else past_the_end.id

        rows = []
        if after is not None:
            page_query = statement_lines(account.id).where(JournalLine.id > after)
            if before is not None:
                page_query = page_query.where(JournalLine.id < before)
            rows = session.execute(page_query.order_by(JournalLine.id).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = rows[:limit]

        items = [
            {
                "id": str(line_id),
                "entry_id": entry_id,
                "posted_at": posted_at,
                "cause": cause,
                "cause_id": cause_id,
                "description": description,
                "amount": _money(shown_balance(int(stored_amount), account.normal_side), account.currency),
                "running_balance": _money(
                    shown_balance(int(balance_after), account.normal_side), account.currency
                ),
            }
            for line_id, stored_amount, balance_after, entry_id, posted_at, cause, cause_id, description in rows
        ]
        return {
            "artisan_id": artisan_id,
            "account": account_kind,
            "currency": account.currency,
            "opening_balance": _money(shown_balance(opening_stored, account.normal_side), account.currency),
            "data": items,
            "has_more": has_more,
            "next_cursor": items[-1]["id"] if has_more else None,
        }


def statement_lines(account_id: str) -> sa.Select:
    """An account's lines as a statement shows them: each with its running balance and its
    entry's id, time, cause and description (the caller orders and bounds them)."""
    return (
        sa.select(
            JournalLine.id,
            JournalLine.amount,
            JournalLine.balance_after,
            JournalEntry.id,
            JournalEntry.posted_at,
            JournalEntry.cause,
            JournalEntry.cause_id,
            JournalEntry.description,
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(JournalLine.account_id == account_id)
    )


def _first_line_posted_from(session: Session, account_id: str, moment: dt.datetime) -> Any:
    """The account's first line posted at or after ``moment`` (id, amount, balance_after), if any."""
    return session.execute(
        sa.select(JournalLine.id, JournalLine.amount, JournalLine.balance_after)
        .where(JournalLine.account_id == account_id, JournalLine.posted_at >= moment)
        .order_by(JournalLine.posted_at, JournalLine.id)
        .limit(1)
    ).first()


def _cursor_line(session: Session, account_id: str, cursor: str) -> Any:
    """The cursor line (id, balance_after), which must be one of this account's lines."""
    found = None
    if _LINE_CURSOR.match(cursor):
        found = session.execute(
            sa.select(JournalLine.id, JournalLine.balance_after).where(
                JournalLine.id == int(cursor), JournalLine.account_id == account_id
            )
        ).first()
    if found is None:
        raise ValidationFailed(
            "starting_after must be the next_cursor of a previous page of this statement.",
            param="starting_after",
        )
    return found


# --- journal entries ------------------------------------------------------------------------------


def _entries_with_lines(session: Session, entries: list[JournalEntry]) -> list[dict[str, Any]]:
    """The entries as dicts, their lines fetched in one query for all of them."""
    lines_by_entry: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if entries:
        rows = session.execute(
            sa.select(
                JournalLine.entry_id,
                JournalLine.account_id,
                LedgerAccount.owner_type,
                LedgerAccount.owner_id,
                LedgerAccount.kind,
                JournalLine.amount,
                JournalLine.currency,
            )
            .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
            .where(JournalLine.entry_id.in_([entry.id for entry in entries]))
            .order_by(JournalLine.id)
        ).all()
        for entry_id, account_id, owner_type, owner_id, kind, amount, currency in rows:
            lines_by_entry[entry_id].append(
                {
                    "account_id": account_id,
                    "owner_type": owner_type,
                    "owner_id": owner_id,
                    "kind": kind,
                    "amount": int(amount),
                    "currency": currency,
                }
            )
    return [
        {
            "id": entry.id,
            "cause": entry.cause,
            "cause_id": entry.cause_id,
            "cause_event_id": entry.cause_event_id,
            "posting_key": entry.posting_key,
            "artisan_id": entry.artisan_id,
            "description": entry.description,
            "posted_at": entry.posted_at,
            "lines": lines_by_entry[entry.id],
        }
        for entry in entries
    ]


def _entries_visible_to(query: sa.Select, principal: Principal | None) -> sa.Select:
    """A bank partner sees the entries of the artisans paid at its bank and every entry that moves
    its own client-funds account (``bank:{code}``: what its statement lists); others with
    ``ledger:read`` see all."""
    if principal is None or not principal.is_bank_partner:
        return query
    code = principal.bank_code
    if code is None:
        return query.where(sa.false())
    own_bank_account = (
        sa.select(JournalLine.id)
        .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
        .where(
            JournalLine.entry_id == JournalEntry.id,
            LedgerAccount.owner_type == PLATFORM_OWNER,
            LedgerAccount.kind == bank(code).kind,
        )
    )
    return query.where(sa.or_(JournalEntry.artisan_id.in_(artisans_paid_at(code)), own_bank_account.exists()))


def list_journal_entries(
    uow: UnitOfWork,
    *,
    principal: Principal | None = None,
    cause: str | None,
    artisan_id: str | None,
    posted: TimeRange,
    limit: int,
    starting_after: str | None,
) -> Page:
    query = _entries_visible_to(sa.select(JournalEntry), principal)
    if cause:
        query = query.where(JournalEntry.cause == cause)
    if artisan_id:
        query = query.where(JournalEntry.artisan_id == artisan_id)
    if posted.start is not None:
        query = query.where(JournalEntry.posted_at >= posted.start)
    if posted.end is not None:
        query = query.where(JournalEntry.posted_at < posted.end)
    with uow:
        page = paginate(uow.session, query, JournalEntry.id, limit=limit, starting_after=starting_after)
        page.data = _entries_with_lines(uow.session, page.data)
        return page


def get_journal_entry(uow: UnitOfWork, entry_id: str, principal: Principal | None = None) -> dict[str, Any]:
    with uow:
        entry = uow.session.scalar(
            _entries_visible_to(sa.select(JournalEntry), principal).where(JournalEntry.id == entry_id)
        )
        if entry is None:
            raise NotFound(f"No journal entry {entry_id!r}.", param="entry_id")
        [found] = _entries_with_lines(uow.session, [entry])
        return found


# --- integrity ------------------------------------------------------------------------------------


def check_integrity(uow: UnitOfWork) -> dict[str, Any]:
    """Recompute the ledger's invariants from the lines, with aggregate queries only.

    lines_sum_to_zero              Σ of all lines is 0, per currency
    stored_balance_matches_lines   every account's stored balance is Σ of its lines
    balance_after_matches_lines    every line's balance_after is Σ of its account's lines up to it
                                   (in id order), so each is the previous one's plus its amount
    stored_balance_matches_last_line  every account's stored balance is its last line's
                                   balance_after (0 without lines); reported only where the stored
                                   balance is Σ of its lines (otherwise the check above says so)
    artisan_balance_not_negative   no artisan account holds less than 0 (from its lines; expected
                                   is the lowest allowed balance)
    gateway_receivable_not_negative  no ``gateway_receivable:*`` account is below 0: the gateway
                                   never owes us less than nothing (more settled or refunded than
                                   was captured means a settlement was posted twice or wrongly)
    entry_balanced                 every entry's lines sum to 0, per currency
    entry_has_two_lines            every entry has at least two lines
    succeeded_payment_in_ledger    every payment that succeeded is in the ledger: an open
                                   ``payment_not_in_ledger`` case (``completeness.py``) is a
                                   difference, expected the payment's amount, actual 0
    """
    differences: list[dict[str, Any]] = []
    with uow:
        session = uow.session
        _one_snapshot(session)
        checked_at = utcnow()  # the snapshot is taken by the first query, right after

        total = sa.func.sum(JournalLine.amount)
        for currency, actual in session.execute(
            sa.select(JournalLine.currency, total).group_by(JournalLine.currency).having(total != 0)
        ):
            differences.append(
                {"check": "lines_sum_to_zero", "currency": currency, "expected": 0, "actual": int(actual)}
            )

        per_account = (
            sa.select(JournalLine.account_id, total.label("total"))
            .group_by(JournalLine.account_id)
            .subquery()
        )
        last_line = (
            sa.select(JournalLine.account_id, JournalLine.balance_after)
            .where(
                JournalLine.id.in_(sa.select(sa.func.max(JournalLine.id)).group_by(JournalLine.account_id))
            )
            .subquery()
        )
        from_lines = sa.func.coalesce(per_account.c.total, 0)
        after_last_line = sa.func.coalesce(last_line.c.balance_after, 0)
        last_line_differs = sa.and_(
            LedgerAccount.balance == from_lines, LedgerAccount.balance != after_last_line
        )
        shown_from_lines = sa.case((LedgerAccount.normal_side == "debit", from_lines), else_=-from_lines)
        is_negative_artisan = sa.and_(LedgerAccount.owner_type == "artisan", shown_from_lines < 0)
        # Debit-normal: below zero is a stored balance below zero.
        is_negative_receivable = sa.and_(
            LedgerAccount.owner_type == "platform",
            LedgerAccount.kind.like("gateway_receivable:%"),
            shown_from_lines < 0,
        )
        # One pass over the per-account sums serves both account checks.
        suspicious_accounts = session.execute(
            sa.select(
                LedgerAccount.id,
                LedgerAccount.currency,
                LedgerAccount.balance,
                from_lines,
                shown_from_lines,
                is_negative_artisan,
                is_negative_receivable,
                after_last_line,
                last_line_differs,
            )
            .outerjoin(per_account, per_account.c.account_id == LedgerAccount.id)
            .outerjoin(last_line, last_line.c.account_id == LedgerAccount.id)
            .where(
                sa.or_(
                    LedgerAccount.balance != from_lines,
                    is_negative_artisan,
                    is_negative_receivable,
                    last_line_differs,
                )
            )
            .order_by(LedgerAccount.id)
        ).all()
        for (
            account_id,
            currency,
            stored,
            recomputed,
            shown,
            negative,
            receivable_negative,
            last_balance_after,
            last_differs,
        ) in suspicious_accounts:
            if int(stored) != int(recomputed):
                differences.append(
                    {
                        "check": "stored_balance_matches_lines",
                        "account_id": account_id,
                        "currency": currency,
                        "expected": int(recomputed),
                        "actual": int(stored),
                    }
                )
            if last_differs:
                differences.append(
                    {
                        "check": "stored_balance_matches_last_line",
                        "account_id": account_id,
                        "currency": currency,
                        "expected": int(last_balance_after),
                        "actual": int(stored),
                    }
                )
            if negative:
                differences.append(
                    {
                        "check": "artisan_balance_not_negative",
                        "account_id": account_id,
                        "currency": currency,
                        "expected": 0,
                        "actual": int(shown),
                    }
                )
            if receivable_negative:
                differences.append(
                    {
                        "check": "gateway_receivable_not_negative",
                        "account_id": account_id,
                        "currency": currency,
                        "expected": 0,
                        "actual": int(shown),
                    }
                )

        running = (
            sa.select(
                JournalLine.id,
                JournalLine.account_id,
                JournalLine.currency,
                JournalLine.balance_after,
                sa.func.sum(JournalLine.amount)
                .over(partition_by=JournalLine.account_id, order_by=JournalLine.id, rows=(None, 0))
                .label("running_sum"),
            )
        ).subquery()
        for line_id, account_id, currency, recorded, expected in session.execute(
            sa.select(
                running.c.id,
                running.c.account_id,
                running.c.currency,
                running.c.balance_after,
                running.c.running_sum,
            )
            .where(running.c.balance_after != running.c.running_sum)
            .order_by(running.c.id)
        ):
            differences.append(
                {
                    "check": "balance_after_matches_lines",
                    "account_id": account_id,
                    "line_id": int(line_id),
                    "currency": currency,
                    "expected": int(expected),
                    "actual": int(recorded),
                }
            )

        for entry_id, currency, actual in session.execute(
            sa.select(JournalLine.entry_id, JournalLine.currency, total)
            .group_by(JournalLine.entry_id, JournalLine.currency)
            .having(total != 0)
            .order_by(JournalLine.entry_id)
        ):
            differences.append(
                {
                    "check": "entry_balanced",
                    "entry_id": entry_id,
                    "currency": currency,
                    "expected": 0,
                    "actual": int(actual),
                }
            )

        line_count = sa.func.count(JournalLine.id)
        for entry_id, count in session.execute(
            sa.select(JournalEntry.id, line_count)
            .outerjoin(JournalLine, JournalLine.entry_id == JournalEntry.id)
            .group_by(JournalEntry.id)
            .having(line_count < 2)
            .order_by(JournalEntry.id)
        ):
            differences.append(
                {"check": "entry_has_two_lines", "entry_id": entry_id, "expected": 2, "actual": int(count)}
            )

        for gap in open_gaps(session):
            differences.append(
                {
                    "check": "succeeded_payment_in_ledger",
                    "payment_id": gap["payment_id"],
                    "case_id": gap["case_id"],
                    "currency": gap["currency"],
                    "expected": gap["amount"],
                    "actual": 0,
                }
            )

        accounts_checked = session.scalar(sa.select(sa.func.count()).select_from(LedgerAccount))
        entries_checked = session.scalar(sa.select(sa.func.count()).select_from(JournalEntry))
    return {
        "ok": not differences,
        "checked_at": checked_at,
        "accounts_checked": accounts_checked,
        "entries_checked": entries_checked,
        "differences": differences,
    }


# --- marketplace reserves ------------------------------------------------------------------------


def list_reserves(uow: UnitOfWork, *, below_zero: bool, limit: int, starting_after: str | None) -> Page:
    """Marketplaces' reserve accounts with their balance as people read it; ``below_zero``: only
    those below zero, which are receivables from the marketplace (a refund or dispute the reserve
    covered before it was funded). Ordered by account id (the cursor)."""
    query = sa.select(LedgerAccount).where(
        LedgerAccount.owner_type == "marketplace", LedgerAccount.kind == "reserve"
    )
    if below_zero:
        # Credit-normal: below zero shown is a stored balance above zero.
        query = query.where(LedgerAccount.balance > 0)
    with uow:
        page = paginate(uow.session, query, LedgerAccount.id, limit=limit, starting_after=starting_after)
        page.data = [
            {
                "account_id": account.id,
                "marketplace_id": account.owner_id,
                "balance": _money(shown_balance(account.balance, account.normal_side), account.currency),
                "below_zero": shown_balance(account.balance, account.normal_side) < 0,
            }
            for account in page.data
        ]
        return page


# --- the platform's and marketplaces' accounts ---------------------------------------------------


def list_ledger_accounts(
    uow: UnitOfWork, *, owner_type: str | None, limit: int, starting_after: str | None
) -> Page:
    """The accounts that are not an artisan's: the platform's own (gateway receivables, banks'
    client funds, payouts in transit, disputes held, fees, revenue) and the marketplaces'
    (commission, reserve), each with its balance as people read it. Ordered by account id."""
    owners = [owner_type] if owner_type else [PLATFORM_OWNER, "marketplace"]
    query = sa.select(LedgerAccount).where(LedgerAccount.owner_type.in_(owners))
    with uow:
        page = paginate(uow.session, query, LedgerAccount.id, limit=limit, starting_after=starting_after)
        page.data = [
            {
                "id": account.id,
                "owner_type": account.owner_type,
                "owner_id": account.owner_id,
                "kind": account.kind,
                "currency": account.currency,
                "normal_side": account.normal_side,
                "balance": _money(shown_balance(account.balance, account.normal_side), account.currency),
            }
            for account in page.data
        ]
        return page
