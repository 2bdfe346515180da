"""Posting journal entries: the one path by which money moves in the ledger.

``post`` locks the entry's accounts, and every account of an artisan it touches, with one
``SELECT … FOR UPDATE`` in a fixed order (the same statement reads the artisan's cap and whether
the movement was posted already), opening accounts on first use. It checks that the entry balances
and that no artisan account goes below zero or above the tier cap (``domain/artisan_rules.py``),
then writes the entry, its lines and the stored balances (one statement on PostgreSQL, three
elsewhere) and records the ``accounts.ledger.entry_posted`` event, in the caller's transaction. A
movement is posted once: ``posting_key`` (and the source event id) are unique. An entry that leaves
a marketplace's reserve below zero opens a ``reserve_below_zero`` case (a receivable from the
marketplace), one open case per marketplace at a time.

Nothing is written before the checks pass, so a refused posting leaves the transaction as it found
it: the accounts opened for it are opened in a savepoint that the refusal rolls back.

A settlement file's matched lines are the exception: they move platform accounts only, so
``settlement_posting`` posts them set-based, a chunk of lines in a few statements, with the same
entries, lines, balances and events as posting them here one by one.

A payment's posting is two statements on PostgreSQL (lock, write); the whole event, with the
consumer's savepoint, inbox and outbox rows and the pending hold, seven (see
tests/integration/test_ledger_statements.py, which keeps it so).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import JournalEntry, LedgerCase
from services.accounts.domain.artisan_rules import BalanceRuleViolation, check_artisan_rules
from services.accounts.domain.ledger import AccountRef, Line, UnbalancedEntry, check_balanced, shown_balance
from services.accounts.domain.postings import Posting, net_amounts
from shared.db import UnitOfWork, utcnow
from shared.events import Event, make_event
from shared.events.envelope import make_events
from shared.ids import new_id

# The case opened when a marketplace's reserve goes below zero (one open per marketplace).
RESERVE_BELOW_ZERO = "reserve_below_zero"


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
    amounts = net_amounts(posting.lines)
    if not amounts:
        existing = ledger.already_posted(session, posting.posting_key)
        if existing is not None:
            return existing, False
        check_balanced([])  # raises: an entry needs lines
    locked = ledger.lock_for_posting(session, amounts, posting.currency, posting.posting_key)
    if locked.posted_entry_id is not None:
        return ledger.entry(session, locked.posted_entry_id), False
    check_balanced([Line(str(ref), amount, posting.currency) for ref, amount in amounts.items()])
    missing = sorted(set(amounts) - set(locked.accounts))
    if not missing:
        return _write(uow, posting, amounts, locked), True
    # Accounts used for the first time are opened in a savepoint: if a rule refuses the entry, the
    # refusal rolls them back and the transaction is left as it was found.
    with session.begin_nested():
        for ref in missing:
            ledger.account_for(session, ref, posting.currency)
        locked = ledger.lock_for_posting(session, amounts, posting.currency)
        return _write(uow, posting, amounts, locked), True


def _write(
    uow: UnitOfWork, posting: Posting, amounts: dict[AccountRef, int], locked: ledger.LockedForPosting
) -> JournalEntry:
    """Check the balance rules against the locked accounts, then write entry, lines and balances."""
    check_artisan_rules(locked.accounts, locked.caps, amounts)
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
        reverses_entry_id=posting.reverses_entry_id,
    )
    ledger.write_entry(uow.session, entry, posting.currency, amounts, accounts)
    _watch_reserves(uow, posting, amounts, accounts, entry.id)
    uow.add_event(entry_posted(posting, entry.id, now, amounts, {ref: accounts[ref].id for ref in amounts}))
    return entry


def entry_posted(
    posting: Posting,
    entry_id: str,
    posted_at: dt.datetime,
    amounts: Mapping[AccountRef, int],
    account_ids: Mapping[AccountRef, str],
) -> Event:
    """The ``accounts.ledger.entry_posted`` event of ``posting``, written as ``entry_id`` at
    ``posted_at`` with the lines ``amounts`` (on the accounts ``account_ids`` names)."""
    return make_event(
        "accounts.ledger.entry_posted",
        subject=posting.artisan_id or posting.cause_id,
        data=_entry_posted_data(posting, entry_id, posted_at.isoformat(), amounts, account_ids),
    )


def entries_posted(
    entries: Sequence[tuple[Posting, str, Mapping[AccountRef, int]]],
    posted_at: dt.datetime,
    account_ids: Mapping[AccountRef, str],
) -> list[Event]:
    """``entry_posted`` of each ``(posting, entry_id, amounts)`` of a set-based write, all posted
    at ``posted_at``: the same events, made together (``make_events``), each checked whole."""
    posted_at_text = posted_at.isoformat()
    return make_events(
        "accounts.ledger.entry_posted",
        [
            (
                posting.artisan_id or posting.cause_id,
                _entry_posted_data(posting, entry_id, posted_at_text, amounts, account_ids),
            )
            for posting, entry_id, amounts in entries
        ],
    )


def _entry_posted_data(
    posting: Posting,
    entry_id: str,
    posted_at: str,
    amounts: Mapping[AccountRef, int],
    account_ids: Mapping[AccountRef, str],
) -> dict[str, Any]:
    currency = posting.currency
    return {
        "entry_id": entry_id,
        "cause": posting.cause,
        "cause_id": posting.cause_id,
        "event_id": posting.event_id,
        "artisan_id": posting.artisan_id,
        "description": posting.description[:200],
        "posted_at": posted_at,
        **({"reverses_entry_id": posting.reverses_entry_id} if posting.reverses_entry_id else {}),
        "lines": [
            {
                "account": account_ids[ref],
                "owner_type": ref.owner_type,
                "owner_id": ref.owner_id,
                "kind": ref.kind,
                "amount": amount,
                "currency": currency,
            }
            for ref, amount in amounts.items()
        ],
    }


def _watch_reserves(
    uow: UnitOfWork,
    posting: Posting,
    amounts: dict[AccountRef, int],
    accounts: dict[AccountRef, ledger.LockedAccount],
    entry_id: str,
) -> None:
    """A marketplace reserve this entry left below zero is a receivable from the marketplace: open a
    ``reserve_below_zero`` case for it, unless one is open already; an entry that brings it back to
    zero or above (a top-up, a won dispute's return) resolves the open case. Costs nothing unless a
    reserve moved (payments never touch one), and one query when it crossed zero."""
    for ref, amount in amounts.items():
        if ref.owner_type != "marketplace" or ref.kind != "reserve":
            continue
        locked = accounts[ref]
        before = shown_balance(locked.balance, locked.normal_side)
        after = shown_balance(locked.balance + amount, locked.normal_side)
        if before < 0 <= after:
            ledger.resolve_open_reserve_case(uow.session, ref.owner_id, entry_id=entry_id, at=utcnow())
        elif after < 0 and not ledger.open_reserve_case_exists(uow.session, ref.owner_id):
            uow.session.add(
                LedgerCase(
                    id=new_id("lc"),
                    kind=RESERVE_BELOW_ZERO,
                    status="open",
                    cause="reserve",
                    cause_id=ref.owner_id,
                    # About the marketplace, not the event whose entry drew the reserve (that event
                    # was posted and is done); the entry that did is in the details.
                    event_id=None,
                    artisan_id=None,
                    details={
                        "marketplace_id": ref.owner_id,
                        "balance": {"amount": after, "currency": posting.currency},
                        "entry_id": entry_id,
                        "posting_key": posting.posting_key,
                        "event_id": posting.event_id,
                    },
                    created_at=utcnow(),
                )
            )


def record_case(
    uow: UnitOfWork,
    posting: Posting,
    error: BalanceRuleViolation | UnbalancedEntry,
    *,
    kind: str | None = None,
) -> LedgerCase:
    """A posting the ledger refused, kept for an operator; the event counts as handled."""
    detail: dict[str, Any] = getattr(error, "detail", {"error": str(error)})
    case = LedgerCase(
        id=new_id("lc"),
        kind=kind or getattr(error, "rule", "unbalanced_entry"),
        status="open",
        cause=posting.cause,
        cause_id=posting.cause_id,
        event_id=posting.event_id,
        artisan_id=posting.artisan_id,
        details={
            **detail,
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
