"""Posting journal entries: the one path by which money moves in the ledger.

``post`` locks the entry's accounts, and every account of an artisan it touches, with one
``SELECT … FOR UPDATE`` in a fixed order (the same statement reads the artisan's cap and whether
the movement was posted already), opening accounts on first use. It checks that the entry balances
and that no artisan account goes below zero or above the tier cap, then writes the entry, its lines
and the stored balances (one statement on PostgreSQL, three elsewhere) and records the
``accounts.ledger.entry_posted`` event, in the caller's transaction. A movement is posted once:
``posting_key`` (and the source event id) are unique.

Nothing is written before the checks pass, so a refused posting leaves the transaction as it found
it: the accounts opened for it are opened in a savepoint that the refusal rolls back.

A payment's posting is two statements on PostgreSQL (lock, write); the whole event, with the
consumer's savepoint, inbox and outbox rows and the pending hold, seven (see
tests/integration/test_ledger_statements.py, which keeps it so).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.accounts.adapters.orm import ArtisanLimits, JournalEntry, JournalLine, LedgerAccount, LedgerCase
from services.accounts.domain.ledger import AccountRef, Line, UnbalancedEntry, check_balanced, shown_balance
from shared.db import UnitOfWork, UTCDateTime, utcnow
from shared.events import make_event
from shared.ids import new_id


class BalanceRuleViolation(Exception):
    """The entry would take an artisan below zero or above their cap: nothing is posted."""

    def __init__(self, rule: str, detail: dict) -> None:
        super().__init__(rule)
        self.rule = rule
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Posting:
    cause: str  # payment, refund, dispute, release, payout, settlement, adjustment
    cause_id: str
    posting_key: str
    description: str
    currency: str
    lines: tuple[tuple[AccountRef, int], ...]  # (account, signed amount: + debit, - credit)
    artisan_id: str | None = None
    event_id: str | None = None


# -- owners this transaction knows to have accounts ----------------------------------------------

_KNOWN_OWNERS = "hirfa.accounts.owners_with_ledger_accounts"


def remember_owners(session: Session, owners: Iterable[tuple[str, str]]) -> None:
    """Note (owner type, owner id) of owners whose ledger accounts exist in this transaction (or
    were added to it), so that a batch of events asks the database once per owner.

    Accounts are never deleted, so this stays true until the transaction ends, except that a
    rollback (of the transaction or of any savepoint) may undo an account's opening: the listeners
    below forget everything then, and when the transaction ends.
    """
    known = session.info.get(_KNOWN_OWNERS)
    if known is None:
        known = session.info[_KNOWN_OWNERS] = set()
    known.update(owners)


def owner_has_known_accounts(session: Session, owner_type: str, owner_id: str) -> bool:
    return (owner_type, owner_id) in session.info.get(_KNOWN_OWNERS, ())


@sa.event.listens_for(Session, "after_soft_rollback")
def _forget_owners_after_a_rollback(session: Session, previous_transaction) -> None:
    session.info.pop(_KNOWN_OWNERS, None)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_owners_after_the_transaction(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_KNOWN_OWNERS, None)


# -- reading and locking accounts ----------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class LockedAccount:
    id: str
    normal_side: str
    balance: int  # stored: positive = debit

    @property
    def shown(self) -> int:
        return shown_balance(self.balance, self.normal_side)


@dataclasses.dataclass(frozen=True)
class _Locked:
    accounts: dict[AccountRef, LockedAccount]  # the entry's, and every account of its artisans
    caps: dict[str, int]  # artisan -> cap (0 without limits, or when KYC is not active)
    posted_entry_id: str | None  # the entry already posted under the posting key, if asked


@functools.cache
def _lock_statement(accounts: int, artisans: int, with_posting_key: bool) -> sa.Select:
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
    cap = (
        sa.select(sa.case((limits.kyc_status == "active", limits.cap_amount), else_=0))
        .where(limits.artisan_id == la.owner_id)
        .scalar_subquery()
    )
    columns = [
        la.id,
        la.owner_type,
        la.owner_id,
        la.kind,
        la.normal_side,
        la.balance,
        sa.case((la.owner_type == "artisan", cap)).label("cap"),
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


def _lock(
    session: Session, refs: Iterable[AccountRef], currency: str, posting_key: str | None = None
) -> _Locked:
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
        accounts[ref] = LockedAccount(row.id, row.normal_side, int(row.balance))
        if row.owner_type == "artisan":
            caps[row.owner_id] = int(row.cap or 0)
    remember_owners(session, ((ref.owner_type, ref.owner_id) for ref in accounts))
    if posting_key is None:
        posted_entry_id = None
    elif rows:
        posted_entry_id = rows[0].posted_entry_id
    else:
        posted_entry_id = session.scalar(
            sa.select(JournalEntry.id).where(JournalEntry.posting_key == posting_key)
        )
    return _Locked(accounts, caps, posted_entry_id)


def lock_accounts(
    session: Session, refs: Iterable[AccountRef], currency: str
) -> dict[AccountRef, LockedAccount]:
    """Lock ``refs`` (opening those not open yet) in the order ``post`` locks in; returns them as
    they stand now, for a caller that decides an entry's lines from the balances."""
    refs = set(refs)
    locked = _lock(session, refs, currency)
    missing = refs - set(locked.accounts)
    if missing:
        for ref in sorted(missing):
            account_for(session, ref, currency)
        locked = _lock(session, refs, currency)
    return locked.accounts


