"""Payment states and the rules that move them (a refund's: ``refunds.py``; a dispute's:
``disputes.py``). No I/O here.

    requires_confirmation ─confirm─▶ processing ─▶ requires_action ─▶ processing ─▶ …
                                          │                             │
                                          ├─▶ requires_capture ─capture─▶ processing ─▶ succeeded
                                          ├─▶ succeeded
                                          └─▶ failed                    canceled (void, or before confirm)

``processing`` means "waiting on the gateway": a call in flight, or one whose outcome is unknown
(timeout). It never becomes ``failed`` unless the gateway says so, so a charge that went through
is never lost. The transitions are a table; a request for an illegal move is ``invalid_state``.

The gateway's answers and callbacks arrive duplicated and out of order. A gateway snapshot moves a
payment only forward, by rank. ``processing`` has two ranks: after a confirm it is the lowest (any
news is progress), but once the marketplace has asked to capture it ranks above
``requires_capture``, so a late "authorised" snapshot (a callback sent before the capture, or
resent) cannot undo the capture. Only a fresh read of the gateway's record, made after the capture
call is over, may say the capture did not happen and move the payment back to ``requires_capture``.

``snapshot_move`` is that decision for one snapshot, made on what it needs of the payment
(``PaymentPosition``); the service layer carries it out on the locked row.

Money the gateway holds for a payment we already called failed or canceled (a charge that landed
after recovery gave up on it) is never ignored: ``counts_as_new_charge`` tells such a charge from a
late snapshot of the old story, and ``reversal_for`` says how to give it back.
"""

from __future__ import annotations

import dataclasses
import enum

from services.payments.domain.gateway import GatewayTransaction, TransactionStatus

__all__ = [
    "PaymentPosition",
    "PaymentStatus",
    "Reversal",
    "SnapshotMove",
    "SnapshotVerdict",
    "counts_as_new_charge",
    "snapshot_move",
]


class PaymentStatus(enum.StrEnum):
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED})

