"""Payments posted set-based: a consumer batch's ``payments.payment.succeeded`` events in a handful
of statements, whatever their number.

``make_post_payments`` is the set-based form of ``money_events.on_payment_succeeded``: the consumer
applies consecutive payment events of a batch with it (``shared/events/consumer.py``), and it leaves
exactly what that handler, applied to each event in order, would leave: the same entries, lines
and balances, pending holds, ``accounts.ledger.entry_posted`` events, and parked events with their
cases. The work, for the whole batch at once:

1. read every event (amounts, fee, accounts), and the platform's fee terms of its marketplaces
   (the consumer has written the batch's inbox rows already);
2. lock every account of the batch's artisans, in one statement, in the order every posting locks
   in (owner type, owner id, kind: an artisan's before any marketplace's or the platform's), with
   their caps; open the accounts of artisans heard of for the first time;
3. ask which payments are posted already: after the lock, so what a concurrent consumer committed
   for the same payments (it needed the same locks) is seen;
4. decide each payment in order, in memory, against the balances the earlier ones left: post it,
   or park it when it would take its artisan above their cap, or their tier is not known yet;
5. write the ``entry_posted`` events (the outbox), then the entries, the artisans' lines (each
   with its account's running balance), their balances and the pending holds in one statement;
6. last, lock the marketplaces' and the platform's accounts every payment shares (in the same
   order), then write their lines (each with its running balance) and balances in one statement:
   other consumers wait for that lock only for this write and the commit. (An entry's artisan
   line is so numbered before its shared ones: the lines of an entry are a set, and each account's
   lines in id order still run from 0 to its balance.) On SQLite each write is a few statements.

Nothing here catches an error: an entry that does not balance, a constraint that refuses a row, a
handler bug. The consumer then rolls the whole set back and applies its events one at a time, so
the bad one fails (and is retried, then dead-lettered) on its own while the others post.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence

from services.accounts.adapters import ledger, marketplaces
from services.accounts.adapters.orm import PendingHold
from services.accounts.domain.artisan_rules import BalanceRuleViolation, check_artisan_rules
from services.accounts.domain.ledger import AccountRef, Line, check_balanced
from services.accounts.domain.postings import Posting, net_amounts, payment_posting
from services.accounts.service_layer.ledger import open_artisan_accounts
from services.accounts.service_layer.parked_events import NotPostableYet, park
from services.accounts.service_layer.posting import entries_posted
from shared.bulk_sql import Same
from shared.db import UnitOfWork, utcnow
from shared.events import Event, parse_time
from shared.events.consumer import ApplyOneByOne
from shared.ids import reserve_ulids, ulid_in_block


@dataclasses.dataclass(slots=True)
class _Payment:
    event: Event
    posting: Posting
    marketplace_id: str
    net: int
    succeeded_at: str


def make_post_payments(currency: str, hold: dt.timedelta) -> Callable[[UnitOfWork, Sequence[Event]], None]:
    def post_payments(uow: UnitOfWork, events: Sequence[Event]) -> None:
        _post_payments(uow, events, currency, hold)

    return post_payments


def _read(event: Event, fee_terms: dict[str, tuple[int, int]], uow: UnitOfWork) -> _Payment:
    """The payment's posting, as ``on_payment_succeeded`` builds it (one ``payment_posting``)."""
    data = event.data
    marketplace_id = data["marketplace_id"]
    gross, fee = data["amount"]["amount"], data["application_fee"]["amount"]
    if marketplace_id not in fee_terms:
        fee_terms[marketplace_id] = marketplaces.fee_terms(uow.session, marketplace_id)
    fee_bp, fee_fixed = fee_terms[marketplace_id]
    posting = payment_posting(data, event_id=event.id, fee_bp=fee_bp, fee_fixed=fee_fixed)
    return _Payment(event, posting, marketplace_id, gross - fee, data["succeeded_at"])