def already_posted(session: Session, posting_key: str) -> JournalEntry | None:
    return session.scalar(sa.select(JournalEntry).where(JournalEntry.posting_key == posting_key))


def shown(session: Session, ref: AccountRef, currency: str) -> int:
    account = account_for(session, ref, currency)
    return shown_balance(account.balance, account.normal_side)


# -- posting ---------------------------------------------------------------------------------------


@functools.cache
def _write_statements(lines: int, as_one_statement: bool) -> tuple[sa.TextClause, ...]:
    """The writes of an entry with ``lines`` lines: the entry, its lines (one multi-row INSERT, in
    the entry's order) and the stored balances of their (locked) accounts (one UPDATE).

    On PostgreSQL they are one statement (the two INSERTs as data-modifying CTEs, which run exactly
    once and together with the UPDATE, and whose foreign keys are checked at its end); elsewhere
    three. Built once per number of lines, as text: SQL expressions cannot cache a multi-row VALUES.
    """
    entry = (
        f"INSERT INTO {JournalEntry.__tablename__} "
        "(id, cause, cause_id, cause_event_id, posting_key, artisan_id, description, posted_at) "
        "VALUES (:entry_id, :cause, :cause_id, :cause_event_id, :posting_key, :artisan_id, :description, :posted_at)"
    )
    values = ", ".join(f"(:entry_id, :account_{i}, :amount_{i}, :currency)" for i in range(lines))
    entry_lines = (
        f"INSERT INTO {JournalLine.__tablename__} (entry_id, account_id, amount, currency) VALUES {values}"
    )
    cases = " ".join(f"WHEN :account_{i} THEN :amount_{i}" for i in range(lines))
    ids = ", ".join(f":account_{i}" for i in range(lines))
    balances = f"UPDATE {LedgerAccount.__tablename__} SET balance = balance + CASE id {cases} END WHERE id IN ({ids})"
    timestamp = sa.bindparam("posted_at", type_=UTCDateTime())
    amounts = [sa.bindparam(f"amount_{i}", type_=sa.BigInteger()) for i in range(lines)]
    if as_one_statement:
        return (
            sa.text(f"WITH entry AS ({entry}), lines AS ({entry_lines}) {balances}").bindparams(
                timestamp, *amounts
            ),
        )
    return (
        sa.text(entry).bindparams(timestamp),
        sa.text(entry_lines).bindparams(*amounts),
        sa.text(balances).bindparams(*amounts),
    )


def post(uow: UnitOfWork, posting: Posting) -> JournalEntry:
    """Post the entry, or return the one already posted under its posting key."""
    entry, _ = _post(uow, posting)
    return entry


def post_once(uow: UnitOfWork, posting: Posting) -> JournalEntry | None:
    """Post the entry; None when its posting key was posted already (nothing is done then)."""
    entry, posted_now = _post(uow, posting)
    return entry if posted_now else None


def _post(uow: UnitOfWork, posting: Posting) -> tuple[JournalEntry, bool]:
    session = uow.session
    amounts: dict[AccountRef, int] = defaultdict(int)
    for ref, amount in posting.lines:
        amounts[ref] += amount
    amounts = {ref: amount for ref, amount in amounts.items() if amount != 0}
    if not amounts:
        existing = already_posted(session, posting.posting_key)
        if existing is not None:
            return existing, False
        check_balanced([])  # raises: an entry needs lines
    locked = _lock(session, amounts, posting.currency, posting.posting_key)
    if locked.posted_entry_id is not None:
        return session.get(JournalEntry, locked.posted_entry_id), False
    check_balanced([Line(str(ref), amount, posting.currency) for ref, amount in amounts.items()])
    missing = sorted(set(amounts) - set(locked.accounts))
    if not missing:
        return _write(uow, posting, amounts, locked), True
    # Accounts used for the first time are opened in a savepoint: if a rule refuses the entry, the
    # refusal rolls them back and the transaction is left as it was found.
    with session.begin_nested():
        for ref in missing:
            account_for(session, ref, posting.currency)
        locked = _lock(session, amounts, posting.currency)
        return _write(uow, posting, amounts, locked), True


