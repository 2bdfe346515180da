"""Posting journal entries: the one path by which money moves in the ledger.

``post`` resolves (or opens) the accounts, locks them in a fixed order, checks that the entry
balances and that no artisan account goes below zero or above the tier cap, then writes the entry,
its lines, the stored balances and the ``accounts.ledger.entry_posted`` event in the caller's
transaction. A movement is posted once: ``posting_key`` (and the source event id) are unique.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import ArtisanLimits, JournalEntry, JournalLine, LedgerAccount, LedgerCase
from services.accounts.domain.ledger import AccountRef, Line, UnbalancedEntry, check_balanced, shown_balance
from shared.db import UnitOfWork, utcnow
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


def account_for(session: Session, ref: AccountRef, currency: str, *, lock: bool = False) -> LedgerAccount:
    """The ledger account ``ref`` in ``currency``, opened on first use."""
    query = sa.select(LedgerAccount).where(
        LedgerAccount.owner_type == ref.owner_type,
        LedgerAccount.owner_id == ref.owner_id,
        LedgerAccount.kind == ref.kind,
        LedgerAccount.currency == currency,
    )
    if lock:
        # populate_existing: an account the caller read earlier in this session would otherwise keep
        # the balance it had then, and post() would check the rules against (and add to) a stale one.
        query = query.with_for_update().execution_options(populate_existing=True)
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
    return account


def already_posted(session: Session, posting_key: str) -> JournalEntry | None:
    return session.scalar(sa.select(JournalEntry).where(JournalEntry.posting_key == posting_key))


def shown(session: Session, ref: AccountRef, currency: str) -> int:
    account = account_for(session, ref, currency)
    return shown_balance(account.balance, account.normal_side)


def post(uow: UnitOfWork, posting: Posting) -> JournalEntry:
    session = uow.session
    existing = already_posted(session, posting.posting_key)
    if existing is not None:
        return existing
    amounts: dict[AccountRef, int] = defaultdict(int)
    for ref, amount in posting.lines:
        amounts[ref] += amount
    amounts = {ref: amount for ref, amount in amounts.items() if amount != 0}
    # Lock in a fixed order (by name) so two postings touching the same accounts cannot deadlock.
    accounts = {ref: account_for(session, ref, posting.currency, lock=True) for ref in sorted(amounts)}
    lines = [Line(accounts[ref].id, amount, posting.currency) for ref, amount in amounts.items()]
    check_balanced(lines)
    _check_artisan_rules(session, accounts, amounts, posting.currency)

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
    session.add(entry)
    for ref, amount in amounts.items():
        account = accounts[ref]
        account.balance += amount
        session.add(JournalLine(entry_id=entry.id, account_id=account.id, amount=amount, currency=posting.currency))
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


def _check_artisan_rules(
    session: Session, accounts: dict[AccountRef, LedgerAccount], amounts: dict[AccountRef, int], currency: str
) -> None:
    """No artisan account below zero; an artisan's total never raised above their tier cap."""
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
        held = sa.select(sa.func.coalesce(sa.func.sum(-LedgerAccount.balance), 0)).where(
            LedgerAccount.owner_type == "artisan",
            LedgerAccount.owner_id == artisan_id,
            LedgerAccount.currency == currency,
        )
        total_after = int(session.scalar(held)) + delta_total
        limits = session.get(ArtisanLimits, artisan_id)
        cap = limits.cap_amount if limits is not None and limits.kyc_status == "active" else 0
        if total_after > cap:
            raise BalanceRuleViolation(
                "tier_cap_exceeded", {"artisan_id": artisan_id, "total_after": total_after, "cap": cap}
            )


def record_case(
    uow: UnitOfWork, posting: Posting, error: BalanceRuleViolation | UnbalancedEntry, *, kind: str | None = None
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
