"""Ledger postings for payments' money events, and the release of pending funds.

    payment succeeded   Dr gateway_receivable:{gw} gross / Cr artisan pending net / Cr marketplace commission fee
    refund succeeded    Cr gateway_receivable refund / Dr commission fee refunded /
                        Dr artisan (this payment's pending hold, then available) / Dr marketplace reserve shortfall
    dispute opened      Dr artisan (pending hold, then available) / Dr reserve shortfall / Cr disputes_held
    dispute won         Dr disputes_held / Cr back where it came from
    dispute lost        Dr disputes_held / Cr gateway_receivable (the gateway keeps the money)
    release (job)       Dr artisan pending / Cr artisan available, once the hold period is over

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

import sqlalchemy as sa

from services.accounts.adapters.orm import ArtisanLimits, DisputeHold, PendingHold
from services.accounts.domain.ledger import (
    AccountRef,
    UnbalancedEntry,
    artisan,
    gateway_receivable,
    marketplace,
    platform,
    split_debit,
)
from services.accounts.service_layer.ledger import open_artisan_accounts
from services.accounts.service_layer.parked_events import NotPostableYet, parking
from services.accounts.service_layer.posting import (
    BalanceRuleViolation,
    Posting,
    already_posted,
    lock_accounts,
    post_once,
    record_case,
    shown,
)
from shared.db import UnitOfWork, utcnow
from shared.events import Event, parse_time

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
        posting = Posting(
            cause="payment",
            cause_id=payment_id,
            posting_key=f"payment:{payment_id}:succeeded",
            description=f"Payment {payment_id} ({data['method']}, {data['gateway']} {data['gateway_reference']})",
            currency=data["amount"]["currency"],
            artisan_id=artisan_id,
            event_id=event.id,
            lines=(
                (gateway_receivable(data["gateway"]), gross),
                (artisan(artisan_id, "pending"), -net),
                (marketplace(data["marketplace_id"], "commission"), -fee),
            ),
        )
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
    credited would charge them twice once it arrives.
    """
    hold = uow.session.scalar(
        sa.select(PendingHold).where(PendingHold.payment_id == payment_id).with_for_update()
    )
    if hold is None and already_posted(uow.session, f"payment:{payment_id}:succeeded") is None:
        raise NotPostableYet("payment_not_posted", {"payment_id": payment_id})
    return hold


def _take_from_artisan(
    uow: UnitOfWork,
    hold: PendingHold | None,
    artisan_id: str,
    marketplace_id: str,
    amount: int,
    currency: str,
) -> tuple[list[tuple[AccountRef, int]], tuple[int, int, int]]:
    # Lock the artisan's accounts before deciding the split, so a concurrent payout cannot spend
    # what this split counts on. lock_accounts locks in the order post() does (artisan accounts
    # sort before marketplace and platform ones), so no deadlock.
    locked = lock_accounts(
        uow.session, [artisan(artisan_id, "available"), artisan(artisan_id, "pending")], currency
    )
    available, pending = locked[artisan(artisan_id, "available")], locked[artisan(artisan_id, "pending")]
    remaining = hold.remaining if hold is not None else 0
    # The pending hold can never hold more than the pending account itself.
    remaining = min(remaining, pending.shown)
    split = split_debit(amount, remaining, available.shown)
    lines: list[tuple[AccountRef, int]] = [
        (artisan(artisan_id, "pending"), split.from_pending),
        (artisan(artisan_id, "available"), split.from_available),
        (marketplace(marketplace_id, "reserve"), split.from_reserve),
    ]
    return [line for line in lines if line[1]], (split.from_pending, split.from_available, split.from_reserve)


