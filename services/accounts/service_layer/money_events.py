"""Ledger postings for payments' money events, and the release of pending funds.

Each event's entry is described in ``domain/postings.py``; this module reads what it needs (the
payment's pending hold, the artisan's locked balances, the dispute's hold), posts, and keeps the
holds up to date.

An event that cannot be posted yet raises ``NotPostableYet`` and is parked until it can
(``parked_events.py``): a payment above the artisan's cap (or for an artisan whose tier has not
arrived), a refund or dispute before its payment is posted, a dispute's closing before its
opening, a won dispute whose return would pass the cap. Any other refusal by a balance rule
becomes an open ledger case for operators. ``post`` writes nothing before its checks pass, so a
refusal needs no savepoint to undo.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from services.accounts.adapters import holds, ledger, marketplaces
from services.accounts.adapters.orm import ArtisanLimits, DisputeHold, PendingHold
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import UnbalancedEntry, artisan
from services.accounts.domain.postings import (
    Posting,
    Split,
    dispute_closed_lines,
    dispute_key,
    dispute_opened_lines,
    payment_key,
    payment_posting,
    refund_key,
    refund_lines,
    release_lines,
    split_artisan_debit,
)
from services.accounts.service_layer.ledger import open_artisan_accounts
from services.accounts.service_layer.parked_events import NotPostableYet, parking
from services.accounts.service_layer.payment_batches import make_post_payments
from services.accounts.service_layer.posting import post_once, record_case
from shared.db import UnitOfWork, utcnow
from shared.events import Event, parse_time
from shared.events.consumer import with_set_based_form

log = logging.getLogger(__name__)


def _post_or_record(uow: UnitOfWork, posting: Posting) -> bool:
    """Post, or record a case when a rule refuses it. Returns whether the entry was posted now
    (False: refused, or its posting key was posted already)."""
    try:
        return post_once(uow, posting) is not None
    except (BalanceRuleViolation, UnbalancedEntry) as error:
        log.warning(
            "posting refused",
            extra={"cause_id": posting.cause_id, "rule": getattr(error, "rule", "unbalanced")},
        )
        record_case(uow, posting, error)
        return False


def make_on_payment_succeeded(currency: str, hold: dt.timedelta) -> Callable[[UnitOfWork, Event], None]:
    def on_payment_succeeded(uow: UnitOfWork, event: Event) -> None:
        data = event.data
        payment_id, artisan_id = data["payment_id"], data["artisan_id"]
        gross, fee = data["amount"]["amount"], data["application_fee"]["amount"]
        net = gross - fee
        open_artisan_accounts(uow, artisan_id, currency, cause_event_id=event.id)
        fee_bp, fee_fixed = marketplaces.fee_terms(uow.session, data["marketplace_id"])
        posting = payment_posting(data, event_id=event.id, fee_bp=fee_bp, fee_fixed=fee_fixed)
        try:
            # Posted already (the same payment under another event id): post_once does nothing.
            posted_now = post_once(uow, posting) is not None
        except BalanceRuleViolation as violation:
            # The money is at the gateway: it waits for the tier (or the room) that lets it in.
            known = uow.session.get(ArtisanLimits, artisan_id) is not None
            raise NotPostableYet(
                "tier_cap_exceeded" if known else "kyc_tier_unknown",
                {**violation.detail, "posting_key": posting.posting_key},
            ) from None
        if posted_now and net > 0:
            uow.session.add(
                PendingHold(
                    payment_id=payment_id,
                    artisan_id=artisan_id,
                    marketplace_id=data["marketplace_id"],
                    currency=posting.currency,
                    held=net,
                    released=0,
                    taken=0,
                    release_at=parse_time(data["succeeded_at"]) + hold,
                )
            )

    return on_payment_succeeded


def _posted_payment_hold(uow: UnitOfWork, payment_id: str) -> PendingHold | None:
    """The payment's pending hold, locked (None when its whole amount was commission).

    Raises ``NotPostableYet`` while the payment itself is not posted: taking a refund or a dispute
    from the artisan's other money (or the marketplace reserve) for a payment the ledger has not
    credited would charge them twice once it arrives. An adjustment that took the place of the
    payment's released event holds its posting key, but credited whatever the operator chose, not
    necessarily the artisan: the refund keeps waiting for an operator then too.
    """
    hold = holds.pending_hold_locked(uow.session, payment_id)
    if hold is None:
        posted = ledger.already_posted(uow.session, payment_key(payment_id))
        if posted is None or posted.cause != "payment":
            raise NotPostableYet("payment_not_posted", {"payment_id": payment_id})
    return hold


def _split_from_artisan(
    uow: UnitOfWork, hold: PendingHold | None, artisan_id: str, amount: int, currency: str
) -> Split:
    """How ``amount`` is taken from the artisan (pending hold, available, then the reserve)."""
    # Lock the artisan's accounts before deciding the split, so a concurrent payout cannot spend
    # what this split counts on. lock_accounts locks in the order post() does (artisan accounts
    # sort before marketplace and platform ones), so no deadlock.
    locked = ledger.lock_accounts(
        uow.session, [artisan(artisan_id, "available"), artisan(artisan_id, "pending")], currency
    )
    return split_artisan_debit(
        amount,
        hold_remaining=hold.remaining if hold is not None else 0,
        pending=locked[artisan(artisan_id, "pending")].shown,
        available=locked[artisan(artisan_id, "available")].shown,
    )


def on_refund_succeeded(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    refund_id, payment_id, artisan_id = data["refund_id"], data["payment_id"], data["artisan_id"]
    currency = data["amount"]["currency"]
    amount, fee_back = data["amount"]["amount"], data["application_fee_refunded"]["amount"]
    key = refund_key(refund_id)
    if ledger.already_posted(uow.session, key):
        return
    hold = _posted_payment_hold(uow, payment_id)
    split = _split_from_artisan(uow, hold, artisan_id, amount - fee_back, currency)
    posting = Posting(
        cause="refund",
        cause_id=refund_id,
        posting_key=key,
        description=f"Refund {refund_id} of payment {payment_id}"
        + (f" ({split.from_reserve} covered by the marketplace reserve)" if split.from_reserve else ""),
        currency=currency,
        artisan_id=artisan_id,
        event_id=event.id,
        lines=refund_lines(
            gateway=data["gateway"],
            artisan_id=artisan_id,
            marketplace_id=data["marketplace_id"],
            amount=amount,
            fee_refunded=fee_back,
            split=split,
        ),
    )
    if _post_or_record(uow, posting) and hold is not None:
        hold.taken += split.from_pending


def on_dispute_opened(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    dispute_id, artisan_id = data["dispute_id"], data["artisan_id"]
    currency, amount = data["amount"]["currency"], data["amount"]["amount"]
    key = dispute_key(dispute_id, "opened")
    if ledger.already_posted(uow.session, key):
        return
    hold = _posted_payment_hold(uow, data["payment_id"])
    split = _split_from_artisan(uow, hold, artisan_id, amount, currency)
    posting = Posting(
        cause="dispute",
        cause_id=dispute_id,
        posting_key=key,
        description=f"Dispute {dispute_id} opened on payment {data['payment_id']}: funds held",
        currency=currency,
        artisan_id=artisan_id,
        event_id=event.id,
        lines=dispute_opened_lines(
            artisan_id=artisan_id, marketplace_id=data["marketplace_id"], amount=amount, split=split
        ),
    )
    if _post_or_record(uow, posting):
        if hold is not None:
            hold.taken += split.from_pending
        uow.session.add(
            DisputeHold(
                dispute_id=dispute_id,
                payment_id=data["payment_id"],
                artisan_id=artisan_id,
                marketplace_id=data["marketplace_id"],
                currency=currency,
                from_pending=split.from_pending,
                from_available=split.from_available,
                from_reserve=split.from_reserve,
                status="open",
            )
        )


def on_dispute_closed(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    dispute_id, outcome = data["dispute_id"], data["outcome"]
    key = dispute_key(dispute_id, outcome)
    session = uow.session
    if ledger.already_posted(session, key):
        return
    held = holds.dispute_hold_locked(session, dispute_id)
    if held is None:
        raise NotPostableYet("dispute_not_opened", {"dispute_id": dispute_id, "outcome": outcome})
    if held.status != "open":
        log.warning(
            "dispute closed twice; the second closing ignored",
            extra={"dispute_id": dispute_id, "outcome": outcome, "closed_as": held.status},
        )
        return
    # A won dispute tops the payment's pending hold up again. Its hold is locked before the
    # accounts, the order the release job locks in: the other way round, the two could deadlock.
    hold = None
    if outcome == "won" and held.from_pending:
        hold = holds.pending_hold_locked(session, held.payment_id)
    posting = Posting(
        cause="dispute",
        cause_id=dispute_id,
        posting_key=key,
        description=f"Dispute {dispute_id} {outcome}",
        currency=held.currency,
        artisan_id=held.artisan_id,
        event_id=event.id,
        lines=dispute_closed_lines(
            outcome=outcome,
            gateway=data["gateway"],
            artisan_id=held.artisan_id,
            marketplace_id=held.marketplace_id,
            held=Split(held.from_pending, held.from_available, held.from_reserve),
        ),
    )
    try:
        posted_now = post_once(uow, posting) is not None
    except BalanceRuleViolation as violation:
        # A won dispute gives the artisan back what was held: not above their cap. It waits in
        # disputes_held for room (a payout) or a higher tier.
        raise NotPostableYet(violation.rule, {**violation.detail, "posting_key": key}) from None
    if not posted_now:
        return
    held.status = outcome
    if hold is not None:
        hold.taken -= held.from_pending


def release_due_holds(uow_factory, *, now: dt.datetime | None = None, batch_size: int = 200) -> int:
    """Move every pending hold past its release time to available. Idempotent; safe to run often.

    Returns how many holds were released.
    """
    now = now or utcnow()
    released = 0
    after = ""
    while True:
        with uow_factory() as uow:
            session = uow.session
            due = holds.due_pending_holds_locked(session, now, after=after, limit=batch_size)
            if not due:
                return released
            for hold in due:
                amount = min(
                    hold.remaining, ledger.shown(session, artisan(hold.artisan_id, "pending"), hold.currency)
                )
                if amount <= 0:
                    continue
                posting = Posting(
                    cause="release",
                    cause_id=hold.payment_id,
                    # Cumulative amount in the key: a hold topped up again (a won dispute) can be
                    # released again, while a re-run of the same release is a no-op.
                    posting_key=f"release:{hold.payment_id}:{hold.released + amount}",
                    description=f"Hold on payment {hold.payment_id} released",
                    currency=hold.currency,
                    artisan_id=hold.artisan_id,
                    lines=release_lines(hold.artisan_id, amount),
                )
                if _post_or_record(uow, posting):
                    hold.released += amount
                    released += 1
            uow.commit()
            after = due[-1].payment_id


def make_money_handlers(currency: str, hold: dt.timedelta) -> dict[str, Callable[[UnitOfWork, Event], None]]:
    return {
        # Consecutive payments of a consumer batch are posted set-based (payment_batches.py).
        "payments.payment.succeeded": with_set_based_form(
            parking(make_on_payment_succeeded(currency, hold)), make_post_payments(currency, hold)
        ),
        "payments.refund.succeeded": parking(on_refund_succeeded),
        "payments.dispute.opened": parking(on_dispute_opened),
        "payments.dispute.closed": parking(on_dispute_closed),
    }
