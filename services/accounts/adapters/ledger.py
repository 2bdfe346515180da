"""The ledger's accounts and journal entries in the database: opening, locking, reading, writing.

``lock_for_posting`` locks an entry's accounts, and every account of an artisan it touches, with one
``SELECT … FOR UPDATE`` in a fixed order (the same statement reads the artisans' caps and whether
the movement was posted already); ``write_entry`` writes the entry, its lines and the stored
balances (one statement on PostgreSQL, three elsewhere). ``posting.post`` decides between the two.

Every journal line carries ``balance_after``, its account's stored balance right after it. Whatever
writes lines takes it from ``balances_after`` (lines written one by one or from Python) or
``balance_after_sql`` (lines written by one INSERT … SELECT), under the accounts' locks, so an
account's lines in id order always run from 0 to its stored balance.

A batch of entries (``service_layer/payment_batches.py``) does the same in about as many statements
as one entry: ``lock_for_batch`` locks all their accounts at once, in the same order, and
``write_entries`` writes entries, lines and balances together (a batch writes its entries with
the lines of the accounts it locked first, then the other lines once their accounts are locked).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.accounts.adapters.ledger_session import owner_has_known_accounts, remember_owners
from services.accounts.adapters.orm import ArtisanLimits, JournalEntry, JournalLine, LedgerAccount, LedgerCase
from services.accounts.domain.artisan_rules import AccountBalance, artisan_cap
from services.accounts.domain.ledger import AccountRef, account_ref, shown_balance
from shared.bulk_sql import (
    Columns,
    Same,
    array_parameters,
    insert_from_arrays,
    insert_many,
    present,
    shape_of,
)
from shared.db import UTCDateTime, utcnow
from shared.ids import new_id

# -- opening accounts ------------------------------------------------------------------------------


def account_for(session: Session, ref: AccountRef, currency: str) -> LedgerAccount:
    """The ledger account ``ref`` in ``currency``, opened on first use (not locked)."""
    query = sa.select(LedgerAccount).where(
        LedgerAccount.owner_type == ref.owner_type,
        LedgerAccount.owner_id == ref.owner_id,
        LedgerAccount.kind == ref.kind,
        LedgerAccount.currency == currency,
    )
    account = session.scalar(query)
    if account is None:
        account = LedgerAccount(
            id=new_id("acct"),
            owner_type=ref.owner_type,
            owner_id=ref.owner_id,
            kind=ref.kind,
            currency=currency,
            normal_side=ref.normal_side,
            balance=0,
            opened_at=utcnow(),
        )
        # A savepoint: two postings opening the same platform account at once must not fail the
        # whole transaction of the one that loses the race.
        try:
            with session.begin_nested():
                session.add(account)
        except sa.exc.IntegrityError:
            account = session.scalar(query)
    remember_owners(session, [(ref.owner_type, ref.owner_id)])
    return account


def artisan_has_accounts(session: Session, artisan_id: str) -> bool:
    """Whether the artisan's accounts are open (asked once per transaction)."""
    if owner_has_known_accounts(session, "artisan", artisan_id):
        return True
    existing = session.scalars(
        sa.select(LedgerAccount.id).where(
            LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id
        )
    ).first()
    if existing is None:
        return False
    remember_owners(session, [("artisan", artisan_id)])
    return True


def add_artisan_accounts(
    session: Session, artisan_id: str, currency: str, kinds: Iterable[str]
) -> list[LedgerAccount]:
    accounts = [
        LedgerAccount(
            id=new_id("acct"), owner_type="artisan", owner_id=artisan_id, kind=kind, currency=currency
        )
        for kind in kinds
    ]
    session.add_all(accounts)
    remember_owners(session, [("artisan", artisan_id)])
    return accounts


# -- locking ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockedAccount(AccountBalance):
    id: str