S = PaymentStatus
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.REQUIRES_CONFIRMATION: frozenset({S.PROCESSING, S.CANCELED}),
    S.PROCESSING: frozenset({S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.REQUIRES_ACTION: frozenset({S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.REQUIRES_CAPTURE: frozenset({S.PROCESSING, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}

# How far along a payment is: gateway news never moves it to a lower rank, nor to the same one.
RANK = {
    S.REQUIRES_CONFIRMATION: 0,
    S.PROCESSING: 1,
    S.REQUIRES_ACTION: 2,
    S.REQUIRES_CAPTURE: 3,
    S.SUCCEEDED: 5,
    S.FAILED: 5,
    S.CANCELED: 5,
}
# ``processing`` because a capture is in flight: past requires_capture, short of the end.
CAPTURING_RANK = 4

# Which states the API's actions start from.
CONFIRMABLE = frozenset({S.REQUIRES_CONFIRMATION})
CAPTURABLE = frozenset({S.REQUIRES_CAPTURE})
CANCELABLE = frozenset({S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE})
# Waiting on the gateway or the buyer: the recovery job polls these when they sit idle.
AWAITING_GATEWAY = frozenset({S.PROCESSING, S.REQUIRES_ACTION})


def can_move(current: str, target: str) -> bool:
    return PaymentStatus(target) in TRANSITIONS[PaymentStatus(current)]


# Our failure codes for the gateway's decline codes; anything else is ``card_declined``.
FAILURE_CODES = {
    "insufficient_funds": "insufficient_funds",
    "stolen_card": "stolen_card",
    "lost_card": "lost_card",
    "expired_card": "expired_card",
    "do_not_honor": "card_declined",
    "authentication_failed": "authentication_failed",
    "wallet_declined": "wallet_declined",
    "expired": "wallet_request_expired",
}
FAILURE_MESSAGES = {
    "insufficient_funds": "The card has insufficient funds.",
    "stolen_card": "The card was reported stolen.",
    "lost_card": "The card was reported lost.",
    "expired_card": "The card has expired.",
    "card_declined": "The card was declined.",
    "authentication_failed": "The buyer did not pass 3-D Secure authentication.",
    "wallet_declined": "The buyer declined the request in their wallet.",
    "wallet_request_expired": "The buyer did not approve the wallet request in time.",
    "processing_error": "The gateway could not process the payment; nothing was charged.",
    "gateway_refused": "The gateway refused the payment request.",
}


def failure_for(transaction: GatewayTransaction) -> tuple[str, str]:
    """Our ``(failure_code, failure_message)`` for a declined or expired transaction."""
    if transaction.status == TransactionStatus.EXPIRED:
        code = "wallet_request_expired"
    elif transaction.decline_code is not None and transaction.decline_code in FAILURE_CODES:
        code = FAILURE_CODES[transaction.decline_code]
    else:
        code = "card_declined"
    return code, FAILURE_MESSAGES[code]


def status_for(transaction: GatewayTransaction, capture_method: str) -> PaymentStatus:
    """The payment status a gateway transaction status stands for (the mapping is exhaustive)."""
    status = transaction.status
    if status == TransactionStatus.ACTION_REQUIRED:
        return S.REQUIRES_ACTION
    if status == TransactionStatus.AUTHORISED:
        # Automatic capture: the gateway has authorised and is capturing; still waiting on it.
        return S.REQUIRES_CAPTURE if capture_method == "manual" else S.PROCESSING
    if status == TransactionStatus.CAPTURED:
        return S.SUCCEEDED
    if status in (TransactionStatus.DECLINED, TransactionStatus.EXPIRED):
        return S.FAILED
    if status == TransactionStatus.VOIDED:
        return S.CANCELED
    raise ValueError(f"unmapped gateway status {status!r}")


def rank(status: str, *, capturing: bool = False) -> int:
    """How far along a payment in ``status`` is; ``capturing``: the marketplace has asked to capture it."""
    status = PaymentStatus(status)
    if status == S.PROCESSING and capturing:
        return CAPTURING_RANK
    return RANK[status]


def gateway_moves(
    current: str, target: PaymentStatus, *, capturing: bool = False, fresh_read: bool = False
) -> bool:
    """Whether gateway news saying ``target`` may move a payment that is ``current``.

    ``capturing``: the payment is ``processing`` because a capture was asked for. ``fresh_read``:
    the news is our own read of the gateway's current record, made after our call ended, not a
    callback or a call's answer, either of which may be a snapshot from before the capture.
    """
    current_status = PaymentStatus(current)
    if current_status.is_final or target == current_status:
        return False
    if target not in TRANSITIONS[current_status]:
        return False
    if capturing and current_status == S.PROCESSING and target == S.REQUIRES_CAPTURE:
        # The one step back: the gateway's own record, read once the capture call can no longer be
        # in flight, still says "authorised", so the capture never reached it. Safe even if the
        # capture does land later: its "captured" news moves requires_capture on to succeeded.
        return fresh_read
    return RANK[target] > rank(current_status, capturing=capturing)


# Payments not yet in the ledger that already count against the artisan's tier cap: confirmed and
# not final (a succeeded one not yet posted counts too, see the payee's held money).
IN_FLIGHT = frozenset({S.PROCESSING, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE})


@dataclasses.dataclass(frozen=True)
class PaymentPosition:
    """What deciding a payment's move on gateway news needs to know of the payment."""

    id: str
    status: str
    capture_method: str
    gateway_reference: str | None  # the gateway's transaction id, once known
    gateway_updated_at: int  # the gateway's clock of the newest snapshot applied
    capturing: bool  # the marketplace has asked to capture it


class SnapshotVerdict(enum.Enum):
    """What a gateway snapshot does to a payment (``snapshot_move``)."""

    FOREIGN = "foreign"  # about another payment: ignored (and logged)
    SECOND_TRANSACTION = "second_transaction"  # a second gateway transaction for one payment: ignored
    STALE = "stale"  # older than the newest applied: ignored
    MONEY_HELD = "money_held"  # the gateway holds money for a failed or canceled payment
    UNCHANGED = "unchanged"  # the status the payment has: only its gateway clock moves on
    STALE_AUTHORISED = "stale_authorised"  # "authorised" while a capture is asked for: ignored
    NOT_FORWARD = "not_forward"  # a step backwards or sideways: ignored
    MOVE = "move"  # the payment moves to ``target``


@dataclasses.dataclass(frozen=True)
class SnapshotMove:
    verdict: SnapshotVerdict
    target: PaymentStatus | None = None  # the status the snapshot stands for, once it is read

    @property
    def moves(self) -> bool:
        return self.verdict is SnapshotVerdict.MOVE


def snapshot_move(
    payment: PaymentPosition, transaction: GatewayTransaction, *, fresh_read: bool = False
) -> SnapshotMove:
    """What a gateway snapshot does to ``payment``: duplicated, stale or out-of-order snapshots
    change nothing. ``fresh_read``: the snapshot is our own read of the gateway's record, made
    after our last call to it ended (see ``gateway_moves``).

    The verdicts come in the order the service layer acts on them: a snapshot that is not
    ``FOREIGN`` or ``SECOND_TRANSACTION`` names the payment's transaction (recorded if not yet known),
    and one that is past ``STALE`` and ``MONEY_HELD`` may carry the card's details.
    """
    if transaction.reference != payment.id:
        return SnapshotMove(SnapshotVerdict.FOREIGN)
    if payment.gateway_reference is not None and payment.gateway_reference != transaction.gateway_reference:
        return SnapshotMove(SnapshotVerdict.SECOND_TRANSACTION)
    # Strictly older only: the gateway's clock counts seconds, and an authorisation and its capture
    # often share one. Snapshots of the same second are ordered by rank (``gateway_moves``).
    if transaction.updated_at < payment.gateway_updated_at:
        return SnapshotMove(SnapshotVerdict.STALE)
    if payment.status in (S.FAILED, S.CANCELED) and holds_money(transaction):
        return SnapshotMove(SnapshotVerdict.MONEY_HELD)
    target = status_for(transaction, payment.capture_method)
    if target == payment.status:
        return SnapshotMove(SnapshotVerdict.UNCHANGED, target)
    if not gateway_moves(payment.status, target, capturing=payment.capturing, fresh_read=fresh_read):
        if payment.capturing and payment.status == S.PROCESSING and target == S.REQUIRES_CAPTURE:
            return SnapshotMove(SnapshotVerdict.STALE_AUTHORISED, target)
        return SnapshotMove(SnapshotVerdict.NOT_FORWARD, target)
    return SnapshotMove(SnapshotVerdict.MOVE, target)


def holds_money(transaction: GatewayTransaction) -> bool:
    """Whether the gateway has reserved or taken the buyer's money for ``transaction``."""
    return transaction.status in (TransactionStatus.AUTHORISED, TransactionStatus.CAPTURED)


class Reversal(enum.StrEnum):
    """Giving back money the gateway holds for a payment that failed or was canceled.

    ``required`` → ``voided`` (an authorisation released) or ``refund_pending`` → ``refunded``;
    ``failed`` when the gateway would not reverse it: an operator must (``requires_review``).
    """

    REQUIRED = "required"
    REFUND_PENDING = "refund_pending"
    VOIDED = "voided"
    REFUNDED = "refunded"
    FAILED = "failed"


REVERSAL_IN_PROGRESS = frozenset({Reversal.REQUIRED, Reversal.REFUND_PENDING})


def counts_as_new_charge(snapshot_at: int, final_word_at: int) -> bool:
    """Whether a snapshot of money held, for a payment we already called failed or canceled, tells
    of a charge that landed afterwards (True) or is only an old snapshot arriving late (False).

    ``snapshot_at`` is the snapshot's time and ``final_word_at`` that of the gateway's last word we
    applied (declined, voided, expired: final at the gateway), both on the gateway's clock. Only a
    strictly newer snapshot is news: one from the same second or before is part of the old story.
    """
    return snapshot_at > final_word_at


VOID, REFUND = "void", "refund"


def reversal_for(transaction: GatewayTransaction) -> str | None:
    """``VOID``, ``REFUND`` or None: how to give back what the gateway holds in ``transaction``.

    A request still waiting on the buyer is voided too, lest they approve it later.
    """
    if transaction.status in (TransactionStatus.AUTHORISED, TransactionStatus.ACTION_REQUIRED):
        return VOID
    if (
        transaction.status == TransactionStatus.CAPTURED
        and transaction.captured_amount > transaction.refunded_amount
    ):
        return REFUND
    return None
