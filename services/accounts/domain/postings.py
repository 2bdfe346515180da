"""What each money movement posts: the entry's lines, and how an amount owed by an artisan is split.

    payment succeeded   Dr gateway_receivable:{gw} gross / Cr artisan pending net /
                        Cr marketplace commission (fee - platform fee) / Cr revenue platform fee
    refund succeeded    Cr gateway_receivable refund / Dr commission fee refunded /
                        Dr artisan (this payment's pending hold, then available) / Dr marketplace reserve shortfall
    dispute opened      Dr artisan (pending hold, then available) / Dr reserve shortfall / Cr disputes_held
    dispute won         Dr disputes_held / Cr back where it came from
    dispute lost        Dr disputes_held / Cr gateway_receivable (the gateway keeps the money)
    release             Dr artisan pending / Cr artisan available, once the hold period is over
    reversal            the exact negation of the entry it reverses (``reversal_lines``)

The platform's fee (per marketplace: basis points of the gross, rounded half up, plus a fixed part;
never more than the application fee) is taken from the marketplace's commission when the payment
succeeds, so the artisan's share never sees it. A refund does not give it back: the platform keeps
what it earned, as an acquirer keeps its fee, and the marketplace returns the application fee it
refunds from its commission (which therefore carries the platform's fee of a refunded payment).

Pure functions over plain values: the service layer reads the balances and holds, these decide the
lines, and ``post`` checks and writes them.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from services.accounts.domain.ledger import AccountRef, artisan, gateway_receivable, marketplace, platform

# One line of an entry: the account, and the signed amount in minor units (+ debit, - credit).
EntryLine = tuple[AccountRef, int]


@dataclasses.dataclass(frozen=True)
class Posting:
    """A journal entry to post, once: ``posting_key`` names the movement."""

    cause: str  # payment, refund, dispute, release, payout, settlement, adjustment, bank_statement
    cause_id: str
    posting_key: str
    description: str
    currency: str
    lines: tuple[EntryLine, ...]
    artisan_id: str | None = None
    event_id: str | None = None
    reverses_entry_id: str | None = None  # a reversal: the entry whose lines it negates


# Posting keys: each names one movement, which is posted once (the key is unique).


def payment_key(payment_id: str) -> str:
    return f"payment:{payment_id}:succeeded"


def refund_key(refund_id: str) -> str:
    return f"refund:{refund_id}:succeeded"


def dispute_key(dispute_id: str, step: str) -> str:
    """``step``: ``opened``, or the outcome that closed it (``won``, ``lost``)."""
    return f"dispute:{dispute_id}:{step}"


def money_event_key(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The posting key of the movement a payments money event posts (None: another event)."""
    if event_type == "payments.payment.succeeded":
        return payment_key(data["payment_id"])
    if event_type == "payments.refund.succeeded":
        return refund_key(data["refund_id"])
    if event_type == "payments.dispute.opened":
        return dispute_key(data["dispute_id"], "opened")
    if event_type == "payments.dispute.closed":
        return dispute_key(data["dispute_id"], data["outcome"])
    return None


def net_amounts(lines: Iterable[EntryLine]) -> dict[AccountRef, int]:
    """The entry's amount per account (lines on one account added up), without accounts it leaves
    unchanged; in the order the accounts first appear."""
    amounts: dict[AccountRef, int] = defaultdict(int)
    for ref, amount in lines:
        amounts[ref] += amount
    return {ref: amount for ref, amount in amounts.items() if amount != 0}


@dataclasses.dataclass(frozen=True)
class Split:
    """How an amount owed by an artisan is covered: first the payment's pending hold, then the
    available balance, and any shortfall from the marketplace reserve (never a negative artisan)."""

    from_pending: int
    from_available: int
    from_reserve: int

    def debit_lines(self, artisan_id: str, marketplace_id: str) -> list[EntryLine]:
        """The debits that take the amount, leaving out the parts that are zero."""
        lines = [
            (artisan(artisan_id, "pending"), self.from_pending),
            (artisan(artisan_id, "available"), self.from_available),
            (marketplace(marketplace_id, "reserve"), self.from_reserve),
        ]
        return [line for line in lines if line[1]]


def split_debit(amount: int, pending_hold_remaining: int, available: int) -> Split:
    from_pending = max(0, min(amount, pending_hold_remaining))
    from_available = max(0, min(amount - from_pending, available))
    return Split(from_pending, from_available, amount - from_pending - from_available)


def split_artisan_debit(amount: int, *, hold_remaining: int, pending: int, available: int) -> Split:
    """``split_debit`` against the artisan's balances as they stand: the payment's hold can never
    give more than the pending account itself holds."""
    return split_debit(amount, min(hold_remaining, pending), available)