@dataclasses.dataclass(frozen=True)
class LockedForPosting:
    accounts: dict[AccountRef, LockedAccount]  # the entry's, and every account of its artisans
    caps: dict[str, int]  # artisan -> cap (0 without limits, or when KYC is not active)
    posted_entry_id: str | None  # the entry already posted under the posting key, if asked


@functools.cache
def _lock_statement(accounts: int, artisans: int, with_posting_key: bool) -> sa.Select[Any]:
    """The locking SELECT for ``accounts`` named accounts and all accounts of ``artisans`` artisans,
    with bound parameters: built once per shape, so a posting pays no expression building and the
    database sees the same statement text (prepared after a few uses). Core, not ORM: it returns
    plain rows and skips the ORM's per-statement work."""
    la, limits, entries = LedgerAccount.__table__.c, ArtisanLimits.__table__.c, JournalEntry.__table__.c
    wanted = [
        sa.and_(
            la.owner_type == sa.bindparam(f"ref_type_{i}"),
            la.owner_id == sa.bindparam(f"ref_owner_{i}"),
            la.kind == sa.bindparam(f"ref_kind_{i}"),
        )
        for i in range(accounts)
    ]
    if artisans:
        # The cap is checked against everything the artisan holds, under the same locks.
        wanted.append(
            sa.and_(
                la.owner_type == "artisan",
                la.owner_id.in_([sa.bindparam(f"ref_artisan_{i}") for i in range(artisans)]),
            )
        )

    def artisan_limit(column: sa.ColumnElement[Any], label: str) -> sa.Label[Any]:
        limit = sa.select(column).where(limits.artisan_id == la.owner_id).scalar_subquery()
        return sa.case((la.owner_type == "artisan", limit)).label(label)

    columns = [
        la.id,
        la.owner_type,
        la.owner_id,
        la.kind,
        la.normal_side,
        la.balance,
        artisan_limit(limits.cap_amount, "cap_amount"),
        artisan_limit(limits.kyc_status, "kyc_status"),
    ]
    if with_posting_key:
        posted = sa.select(entries.id).where(entries.posting_key == sa.bindparam("ref_posting_key"))
        columns.append(posted.scalar_subquery().label("posted_entry_id"))
    return (
        sa.select(*columns)
        .where(la.currency == sa.bindparam("ref_currency"), sa.or_(*wanted))
        .order_by(la.owner_type, la.owner_id, la.kind)
        .with_for_update(of=LedgerAccount.__table__)
    )


def lock_for_posting(
    session: Session, refs: Iterable[AccountRef], currency: str, posting_key: str | None = None
) -> LockedForPosting:
    """Lock ``refs`` and every account of the artisans among them, in one statement.

    Rows are locked in (owner type, owner id, kind) order, the order every posting locks in, so two
    postings sharing accounts wait for each other instead of deadlocking; an artisan's accounts
    come before marketplace and platform ones, so locking them first (``lock_accounts``) keeps that
    order. Accounts not opened yet are simply missing from the answer. The session is flushed
    first, so accounts, limits and rows they refer to that were added but not written are seen.
    """
    refs = sorted(set(refs))
    artisans = sorted({ref.owner_id for ref in refs if ref.owner_type == "artisan"})
    params: dict[str, str] = {"ref_currency": currency}
    for i, ref in enumerate(refs):
        params[f"ref_type_{i}"], params[f"ref_owner_{i}"], params[f"ref_kind_{i}"] = (
            ref.owner_type,
            ref.owner_id,
            ref.kind,
        )
    for i, artisan_id in enumerate(artisans):
        params[f"ref_artisan_{i}"] = artisan_id
    if posting_key is not None:
        params["ref_posting_key"] = posting_key
    session.flush()  # nothing to do (and no statement) unless something is pending
    statement = _lock_statement(len(refs), len(artisans), posting_key is not None)
    rows = session.connection().execute(statement, params).all()
    accounts: dict[AccountRef, LockedAccount] = {}
    caps: dict[str, int] = {}
    for row in rows:
        ref = AccountRef(row.owner_type, row.owner_id, row.kind)
        accounts[ref] = LockedAccount(id=row.id, normal_side=row.normal_side, balance=int(row.balance))
        if row.owner_type == "artisan":
            cap_amount = None if row.cap_amount is None else int(row.cap_amount)
            caps[row.owner_id] = artisan_cap(cap_amount, row.kyc_status)
    remember_owners(session, ((ref.owner_type, ref.owner_id) for ref in accounts))
    if posting_key is None:
        posted_entry_id = None
    elif rows:
        posted_entry_id = rows[0].posted_entry_id
    else:
        posted_entry_id = session.scalar(
            sa.select(JournalEntry.id).where(JournalEntry.posting_key == posting_key)
        )
    return LockedForPosting(accounts, caps, posted_entry_id)