def _write(
    uow: UnitOfWork, posting: Posting, amounts: dict[AccountRef, int], locked: _Locked
) -> JournalEntry:
    """Check the balance rules against the locked accounts, then write entry, lines and balances."""
    _check_artisan_rules(locked, amounts)
    session = uow.session
    accounts = locked.accounts
    now = utcnow()
    entry = JournalEntry(
        id=new_id("je"),
        cause=posting.cause,
        cause_id=posting.cause_id,
        cause_event_id=posting.event_id,
        posting_key=posting.posting_key,
        artisan_id=posting.artisan_id,
        description=posting.description[:200],
        posted_at=now,
    )
    # Plain statements, not ORM objects: no unit-of-work bookkeeping, and one round trip on PostgreSQL.
    params: dict[str, object] = {
        "entry_id": entry.id,
        "cause": entry.cause,
        "cause_id": entry.cause_id,
        "cause_event_id": entry.cause_event_id,
        "posting_key": entry.posting_key,
        "artisan_id": entry.artisan_id,
        "description": entry.description,
        "posted_at": entry.posted_at,
        "currency": posting.currency,
    }
    for i, (ref, amount) in enumerate(amounts.items()):
        params[f"account_{i}"], params[f"amount_{i}"] = accounts[ref].id, amount
    connection = session.connection()
    for statement in _write_statements(len(amounts), connection.dialect.name == "postgresql"):
        connection.execute(statement, params)
    _refresh_loaded_accounts(session, locked, amounts)
    uow.add_event(
        make_event(
            "accounts.ledger.entry_posted",
            subject=posting.artisan_id or posting.cause_id,
            data={
                "entry_id": entry.id,
                "cause": posting.cause,
                "cause_id": posting.cause_id,
                "event_id": posting.event_id,
                "artisan_id": posting.artisan_id,
                "description": entry.description,
                "posted_at": now.isoformat(),
                "lines": [
                    {
                        "account": accounts[ref].id,
                        "owner_type": ref.owner_type,
                        "owner_id": ref.owner_id,
                        "kind": ref.kind,
                        "amount": amount,
                        "currency": posting.currency,
                    }
                    for ref, amount in amounts.items()
                ],
            },
        )
    )
    return entry


def _refresh_loaded_accounts(session: Session, locked: _Locked, amounts: dict[AccountRef, int]) -> None:
    """Account objects this session loaded earlier now show the balances just locked and written,
    as if read again (the balances were updated by plain SQL, behind the ORM's back)."""
    identity_map = session.identity_map
    for ref, account in locked.accounts.items():
        loaded = identity_map.get(identity_key(LedgerAccount, account.id))
        if loaded is not None:
            set_committed_value(loaded, "balance", account.balance + amounts.get(ref, 0))


def _check_artisan_rules(locked: _Locked, amounts: dict[AccountRef, int]) -> None:
    """No artisan account below zero; an artisan's total never raised above their tier cap."""
    accounts = locked.accounts
    artisans = {ref.owner_id for ref in amounts if ref.owner_type == "artisan"}
    for artisan_id in artisans:
        delta_total = 0
        for ref, amount in amounts.items():
            if ref.owner_type == "artisan" and ref.owner_id == artisan_id:
                after = shown_balance(accounts[ref].balance + amount, accounts[ref].normal_side)
                if after < 0:
                    raise BalanceRuleViolation(
                        "artisan_balance_negative",
                        {"artisan_id": artisan_id, "account": ref.kind, "balance_after": after},
                    )
                delta_total += -amount  # credit-normal: a credit (negative) adds to what they hold
        if delta_total <= 0:
            continue  # money leaving an artisan never breaks the cap
        # Everything the artisan holds in this currency: all their accounts are locked.
        held = sum(
            -account.balance
            for ref, account in accounts.items()
            if ref.owner_type == "artisan" and ref.owner_id == artisan_id
        )
        total_after = held + delta_total
        cap = locked.caps.get(artisan_id, 0)
        if total_after > cap:
            raise BalanceRuleViolation(
                "tier_cap_exceeded", {"artisan_id": artisan_id, "total_after": total_after, "cap": cap}
            )


def record_case(
    uow: UnitOfWork,
    posting: Posting,
    error: BalanceRuleViolation | UnbalancedEntry,
    *,
    kind: str | None = None,
) -> LedgerCase:
    """A posting the ledger refused, kept for an operator; the event counts as handled."""
    case = LedgerCase(
        id=new_id("lc"),
        kind=kind or getattr(error, "rule", "unbalanced_entry"),
        status="open",
        cause=posting.cause,
        cause_id=posting.cause_id,
        event_id=posting.event_id,
        artisan_id=posting.artisan_id,
        details={
            **getattr(error, "detail", {"error": str(error)}),
            "posting_key": posting.posting_key,
            "lines": [
                {"owner_type": ref.owner_type, "owner_id": ref.owner_id, "kind": ref.kind, "amount": amount}
                for ref, amount in posting.lines
            ],
        },
        created_at=utcnow(),
    )
    uow.session.add(case)
    return case