BASIS_POINTS = 10_000


def platform_fee(*, gross: int, application_fee: int, fee_bp: int, fee_fixed: int) -> int:
    """The platform's fee on a payment: ``fee_bp`` basis points of ``gross`` rounded half up, plus
    ``fee_fixed``; never more than the marketplace's application fee (it is taken from it), never
    below zero."""
    proportional = (gross * fee_bp * 2 + BASIS_POINTS) // (2 * BASIS_POINTS)  # half up, integers only
    return max(0, min(application_fee, proportional + fee_fixed))


def payment_lines(
    *, gateway: str, artisan_id: str, marketplace_id: str, gross: int, fee: int, platform_fee: int = 0
) -> tuple[EntryLine, ...]:
    """The gateway owes the gross; the artisan's pending gets the net, the marketplace the fee less
    the platform's fee, which goes to ``revenue`` (no revenue line without a platform fee)."""
    lines: tuple[EntryLine, ...] = (
        (gateway_receivable(gateway), gross),
        (artisan(artisan_id, "pending"), -(gross - fee)),
        (marketplace(marketplace_id, "commission"), -(fee - platform_fee)),
    )
    return (*lines, (platform("revenue"), -platform_fee)) if platform_fee else lines


def payment_posting(payment: Mapping[str, Any], *, event_id: str, fee_bp: int, fee_fixed: int) -> Posting:
    """A succeeded payment's posting, from its ``payment.succeeded`` data and the marketplace's fee
    terms: the same whether the consumer posts it alone or in a set-based batch. The platform's fee
    comes out of the marketplace's share; the artisan's net is untouched."""
    payment_id, gross = payment["payment_id"], payment["amount"]["amount"]
    fee = payment["application_fee"]["amount"]
    return Posting(
        cause="payment",
        cause_id=payment_id,
        posting_key=payment_key(payment_id),
        description=(
            f"Payment {payment_id} ({payment['method']}, {payment['gateway']} {payment['gateway_reference']})"
        ),
        currency=payment["amount"]["currency"],
        artisan_id=payment["artisan_id"],
        event_id=event_id,
        lines=payment_lines(
            gateway=payment["gateway"],
            artisan_id=payment["artisan_id"],
            marketplace_id=payment["marketplace_id"],
            gross=gross,
            fee=fee,
            platform_fee=platform_fee(gross=gross, application_fee=fee, fee_bp=fee_bp, fee_fixed=fee_fixed),
        ),
    )


def reversal_lines(lines: Iterable[EntryLine]) -> tuple[EntryLine, ...]:
    """The exact negation of an entry's lines, line by line."""
    return tuple((ref, -amount) for ref, amount in lines)


def refund_lines(
    *, gateway: str, artisan_id: str, marketplace_id: str, amount: int, fee_refunded: int, split: Split
) -> tuple[EntryLine, ...]:
    """The refund leaves the gateway; the marketplace gives its fee back, the artisan (then the
    reserve) the rest, as ``split`` (of ``amount - fee_refunded``) says."""
    return (
        (gateway_receivable(gateway), -amount),
        (marketplace(marketplace_id, "commission"), fee_refunded),
        *split.debit_lines(artisan_id, marketplace_id),
    )


def dispute_opened_lines(
    *, artisan_id: str, marketplace_id: str, amount: int, split: Split
) -> tuple[EntryLine, ...]:
    """The disputed amount is taken as ``split`` says and held until the dispute closes."""
    return (*split.debit_lines(artisan_id, marketplace_id), (platform("disputes_held"), -amount))


def dispute_closed_lines(
    *, outcome: str, gateway: str, artisan_id: str, marketplace_id: str, held: Split
) -> tuple[EntryLine, ...]:
    """What was ``held`` goes back where it came from (won) or to the gateway (lost)."""
    total = held.from_pending + held.from_available + held.from_reserve
    if outcome == "lost":
        back = [(gateway_receivable(gateway), -total)]
    else:
        back = [
            (artisan(artisan_id, "pending"), -held.from_pending),
            (artisan(artisan_id, "available"), -held.from_available),
            (marketplace(marketplace_id, "reserve"), -held.from_reserve),
        ]
    return ((platform("disputes_held"), total), *[line for line in back if line[1]])


def release_lines(artisan_id: str, amount: int) -> tuple[EntryLine, ...]:
    """Pending funds past their hold become available."""
    return ((artisan(artisan_id, "pending"), amount), (artisan(artisan_id, "available"), -amount))