def _post_payments(uow: UnitOfWork, events: Sequence[Event], currency: str, hold: dt.timedelta) -> None:
    session = uow.session
    fee_terms: dict[str, tuple[int, int]] = {}
    payments = [_read(event, fee_terms, uow) for event in events]
    if any(payment.posting.currency != currency for payment in payments):
        raise ApplyOneByOne("a payment in another currency than the ledger's")
    artisan_ids = list(dict.fromkeys(payment.posting.artisan_id or "" for payment in payments))

    # The artisans' accounts first: they are what the rules decide on, and every posting locks
    # artisans' accounts before marketplaces' and the platform's.
    locked = ledger.lock_for_batch(session, artisan_ids, (), currency)
    with_accounts = {ref.owner_id for ref in locked.accounts}
    opened = [artisan_id for artisan_id in artisan_ids if artisan_id not in with_accounts]
    if opened:
        # Heard of for the first time (their registration has not arrived): opened as the handler
        # opens them, each announced once, then locked with the others.
        for artisan_id in opened:
            first = next(p.event for p in payments if p.posting.artisan_id == artisan_id)
            open_artisan_accounts(uow, artisan_id, currency, cause_event_id=first.id)
        locked = ledger.lock_for_batch(session, artisan_ids, (), currency)
    posted = ledger.posted_keys(session, (payment.posting.posting_key for payment in payments))

    # Each artisan's accounts as the payments decided so far leave them.
    held: dict[str, dict[AccountRef, ledger.LockedAccount]] = defaultdict(dict)
    for ref, account in locked.accounts.items():
        held[ref.owner_id][ref] = account
    accepted: list[tuple[_Payment, dict[AccountRef, int]]] = []
    for payment in payments:
        posting = payment.posting
        if posting.posting_key in posted:
            continue  # posted already (the same payment under another event id): nothing to do
        amounts = net_amounts(posting.lines)
        check_balanced([Line(ref.kind, amount, currency) for ref, amount in amounts.items()])
        artisan_accounts = held[posting.artisan_id or ""]
        try:
            check_artisan_rules(artisan_accounts, locked.caps, amounts)
        except BalanceRuleViolation as violation:
            # The money is at the gateway: it waits for the tier (or the room) that lets it in.
            known = posting.artisan_id in locked.limits_known
            waiting = NotPostableYet(
                "tier_cap_exceeded" if known else "kyc_tier_unknown",
                {**violation.detail, "posting_key": posting.posting_key},
            )
            park(uow, payment.event, waiting)
            continue
        for ref, amount in amounts.items():
            account = artisan_accounts.get(ref)
            if account is not None:
                artisan_accounts[ref] = ledger.LockedAccount(
                    id=account.id, normal_side=account.normal_side, balance=account.balance + amount
                )
        posted.add(posting.posting_key)
        accepted.append((payment, amounts))
    if accepted:
        _write(uow, accepted, locked.accounts, currency, hold)


def _write(
    uow: UnitOfWork,
    accepted: list[tuple[_Payment, dict[AccountRef, int]]],
    artisan_accounts: dict[AccountRef, ledger.LockedAccount],
    currency: str,
    hold: dt.timedelta,
) -> None:
    """Write the accepted payments' holds, events, entries, lines and balances.

    The marketplaces' and the platform's accounts (the gateway's receivable, commission, revenue)
    are shared by every payment, so every consumer waits for their locks: they are locked last,
    once everything else is written (the entries and the artisans' lines included), and held only
    for the write of their own lines and balances and the commit."""
    session = uow.session
    named = {ref for _, amounts in accepted for ref in amounts if ref.owner_type != "artisan"}
    ids = ledger.account_ids(session, named, currency)  # never change: read without a lock
    missing = named - set(ids)
    if missing:
        # A gateway's or a marketplace's first payment: its account is opened (and locked) now,
        # only for payments that post, as post() opens them.
        ids.update(
            {ref: account.id for ref, account in ledger.lock_accounts(session, missing, currency).items()}
        )
    ids.update({ref: account.id for ref, account in artisan_accounts.items()})
    now = utcnow()
    entries: list[ledger.NewEntry] = []
    lines: list[ledger.NewLine] = []
    holds: list[_Payment] = []
    posted: list[tuple[Posting, str, dict[AccountRef, int]]] = []
    head, first = reserve_ulids(len(accepted))  # the entries' ids, in posting order
    for number, (payment, amounts) in enumerate(accepted, start=first):
        posting = payment.posting
        entry_id = "je_" + ulid_in_block(head, number)
        entries.append(
            ledger.NewEntry(
                id=entry_id,
                cause_id=posting.cause_id,
                cause_event_id=posting.event_id,
                posting_key=posting.posting_key,
                artisan_id=posting.artisan_id,
                description=posting.description[:200],
            )
        )
        for ref, amount in amounts.items():
            lines.append(ledger.NewLine(entry_id, ids[ref], amount))
        if payment.net > 0:
            holds.append(payment)
        posted.append((posting, entry_id, amounts))
    for event in entries_posted(posted, now, ids):
        uow.add_event(event)
    hold_rows = (
        PendingHold.__table__,
        {
            "payment_id": [p.posting.cause_id for p in holds],
            "artisan_id": [p.posting.artisan_id for p in holds],
            "marketplace_id": [p.marketplace_id for p in holds],
            "currency": Same(currency),
            "held": [p.net for p in holds],
            "released": Same(0),
            "taken": Same(0),
            "release_at": [parse_time(p.succeeded_at) + hold for p in holds],
        },
        len(holds),
    )
    uow.write_events()  # the outbox rows, before the shared accounts are locked
    # The entries, the artisans' lines (their accounts are locked already) and the pending holds,
    # then, last, the accounts every payment shares: other consumers wait for them only for the
    # write of their lines (each line's running balance needs them locked) and the commit.
    mine = {account.id: account for account in artisan_accounts.values()}
    artisans_lines = [line for line in lines if line.account_id in mine]
    ledger.write_entries(
        session, "payment", currency, now, entries, artisans_lines, mine, other_rows=hold_rows
    )
    shared = {
        account.id: account
        for account in ledger.lock_for_batch(session, (), named, currency).accounts.values()
    }
    shared_lines = [line for line in lines if line.account_id in shared]
    if len(artisans_lines) + len(shared_lines) != len(lines):
        # A line on an account of neither part would be left out and its entry unbalanced.
        raise RuntimeError("a payment line is on an account the batch did not lock")
    ledger.write_entries(session, "payment", currency, now, [], shared_lines, shared)