def on_refund_succeeded(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    refund_id, payment_id, artisan_id = data["refund_id"], data["payment_id"], data["artisan_id"]
    currency = data["amount"]["currency"]
    amount, fee_back = data["amount"]["amount"], data["application_fee_refunded"]["amount"]
    key = f"refund:{refund_id}:succeeded"
    if already_posted(uow.session, key):
        return
    hold = _posted_payment_hold(uow, payment_id)
    artisan_lines, (from_pending, _, from_reserve) = _take_from_artisan(
        uow, hold, artisan_id, data["marketplace_id"], amount - fee_back, currency
    )
    posting = Posting(
        cause="refund",
        cause_id=refund_id,
        posting_key=key,
        description=f"Refund {refund_id} of payment {payment_id}"
        + (f" ({from_reserve} covered by the marketplace reserve)" if from_reserve else ""),
        currency=currency,
        artisan_id=artisan_id,
        event_id=event.id,
        lines=(
            (gateway_receivable(data["gateway"]), -amount),
            (marketplace(data["marketplace_id"], "commission"), fee_back),
            *artisan_lines,
        ),
    )
    if _post_or_record(uow, posting) and hold is not None:
        hold.taken += from_pending


def on_dispute_opened(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    dispute_id, artisan_id = data["dispute_id"], data["artisan_id"]
    currency, amount = data["amount"]["currency"], data["amount"]["amount"]
    key = f"dispute:{dispute_id}:opened"
    if already_posted(uow.session, key):
        return
    hold = _posted_payment_hold(uow, data["payment_id"])
    artisan_lines, (from_pending, from_available, from_reserve) = _take_from_artisan(
        uow, hold, artisan_id, data["marketplace_id"], amount, currency
    )
    posting = Posting(
        cause="dispute",
        cause_id=dispute_id,
        posting_key=key,
        description=f"Dispute {dispute_id} opened on payment {data['payment_id']}: funds held",
        currency=currency,
        artisan_id=artisan_id,
        event_id=event.id,
        lines=(*artisan_lines, (platform("disputes_held"), -amount)),
    )
    if _post_or_record(uow, posting):
        if hold is not None:
            hold.taken += from_pending
        uow.session.add(
            DisputeHold(
                dispute_id=dispute_id,
                payment_id=data["payment_id"],
                artisan_id=artisan_id,
                marketplace_id=data["marketplace_id"],
                currency=currency,
                from_pending=from_pending,
                from_available=from_available,
                from_reserve=from_reserve,
                status="open",
            )
        )


def on_dispute_closed(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    dispute_id, outcome = data["dispute_id"], data["outcome"]
    key = f"dispute:{dispute_id}:{outcome}"
    session = uow.session
    if already_posted(session, key):
        return
    held = session.scalar(
        sa.select(DisputeHold).where(DisputeHold.dispute_id == dispute_id).with_for_update()
    )
    if held is None:
        raise NotPostableYet("dispute_not_opened", {"dispute_id": dispute_id, "outcome": outcome})
    if held.status != "open":
        log.warning(
            "dispute closed twice; the second closing ignored",
            extra={"dispute_id": dispute_id, "outcome": outcome, "closed_as": held.status},
        )
        return
    total = held.from_pending + held.from_available + held.from_reserve
    # A won dispute tops the payment's pending hold up again. Its hold is locked before the
    # accounts, the order the release job locks in: the other way round, the two could deadlock.
    hold = None
    if outcome == "won" and held.from_pending:
        hold = session.scalar(
            sa.select(PendingHold).where(PendingHold.payment_id == held.payment_id).with_for_update()
        )
    if outcome == "lost":
        back = [(gateway_receivable(data["gateway"]), -total)]
    else:
        back = [
            (artisan(held.artisan_id, "pending"), -held.from_pending),
            (artisan(held.artisan_id, "available"), -held.from_available),
            (marketplace(held.marketplace_id, "reserve"), -held.from_reserve),
        ]
    posting = Posting(
        cause="dispute",
        cause_id=dispute_id,
        posting_key=key,
        description=f"Dispute {dispute_id} {outcome}",
        currency=held.currency,
        artisan_id=held.artisan_id,
        event_id=event.id,
        lines=((platform("disputes_held"), total), *[line for line in back if line[1]]),
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
            holds = session.scalars(
                sa.select(PendingHold)
                .where(
                    PendingHold.release_at <= now,
                    PendingHold.held - PendingHold.released - PendingHold.taken > 0,
                    PendingHold.payment_id > after,
                )
                .order_by(PendingHold.payment_id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not holds:
                return released
            for hold in holds:
                amount = min(
                    hold.remaining, shown(session, artisan(hold.artisan_id, "pending"), hold.currency)
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
                    lines=(
                        (artisan(hold.artisan_id, "pending"), amount),
                        (artisan(hold.artisan_id, "available"), -amount),
                    ),
                )
                if _post_or_record(uow, posting):
                    hold.released += amount
                    released += 1
            uow.commit()
            after = holds[-1].payment_id


def make_money_handlers(currency: str, hold: dt.timedelta) -> dict[str, Callable[[UnitOfWork, Event], None]]:
    return {
        "payments.payment.succeeded": parking(make_on_payment_succeeded(currency, hold)),
        "payments.refund.succeeded": parking(on_refund_succeeded),
        "payments.dispute.opened": parking(on_dispute_opened),
        "payments.dispute.closed": parking(on_dispute_closed),
    }