def lock_accounts(
    session: Session, refs: Iterable[AccountRef], currency: str
) -> dict[AccountRef, LockedAccount]:
    """Lock ``refs`` (opening those not open yet) in the order ``post`` locks in; returns them as
    they stand now, for a caller that decides an entry's lines from the balances."""
    refs = set(refs)
    locked = lock_for_posting(session, refs, currency)
    missing = refs - set(locked.accounts)
    if missing:
        for ref in sorted(missing):
            account_for(session, ref, currency)
        locked = lock_for_posting(session, refs, currency)
    return locked.accounts


# -- reading ---------------------------------------------------------------------------------------


def already_posted(session: Session, posting_key: str) -> JournalEntry | None:
    return session.scalar(sa.select(JournalEntry).where(JournalEntry.posting_key == posting_key))


def entry(session: Session, entry_id: str) -> JournalEntry | None:
    return session.get(JournalEntry, entry_id)


def shown(session: Session, ref: AccountRef, currency: str) -> int:
    """The account's balance as people read it (opened on first use)."""
    account = account_for(session, ref, currency)
    return shown_balance(account.balance, account.normal_side)


def shown_if_open(session: Session, ref: AccountRef, currency: str) -> int:
    """The account's balance as people read it (0 if not open), read as columns so no account
    object (which ``post`` would then have to refresh) lands in the session."""
    row = session.execute(
        sa.select(LedgerAccount.balance, LedgerAccount.normal_side).where(
            LedgerAccount.owner_type == ref.owner_type,
            LedgerAccount.owner_id == ref.owner_id,
            LedgerAccount.kind == ref.kind,
            LedgerAccount.currency == currency,
        )
    ).first()
    return 0 if row is None else shown_balance(row.balance, row.normal_side)


def artisan_account(session: Session, artisan_id: str, kind: str, currency: str) -> LedgerAccount | None:
    return session.scalar(
        sa.select(LedgerAccount).where(
            LedgerAccount.owner_type == "artisan",
            LedgerAccount.owner_id == artisan_id,
            LedgerAccount.kind == kind,
            LedgerAccount.currency == currency,
        )
    )


def artisan_stored_balances(session: Session, artisan_id: str) -> list[tuple[str, str, int]]:
    """(kind, currency, stored balance) of each of the artisan's accounts."""
    rows = session.execute(
        sa.select(LedgerAccount.kind, LedgerAccount.currency, LedgerAccount.balance).where(
            LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id
        )
    ).all()
    return [(kind, currency, int(balance)) for kind, currency, balance in rows]


# -- running balances ------------------------------------------------------------------------------

AccountKey = TypeVar("AccountKey", bound=Hashable)


def balances_after(opening: Mapping[AccountKey, int], lines: Iterable[tuple[AccountKey, int]]) -> list[int]:
    """Each line's ``balance_after``: its account's stored balance right after it.

    ``opening`` holds each account's stored balance as locked (by ``AccountRef`` or account id,
    as the caller keys its lines); ``lines`` are ``(account, amount)`` in the order they are
    written, which gives them their ids. Lines of one account in one batch run on from each other.
    """
    running = dict(opening)
    after = []
    for account, amount in lines:
        running[account] += amount
        after.append(running[account])
    return after


