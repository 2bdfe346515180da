"""Disputes (chargebacks): the moves of a dispute's state. No I/O here.

    open ─▶ won
         └▶ lost

A dispute's states are the gateway's own (``DisputeStatus``). A dispute is opened by the first
news of it, whatever that news says, and closed once: later news of a closed dispute changes
nothing. While one is open or lost, the payment is not refunded (the chargeback gives the buyer
the money back already).
"""

from __future__ import annotations

from services.payments.domain.gateway import DisputeStatus

D = DisputeStatus
DISPUTE_TRANSITIONS: dict[DisputeStatus, frozenset[DisputeStatus]] = {
    D.OPEN: frozenset({D.WON, D.LOST}),
    D.WON: frozenset(),
    D.LOST: frozenset(),
}

# The disputes that stand in the way of a refund.
BLOCKING_REFUNDS = frozenset({D.OPEN, D.LOST})


def dispute_moves(current: str, reported: str) -> bool:
    """Whether the gateway reporting ``reported`` moves a dispute that is ``current``."""
    return DisputeStatus(reported) in DISPUTE_TRANSITIONS[DisputeStatus(current)]
