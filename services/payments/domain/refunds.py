"""Refunds: the moves of a refund's state, how much of a payment is left to refund, and how much of
the marketplace's commission goes back with a refund. No I/O here.

    pending ─▶ succeeded
            └▶ failed

A refund's states are the gateway's own (``RefundStatus``). Only the gateway's word moves a refund,
and only out of ``pending``: news that a refund is still pending, or news about one already
settled (a duplicate, a late snapshot), changes nothing.
"""

from __future__ import annotations

import dataclasses

from services.payments.domain.gateway import RefundStatus

R = RefundStatus
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.PENDING: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}


def refund_moves(current: str, reported: str) -> bool:
    """Whether the gateway reporting ``reported`` moves a refund that is ``current``."""
    return RefundStatus(reported) in REFUND_TRANSITIONS[RefundStatus(current)]


def proportional_fee(
    application_fee: int, captured: int, amount: int, fee_refunded: int, refunded: int
) -> int:
    """The part of the marketplace commission refunded with ``amount``, in proportion to it.

    Rounded on the running total (what should be back after this refund, less what already is),
    so refunds in several parts return exactly the whole commission once the payment is fully
    refunded, and no refund's share is ever more than the refund itself.
    """
    if refunded + amount >= captured:
        due = application_fee
    else:
        due = application_fee * (refunded + amount) // captured
    return max(0, min(due - fee_refunded, application_fee - fee_refunded, amount))


@dataclasses.dataclass(frozen=True)
class RefundRoom:
    """What is left to refund of a succeeded payment, counting the refunds still pending as given."""

    given_back: int  # refunded, and pending
    refundable: int  # of the captured amount
    fee_given_back: int  # of the commission: refunded, and pending
    fee_left: int  # of the commission

    def fee_fits(self, fee: int, amount: int) -> bool:
        """Whether a refund of ``amount`` may take back ``fee`` of the commission: no more than the
        commission left, nor than the refund itself."""
        return fee <= min(self.fee_left, amount)


def refund_room(
    *,
    captured: int,
    refunded: int,
    pending_amount: int,
    application_fee: int,
    fee_refunded: int,
    pending_fee: int,
) -> RefundRoom:
    """What is left to refund of a payment that captured ``captured`` and kept ``application_fee``,
    after the refunds done (``refunded``, ``fee_refunded``) and those pending (``pending_amount``,
    ``pending_fee``)."""
    given_back = refunded + pending_amount
    fee_given_back = fee_refunded + pending_fee
    return RefundRoom(
        given_back=given_back,
        refundable=captured - given_back,
        fee_given_back=fee_given_back,
        fee_left=application_fee - fee_given_back,
    )