def balance_after_sql(
    opening: Mapping[str, int], *, account_id: str, amount: str, order_by: str
) -> tuple[str, dict[str, int | str]]:
    """``balances_after`` for lines written by one INSERT … SELECT: the SQL expression of a line's
    ``balance_after``, and its parameters.

    ``opening`` maps the locked accounts' ids to their stored balances; ``account_id`` and
    ``amount`` are the SELECT's expressions for a line's account and amount; ``order_by`` the
    order the lines are written in (the INSERT's ORDER BY, unique per line): a window sum over
    each account's lines of the statement, in that order, added to its balance as locked.
    """
    params: dict[str, int | str] = {}
    cases = []
    for i, (account, balance) in enumerate(sorted(opening.items())):
        params[f"opening_account_{i}"], params[f"opening_balance_{i}"] = account, balance
        cases.append(f"WHEN :opening_account_{i} THEN CAST(:opening_balance_{i} AS BIGINT)")
    sql = (
        f"(CASE {account_id} {' '.join(cases)} END) + SUM({amount}) OVER (PARTITION BY {account_id} "
        f"ORDER BY {order_by} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    return sql, params


# -- writing ---------------------------------------------------------------------------------------


@functools.cache
def _write_statements(lines: int, as_one_statement: bool) -> tuple[sa.TextClause, ...]:
    """The writes of an entry with ``lines`` lines: the entry, its lines (one multi-row INSERT, in
    the entry's order, each with its ``balance_after``) and the stored balances of their (locked)
    accounts (one UPDATE).

    On PostgreSQL they are one statement (the two INSERTs as data-modifying CTEs, which run exactly
    once and together with the UPDATE, and whose foreign keys are checked at its end); elsewhere
    three. Built once per number of lines, as text: SQL expressions cannot cache a multi-row VALUES.
    """
    entry = (
        f"INSERT INTO {JournalEntry.__tablename__} "
        "(id, cause, cause_id, cause_event_id, posting_key, artisan_id, description, posted_at, reverses_entry_id) "
        "VALUES (:entry_id, :cause, :cause_id, :cause_event_id, :posting_key, :artisan_id, :description, "
        ":posted_at, :reverses_entry_id)"
    )
    values = ", ".join(
        f"(:entry_id, :account_{i}, :amount_{i}, :currency, :posted_at, :balance_after_{i})"
        for i in range(lines)
    )
    entry_lines = (
        f"INSERT INTO {JournalLine.__tablename__} (entry_id, account_id, amount, currency, posted_at, balance_after) "
        f"VALUES {values}"
    )
    cases = " ".join(f"WHEN :account_{i} THEN :amount_{i}" for i in range(lines))
    ids = ", ".join(f":account_{i}" for i in range(lines))
    balances = f"UPDATE {LedgerAccount.__tablename__} SET balance = balance + CASE id {cases} END WHERE id IN ({ids})"
    timestamp = sa.bindparam("posted_at", type_=UTCDateTime())
    amounts = [sa.bindparam(f"amount_{i}", type_=sa.BigInteger()) for i in range(lines)]
    after = [sa.bindparam(f"balance_after_{i}", type_=sa.BigInteger()) for i in range(lines)]
    if as_one_statement:
        return (
            sa.text(f"WITH entry AS ({entry}), lines AS ({entry_lines}) {balances}").bindparams(
                timestamp, *amounts, *after
            ),
        )
    return (
        sa.text(entry).bindparams(timestamp),
        sa.text(entry_lines).bindparams(timestamp, *amounts, *after),
        sa.text(balances).bindparams(*amounts),
    )


def write_entry(
    session: Session,
    entry: JournalEntry,
    currency: str,
    amounts: Mapping[AccountRef, int],
    accounts: Mapping[AccountRef, LockedAccount],
) -> None:
    """Write ``entry`` (not added to the session), its lines (``amounts``, in order) and the new
    balances of its ``accounts`` (locked). Plain statements, not ORM objects: no unit-of-work
    bookkeeping, and one round trip on PostgreSQL."""
    params: dict[str, object] = {
        "entry_id": entry.id,
        "cause": entry.cause,
        "cause_id": entry.cause_id,
        "cause_event_id": entry.cause_event_id,
        "posting_key": entry.posting_key,
        "artisan_id": entry.artisan_id,
        "description": entry.description,
        "posted_at": entry.posted_at,
        "reverses_entry_id": entry.reverses_entry_id,
        "currency": currency,
    }
    after = balances_after({ref: accounts[ref].balance for ref in amounts}, amounts.items())
    for i, (ref, amount) in enumerate(amounts.items()):
        params[f"account_{i}"], params[f"amount_{i}"] = accounts[ref].id, amount
        params[f"balance_after_{i}"] = after[i]
    connection = session.connection()
    for statement in _write_statements(len(amounts), connection.dialect.name == "postgresql"):
        connection.execute(statement, params)
    _refresh_loaded_accounts(session, accounts, amounts)


def add_to_balances(
    session: Session, accounts: Mapping[AccountRef, LockedAccount], amounts: Mapping[AccountRef, int]
) -> None:
    """Add ``amounts`` (the sums of lines just written in bulk) to the stored balances of their
    ``accounts`` (locked), in one UPDATE."""
    moved = {ref: amount for ref, amount in amounts.items() if amount}
    if not moved:
        return
    params: dict[str, object] = {}
    for i, (ref, amount) in enumerate(moved.items()):
        params[f"account_{i}"], params[f"amount_{i}"] = accounts[ref].id, amount
    cases = " ".join(f"WHEN :account_{i} THEN :amount_{i}" for i in range(len(moved)))
    ids = ", ".join(f":account_{i}" for i in range(len(moved)))
    statement = sa.text(
        f"UPDATE {LedgerAccount.__tablename__} SET balance = balance + CASE id {cases} END WHERE id IN ({ids})"
    ).bindparams(*(sa.bindparam(f"amount_{i}", type_=sa.BigInteger()) for i in range(len(moved))))
    session.connection().execute(statement, params)
    _refresh_loaded_accounts(session, accounts, moved)


def _refresh_loaded_accounts(
    session: Session, accounts: Mapping[AccountRef, LockedAccount], amounts: Mapping[AccountRef, int]
) -> None:
    """Account objects this session loaded earlier now show the balances just locked and written,
    as if read again (the balances were updated by plain SQL, behind the ORM's back)."""
    identity_map = session.identity_map
    for ref, account in accounts.items():
        loaded = identity_map.get(identity_key(LedgerAccount, account.id))
        if loaded is not None:
            set_committed_value(loaded, "balance", account.balance + amounts.get(ref, 0))


# -- cases -----------------------------------------------------------------------------------------


def open_reserve_case_exists(session: Session, marketplace_id: str) -> bool:
    """Whether the marketplace's reserve has an open ``reserve_below_zero`` case. Two postings that
    take its reserve below zero hold its account's lock one after the other, so the second sees
    the first's case once it gets the lock."""
    return (
        session.scalar(
            sa.select(LedgerCase.id).where(
                LedgerCase.kind == "reserve_below_zero",
                LedgerCase.cause_id == marketplace_id,
                LedgerCase.status == "open",
            )
        )
        is not None
    )


def reserve_balance(session: Session, marketplace_id: str, currency: str) -> int:
    """The marketplace's reserve as people read it (below zero: the marketplace owes it), as this
    transaction sees it: an entry it just wrote counts."""
    return shown_if_open(session, AccountRef("marketplace", marketplace_id, "reserve"), currency)


def resolve_open_reserve_case(session: Session, marketplace_id: str, *, entry_id: str, at: Any) -> None:
    """The marketplace's reserve is back at zero or above: its open case is resolved by ``entry_id``."""
    case = session.scalar(
        sa.select(LedgerCase)
        .where(
            LedgerCase.kind == "reserve_below_zero",
            LedgerCase.cause_id == marketplace_id,
            LedgerCase.status == "open",
        )
        .with_for_update()
    )
    if case is not None:
        case.mark_resolved("reserve_funded", at=at, resolved_by_entry_id=entry_id)


# -- set-based posting: a batch of entries in a few statements --------------------------------------


@dataclasses.dataclass(frozen=True)
class LockedBatch:
    accounts: dict[AccountRef, LockedAccount]  # the named accounts, and every account of the artisans
    caps: dict[str, int]  # artisan -> cap (0 without limits, or when KYC is not active)
    limits_known: set[str]  # artisans whose KYC limits have arrived from onboarding


@functools.cache
def _batch_lock_statement() -> sa.Select[Any]:
    """The locking SELECT of a batch: every account of the artisans ``:artisans`` and the accounts
    named in ``:refs`` ((owner type, owner id, kind) triples), in one currency, with each artisan's
    cap; both lists expand to any length."""
    la, limits = LedgerAccount.__table__.c, ArtisanLimits.__table__.c

    def artisan_limit(column: sa.ColumnElement[Any], label: str) -> sa.Label[Any]:
        limit = sa.select(column).where(limits.artisan_id == la.owner_id).scalar_subquery()
        return sa.case((la.owner_type == "artisan", limit)).label(label)

    of_artisans = sa.and_(
        la.owner_type == "artisan", la.owner_id.in_(sa.bindparam("artisans", expanding=True))
    )
    named = sa.tuple_(la.owner_type, la.owner_id, la.kind).in_(sa.bindparam("refs", expanding=True))
    return (
        sa.select(
            la.id,
            la.owner_type,
            la.owner_id,
            la.kind,
            la.normal_side,
            la.balance,
            artisan_limit(limits.cap_amount, "cap_amount"),
            artisan_limit(limits.kyc_status, "kyc_status"),
        )
        .where(la.currency == sa.bindparam("currency"), sa.or_(of_artisans, named))
        .order_by(la.owner_type, la.owner_id, la.kind)
        .with_for_update(of=LedgerAccount.__table__)
    )


def lock_for_batch(
    session: Session,
    artisan_ids: Iterable[str],
    refs: Iterable[AccountRef],
    currency: str,
) -> LockedBatch:
    """Lock every account of ``artisan_ids`` and the accounts ``refs``, in one statement, in the
    order every posting locks in (``lock_for_posting``), so a batch and a single posting sharing
    accounts wait for each other instead of deadlocking. Accounts not opened yet are missing from
    the answer. The session is flushed first."""
    session.flush()
    params = {
        "currency": currency,
        "artisans": sorted(set(artisan_ids)),
        "refs": sorted({(ref.owner_type, ref.owner_id, ref.kind) for ref in refs}),
    }
    rows = session.connection().execute(_batch_lock_statement(), params).all()
    accounts: dict[AccountRef, LockedAccount] = {}
    caps: dict[str, int] = {}
    limits_known: set[str] = set()
    for row in rows:
        ref = account_ref(row.owner_type, row.owner_id, row.kind)
        accounts[ref] = LockedAccount(id=row.id, normal_side=row.normal_side, balance=int(row.balance))
        if row.owner_type == "artisan":
            cap_amount = None if row.cap_amount is None else int(row.cap_amount)
            caps[row.owner_id] = artisan_cap(cap_amount, row.kyc_status)
            if cap_amount is not None:
                limits_known.add(row.owner_id)
    remember_owners(session, ((ref.owner_type, ref.owner_id) for ref in accounts))
    return LockedBatch(accounts, caps, limits_known)


def account_ids(session: Session, refs: Iterable[AccountRef], currency: str) -> dict[AccountRef, str]:
    """The ids of the accounts ``refs`` that are open (an account's id never changes: no lock)."""
    refs = {(ref.owner_type, ref.owner_id, ref.kind) for ref in refs}
    if not refs:
        return {}
    la = LedgerAccount.__table__.c
    statement = sa.select(la.id, la.owner_type, la.owner_id, la.kind).where(
        la.currency == currency, sa.tuple_(la.owner_type, la.owner_id, la.kind).in_(sorted(refs))
    )
    return {
        AccountRef(row.owner_type, row.owner_id, row.kind): row.id
        for row in session.connection().execute(statement)
    }


def posted_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are posted. Asked after the accounts are locked, it also sees what a
    concurrent posting of the same movements committed meanwhile (it held the same locks)."""
    return present(session, JournalEntry.__table__.c.posting_key, keys)


@dataclasses.dataclass(slots=True)
class NewEntry:
    """An entry of a set-based write (its cause, currency and time are the batch's)."""

    id: str
    cause_id: str
    cause_event_id: str | None
    posting_key: str
    artisan_id: str | None
    description: str


@dataclasses.dataclass(slots=True)
class NewLine:
    entry_id: str
    account_id: str
    amount: int


def journal_line_columns(
    lines: Sequence[NewLine], currency: str, posted_at: Any, opening: Mapping[str, int]
) -> Columns:
    """The journal_lines rows a set-based write inserts (all in ``currency``, posted at
    ``posted_at``), column by column, in posting order (their ids follow it), each with its
    ``balance_after`` run on from ``opening`` (account id -> stored balance as locked): the one
    place those rows are spelled."""
    return {
        "entry_id": [line.entry_id for line in lines],
        "account_id": [line.account_id for line in lines],
        "amount": [line.amount for line in lines],
        "currency": Same(currency),
        "posted_at": Same(posted_at),
        "balance_after": balances_after(opening, ((line.account_id, line.amount) for line in lines)),
    }


def _entry_columns(entries: Sequence[NewEntry], cause: str, posted_at: Any) -> Columns:
    return {
        "id": [entry.id for entry in entries],
        "cause": Same(cause),
        "cause_id": [entry.cause_id for entry in entries],
        "cause_event_id": [entry.cause_event_id for entry in entries],
        "posting_key": [entry.posting_key for entry in entries],
        "artisan_id": [entry.artisan_id for entry in entries],
        "description": [entry.description for entry in entries],
        "posted_at": Same(posted_at),
    }


_MOVED_BALANCES = (
    f"UPDATE {LedgerAccount.__tablename__} SET balance = {LedgerAccount.__tablename__}.balance + moved.amount "
    "FROM unnest(CAST(%(moved_account)b AS VARCHAR(40)[]), CAST(%(moved_amount)b AS BIGINT[])) AS moved(id, amount) "
    f"WHERE {LedgerAccount.__tablename__}.id = moved.id"
)


@functools.cache
def _batch_write_sql(
    entry_shape: tuple[tuple[str, bool], ...] | None,
    line_shape: tuple[tuple[str, bool], ...],
    dialect: Any,
    other: tuple[sa.Table, tuple[tuple[str, bool], ...]] | None = None,
) -> str:
    """PostgreSQL: the entries (if any), the lines and the ``other`` table's rows (if any) as
    data-modifying CTEs of the balances' UPDATE, one statement (the lines' foreign keys are
    checked at its end, once the entries are in), as driver SQL with binary array parameters
    (``shared.bulk_sql``)."""
    writes = []
    if other is not None:
        writes.append(f"new_others AS ({insert_from_arrays(*other, dialect)})")
    if entry_shape is not None:
        writes.append(f"new_entries AS ({insert_from_arrays(JournalEntry.__table__, entry_shape, dialect)})")
    writes.append(f"new_lines AS ({insert_from_arrays(JournalLine.__table__, line_shape, dialect)})")
    return f"WITH {', '.join(writes)} {_MOVED_BALANCES}"


def write_entries(
    session: Session,
    cause: str,
    currency: str,
    posted_at: Any,
    entries: Sequence[NewEntry],
    lines: Sequence[NewLine],
    locked: Mapping[str, LockedAccount],
    other_rows: tuple[sa.Table, Columns, int] | None = None,
) -> None:
    """Write ``entries`` (of one ``cause``, in one ``currency``, posted at ``posted_at``), then
    ``lines`` (theirs, or those of entries written before in the transaction) and the stored
    balances of the accounts they move, all in ``locked`` (account id -> as it was locked): one
    statement on PostgreSQL, three elsewhere. ``other_rows`` (table, columns as ``insert_many``
    takes them, number of rows) are written with them, in the same statement on PostgreSQL.
    Account objects the session loaded show the new balances, as if read again.

    A batch may write its entries with the lines of some accounts first, and the lines of other
    accounts in a second call, once those are locked: each account's lines run on from its
    balance as locked, in the order given."""
    if other_rows is not None and not other_rows[2]:
        other_rows = None
    if not entries and not lines and other_rows is None:
        return
    connection = session.connection()
    opening = {account_id: account.balance for account_id, account in locked.items()}
    entry_columns = _entry_columns(entries, cause, posted_at)
    line_columns = journal_line_columns(lines, currency, posted_at, opening)
    moved: dict[str, int] = {}
    for line in lines:
        moved[line.account_id] = moved.get(line.account_id, 0) + line.amount
    moved = {account_id: amount for account_id, amount in moved.items() if amount}
    if connection.dialect.name == "postgresql":
        statement = _batch_write_sql(
            shape_of(entry_columns) if entries else None,
            shape_of(line_columns),
            connection.dialect,
            None if other_rows is None else (other_rows[0], shape_of(other_rows[1])),
        )
        parameters = {
            **array_parameters(JournalLine.__table__, line_columns),
            "moved_account": list(moved),
            "moved_amount": list(moved.values()),
        }
        if entries:
            parameters.update(array_parameters(JournalEntry.__table__, entry_columns))
        if other_rows is not None:
            parameters.update(array_parameters(other_rows[0], other_rows[1]))
        connection.exec_driver_sql(statement, parameters)
    else:
        if other_rows is not None:
            insert_many(session, *other_rows)
        insert_many(session, JournalEntry.__table__, entry_columns, len(entries))
        insert_many(session, JournalLine.__table__, line_columns, len(lines))
        if moved:
            connection.execute(
                sa.text(
                    f"UPDATE {LedgerAccount.__tablename__} SET balance = balance + :amount WHERE id = :id"
                ),
                [{"id": account_id, "amount": amount} for account_id, amount in moved.items()],
            )
    for account_id, loaded in _loaded_accounts(session, moved):
        set_committed_value(loaded, "balance", opening[account_id] + moved[account_id])


def _loaded_accounts(session: Session, account_ids: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(id, object) of the accounts among ``account_ids`` this session has loaded: found from the
    smaller side (a batch moves a few hundred accounts, and its session has usually loaded none)."""
    identity_map = session.identity_map
    if len(identity_map) < len(account_ids):
        # By identity key (class, primary key), never by attribute: an expired object would load.
        return [
            (primary_key[0], loaded)
            for (cls, primary_key, *_), loaded in identity_map.items()
            if cls is LedgerAccount and primary_key[0] in account_ids
        ]
    found = (
        (account_id, identity_map.get(identity_key(LedgerAccount, account_id))) for account_id in account_ids
    )
    return [(account_id, loaded) for account_id, loaded in found if loaded is not None]
