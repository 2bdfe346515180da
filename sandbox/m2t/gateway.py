"""The acquirer's book: transactions, refunds and disputes, with their state machines and callbacks.

Everything happens under one lock and callers get JSON snapshots; callbacks are sent by background
jobs outside the lock. A callback's ``data`` is the object as it was when the event happened.

Transactions (``m2t_tx_…``, unique merchant ``reference``)::

    card, test behaviour approved       -> captured (capture=true) | authorised (capture=false)
    card, declining test card           -> declined (insufficient_funds | stolen_card)
    card, 3-D Secure test card          -> three_ds_required -> (buyer + /3ds/complete)
                                           -> captured | authorised | declined (authentication_failed)
    mobile_wallet                       -> pending_approval -> captured | authorised
                                           | declined (wallet_declined) | expired (no callback)
    authorised                          -> captured (POST …/capture, once, partial allowed) | voided
    three_ds_required, pending_approval -> voided

A card captured at once goes through ``authorised`` first (same second). Refunds (``m2t_re_…``) are
``pending`` and settle ``callback_delay_seconds`` later: ``succeeded``, or ``failed``
(``refund_declined``) when the amount ends in 13 centimes; only succeeded ones count in the
transaction's ``refunded_amount``. Disputes (``m2t_dp_…``) are ``open``, then ``won`` or ``lost``; a
transaction has at most one.

Callbacks go ``callback_delay_seconds`` after the change that causes them, except a wallet's answer,
a refund's outcome and the test card's dispute, announced when they happen. The callbacks about one
transaction (its refunds and disputes included) go out one at a time, in the order things happened;
those about different transactions go in parallel. With ``out_of_order_callbacks`` on, the
callback that ends a wallet request (captured, authorised, declined or voided) is followed by a stale
``transaction.pending_approval`` snapshot, and the one of a card captured at once by a stale
``transaction.authorised`` snapshot. Each is a new event (its own id, ``created`` = its
``data.updated``) whose ``data.updated`` is strictly older than the final snapshot's: moved back a
second when both fell in the same second (so it may then read earlier than ``data.created``).
``do_not_honor`` is a decline code of the protocol that no test data produces.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import itertools
import secrets
import threading
import time
from typing import Any

from flask import current_app

from sandbox.common.callbacks import CallbackSender, new_event
from sandbox.common.errors import ApiError
from sandbox.m2t.bodies import DisputeRequest, RefundRequest, TransactionRequest
from sandbox.m2t.cards import CardToken
from sandbox.m2t.config import SandboxM2TConfig
from sandbox.m2t.settlement import (
    LATE_ENDING,
    SettlementRow,
    batch_reference,
    capture_rows,
    centimes,
    negative_row,
    utc_date,
)
from shared.test_instruments import CardBehaviour, WalletBehaviour, wallet_behaviour

DECLINE_MESSAGES = {
    "insufficient_funds": "The card has insufficient funds.",
    "stolen_card": "The card was reported stolen.",
    "authentication_failed": "The buyer did not pass 3-D Secure authentication.",
    "wallet_declined": "The buyer declined the payment in their wallet.",
    "expired": "The buyer did not answer the wallet request in time.",
    "do_not_honor": "The issuer declined the payment.",
}
REFUND_DECLINED_ENDING = 13  # a refund whose amount ends in these centimes fails

VOIDABLE = ("authorised", "three_ds_required", "pending_approval")
THREE_DS_OUTCOMES = ("authenticate", "fail")

EXTENSION_KEY = "m2t_sandbox.gateway"


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


@dataclasses.dataclass
class Transaction:
    id: str
    reference: str
    method: str
    amount: int
    currency: str
    capture: bool
    callback_url: str
    return_url: str | None
    created_at: float  # exact, for the wallet expiry; ``created`` is its second
    status: str
    updated: int
    card: CardToken | None = None
    phone_last4: str | None = None
    wallet_behaviour: WalletBehaviour | None = None
    expires_at: int | None = None
    expires_at_exact: float | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    decline_code: str | None = None
    three_ds_url: str | None = None
    three_ds_outcome: str | None = None
    captured_at: int | None = None
    capture_sequence: int | None = None
    dispute_id: str | None = None
    # The snapshot the out-of-order callback replays after the final one.
    stale_snapshot: dict[str, Any] | None = None

    @property
    def created(self) -> int:
        return int(self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "method": self.method,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "captured_amount": self.captured_amount,
            "refunded_amount": self.refunded_amount,
            "card": self.card.details() if self.card else None,
            "phone_last4": self.phone_last4,
            "decline_code": self.decline_code,
            "decline_message": DECLINE_MESSAGES.get(self.decline_code) if self.decline_code else None,
            "three_ds": {"redirect_url": self.three_ds_url} if self.three_ds_url else None,
            "wallet": {"expires_at": self.expires_at} if self.method == "mobile_wallet" else None,
            "created": self.created,
            "updated": self.updated,
        }


@dataclasses.dataclass
class Refund:
    id: str
    reference: str
    transaction_id: str
    amount: int
    currency: str
    created: int
    status: str = "pending"
    failure_code: str | None = None
    updated: int = 0
    settle_sequence: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "transaction_id": self.transaction_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "failure_code": self.failure_code,
            "created": self.created,
            "updated": self.updated,
        }


@dataclasses.dataclass
class Dispute:
    id: str
    transaction_id: str
    transaction_reference: str
    amount: int
    currency: str
    reason: str
    created: int
    status: str = "open"
    updated: int = 0
    settle_sequence: int | None = None  # set when the dispute is lost: its chargeback's order

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "transaction_id": self.transaction_id,
            "transaction_reference": self.transaction_reference,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
        }


@dataclasses.dataclass
class Outbox:
    """One transaction's callbacks, sent in order: whoever holds ``sending`` delivers them all."""

    url: str
    events: collections.deque[dict[str, Any]] = dataclasses.field(default_factory=collections.deque)
    sending: threading.Lock = dataclasses.field(default_factory=threading.Lock)


@dataclasses.dataclass(frozen=True)
class ThreeDsChallenge:
    """What the 3-D Secure page shows."""

    transaction_id: str
    amount: int
    currency: str
    brand: str
    last4: str
    outcome: str | None
    return_url: str | None


def _not_found(noun: str) -> ApiError:
    return ApiError(404, "not_found", f"No {noun} has this id.", param="id")


class Gateway:
    def __init__(self, config: SandboxM2TConfig, callbacks: CallbackSender) -> None:
        self._config = config
        self._callbacks = callbacks
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._tokens: dict[str, CardToken] = {}
        self._transactions: dict[str, Transaction] = {}
        self._transaction_ids_by_reference: dict[str, str] = {}
        self._refunds: dict[str, Refund] = {}
        self._refund_ids_by_reference: dict[str, str] = {}
        self._disputes: dict[str, Dispute] = {}
        self._outboxes: dict[str, Outbox] = {}
        # Settlement lines for transactions M2T never had with Hirfa (the test helper), by day.
        self._foreign_rows: list[tuple[int, int, SettlementRow]] = []

    # -- tokens ----------------------------------------------------------------------------------

    def add_token(self, token: CardToken) -> None:
        with self._lock:
            self._tokens[token.token] = token

    # -- transactions ----------------------------------------------------------------------------

    def create_transaction(self, request: TransactionRequest, public_url: str) -> tuple[dict[str, Any], bool]:
        """Record and decide a transaction; the flag says the answer must come late (timeout card)."""
        now = time.time()
        with self._lock:
            if request.reference in self._transaction_ids_by_reference:
                raise ApiError(
                    409,
                    "duplicate_reference",
                    "A transaction with this reference already exists.",
                    param="reference",
                )
            token = None
            if request.method == "card":
                token = self._tokens.get(request.card_token or "")
                if token is None:
                    raise ApiError(
                        422, "invalid_card_token", "No card token has this id.", param="card_token"
                    )
                if token.behaviour is CardBehaviour.PROCESSING_ERROR:
                    raise ApiError(500, "processing_error", "M2T could not process the transaction.")
            tx = Transaction(
                id=_new_id("m2t_tx_"),
                reference=request.reference,
                method=request.method,
                amount=request.amount,
                currency=request.currency,
                capture=request.capture,
                callback_url=request.callback_url,
                return_url=request.return_url,
                created_at=now,
                status="pending",
                updated=int(now),
                card=token,
            )
            self._outboxes[tx.id] = Outbox(tx.callback_url)
            if token is not None:
                self._decide_card(tx, token, public_url)
            else:
                self._request_wallet_approval(tx, request.phone or "")
            self._transactions[tx.id] = tx
            self._transaction_ids_by_reference[tx.reference] = tx.id
            slow = token is not None and token.behaviour is CardBehaviour.TIMEOUT
            return tx.to_json(), slow

    def get_transaction(self, transaction_id: str) -> dict[str, Any]:
        with self._lock:
            return self._transaction(transaction_id).to_json()

    def find_transactions(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            transaction_id = self._transaction_ids_by_reference.get(reference)
            return [] if transaction_id is None else [self._transaction(transaction_id).to_json()]

    def complete_three_ds(self, transaction_id: str) -> dict[str, Any]:
        with self._lock:
            tx = self._transaction(transaction_id)
            if tx.status != "three_ds_required":
                return tx.to_json()
            if tx.three_ds_outcome is None:
                raise ApiError(409, "authentication_pending", "The buyer has not finished 3-D Secure yet.")
            if tx.three_ds_outcome == "authenticate":
                self._authorise(tx, int(time.time()))
            else:
                self._decline(tx, "authentication_failed", int(time.time()))
            return tx.to_json()

    def capture(self, transaction_id: str, amount: int | None) -> dict[str, Any]:
        with self._lock:
            tx = self._transaction(transaction_id)
            if tx.status == "captured":
                raise ApiError(409, "already_captured", "This transaction was already captured.")
            if tx.status != "authorised":
                raise ApiError(
                    409, "invalid_status", f"A transaction in status {tx.status} cannot be captured."
                )
            amount = tx.amount if amount is None else amount
            if amount > tx.amount:
                raise ApiError(
                    422, "amount_too_large", "amount is more than the authorised amount.", param="amount"
                )
            self._capture(tx, amount, int(time.time()))
            return tx.to_json()

    def void(self, transaction_id: str) -> dict[str, Any]:
        with self._lock:
            tx = self._transaction(transaction_id)
            if tx.status == "voided":
                return tx.to_json()
            if tx.status not in VOIDABLE:
                raise ApiError(
                    409, "invalid_status", f"A transaction in status {tx.status} cannot be voided."
                )
            waited_for_wallet = tx.status == "pending_approval"
            tx.status = "voided"
            tx.updated = int(time.time())
            self._announce(tx, with_stale=waited_for_wallet)
            return tx.to_json()

    # -- 3-D Secure ------------------------------------------------------------------------------

    def three_ds_challenge(self, transaction_id: str) -> ThreeDsChallenge | None:
        with self._lock:
            tx = self._transactions.get(transaction_id)
            if tx is None or tx.three_ds_url is None or tx.card is None:
                return None
            return ThreeDsChallenge(
                tx.id,
                tx.amount,
                tx.currency,
                tx.card.brand,
                tx.card.last4,
                tx.three_ds_outcome,
                tx.return_url,
            )

    def record_three_ds_outcome(self, transaction_id: str, outcome: str) -> None:
        """The buyer's answer on the challenge page; the first answer stands."""
        with self._lock:
            tx = self._transactions[transaction_id]
            if tx.three_ds_outcome is None:
                tx.three_ds_outcome = outcome

    # -- refunds ---------------------------------------------------------------------------------

    def create_refund(self, transaction_id: str, request: RefundRequest) -> dict[str, Any]:
        now = int(time.time())
        with self._lock:
            tx = self._transaction(transaction_id)
            if request.reference in self._refund_ids_by_reference:
                raise ApiError(
                    409,
                    "duplicate_reference",
                    "A refund with this reference already exists.",
                    param="reference",
                )
            if tx.status != "captured":
                raise ApiError(
                    409, "invalid_status", f"A transaction in status {tx.status} cannot be refunded."
                )
            pending = sum(
                refund.amount
                for refund in self._refunds.values()
                if refund.transaction_id == tx.id and refund.status == "pending"
            )
            refundable = tx.captured_amount - tx.refunded_amount - pending
            if request.amount > refundable:
                raise ApiError(
                    409,
                    "refund_exceeds_captured",
                    f"amount is more than what is left to refund ({refundable}).",
                    param="amount",
                )
            refund = Refund(
                id=_new_id("m2t_re_"),
                reference=request.reference,
                transaction_id=tx.id,
                amount=request.amount,
                currency=tx.currency,
                created=now,
                updated=now,
            )
            self._refunds[refund.id] = refund
            self._refund_ids_by_reference[refund.reference] = refund.id
            self._callbacks.schedule(
                self._config.callback_delay_seconds, lambda: self._settle_refund(refund.id)
            )
            return refund.to_json()

    def get_refund(self, refund_id: str) -> dict[str, Any]:
        with self._lock:
            refund = self._refunds.get(refund_id)
            if refund is None:
                raise _not_found("refund")
            return refund.to_json()

    def find_refunds(self, reference: str) -> list[dict[str, Any]]:
        with self._lock:
            refund_id = self._refund_ids_by_reference.get(reference)
            return [] if refund_id is None else [self._refunds[refund_id].to_json()]

    # -- disputes --------------------------------------------------------------------------------

    def open_dispute(self, transaction_id: str, request: DisputeRequest) -> dict[str, Any]:
        with self._lock:
            tx = self._transaction(transaction_id)
            if tx.status != "captured":
                raise ApiError(
                    409, "invalid_status", f"A transaction in status {tx.status} cannot be disputed."
                )
            if tx.dispute_id is not None:
                raise ApiError(409, "already_disputed", "This transaction already has a dispute.")
            amount = tx.captured_amount if request.amount is None else request.amount
            if amount > tx.captured_amount:
                raise ApiError(
                    422, "amount_too_large", "amount is more than the captured amount.", param="amount"
                )
            dispute = self._new_dispute(tx, amount, request.reason)
            self._send_later(tx.id, new_event("dispute.opened", dispute.to_json()))
            return dispute.to_json()

    def close_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        with self._lock:
            dispute = self._disputes.get(dispute_id)
            if dispute is None:
                raise _not_found("dispute")
            if dispute.status == outcome:
                return dispute.to_json()
            if dispute.status != "open":
                raise ApiError(409, "invalid_status", f"This dispute is already closed ({dispute.status}).")
            dispute.status = outcome
            dispute.updated = int(time.time())
            if outcome == "lost":
                dispute.settle_sequence = next(self._sequence)
            self._send_later(dispute.transaction_id, new_event("dispute.closed", dispute.to_json()))
            return dispute.to_json()

    def get_dispute(self, dispute_id: str) -> dict[str, Any]:
        with self._lock:
            dispute = self._disputes.get(dispute_id)
            if dispute is None:
                raise _not_found("dispute")
            return dispute.to_json()

    # -- settlement ------------------------------------------------------------------------------

    def settlement_rows(self, day: str) -> list[SettlementRow]:
        """The lines of the UTC date ``day`` (YYYY-MM-DD), in time order: captures (a ``…71`` one a
        day late), succeeded refunds, lost disputes, and the test helper's foreign lines."""
        fees = self._config.fee_schedule
        previous = (datetime.date.fromisoformat(day) - datetime.timedelta(days=1)).isoformat()
        rows: list[tuple[int, int, SettlementRow]] = []
        with self._lock:
            for tx in self._transactions.values():
                if tx.captured_at is None or tx.capture_sequence is None:
                    continue
                captured_on = utc_date(tx.captured_at)
                late = centimes(tx.captured_amount) == LATE_ENDING
                if (captured_on == day and not late) or (late and captured_on == previous):
                    scheme, region = self._scheme_and_region(tx)
                    for row in capture_rows(
                        day,
                        tx.id,
                        tx.reference,
                        tx.currency,
                        tx.captured_amount,
                        tx.captured_at,
                        scheme,
                        region,
                        fees,
                    ):
                        rows.append((tx.captured_at, tx.capture_sequence, row))
            for refund in self._refunds.values():
                if refund.settle_sequence is not None and utc_date(refund.updated) == day:
                    tx = self._transactions[refund.transaction_id]
                    row = negative_row(
                        day,
                        "refund",
                        tx.id,
                        tx.reference,
                        refund.id,
                        refund.reference,
                        refund.currency,
                        refund.amount,
                        refund.updated,
                        *self._scheme_and_region(tx),
                    )
                    rows.append((refund.updated, refund.settle_sequence, row))
            for dispute in self._disputes.values():
                if dispute.settle_sequence is not None and utc_date(dispute.updated) == day:
                    tx = self._transactions[dispute.transaction_id]
                    row = negative_row(
                        day,
                        "chargeback",
                        tx.id,
                        tx.reference,
                        "",
                        "",
                        dispute.currency,
                        dispute.amount,
                        dispute.updated,
                        *self._scheme_and_region(tx),
                    )
                    rows.append((dispute.updated, dispute.settle_sequence, row))
            rows.extend(entry for entry in self._foreign_rows if entry[2].settlement_date == day)
        return [row for _, _, row in sorted(rows, key=lambda entry: entry[:2])]

    def add_foreign_settlement_line(
        self, day: str, amount: int, currency: str, scheme: str, reference: str
    ) -> SettlementRow:
        """A capture line in ``day``'s file for a transaction Hirfa never made (test data)."""
        region = "domestic"
        fee = self._config.fee_schedule.fee(amount, scheme, region)
        now = int(time.time())
        row = SettlementRow(
            day,
            batch_reference(day, scheme),
            "capture",
            _new_id("m2t_tx_"),
            reference,
            "",
            "",
            currency,
            amount,
            fee,
            amount - fee,
            scheme,
            region,
            now,
        )
        with self._lock:
            self._foreign_rows.append((now, next(self._sequence), row))
        return row

    @staticmethod
    def _scheme_and_region(tx: Transaction) -> tuple[str, str]:
        if tx.card is None:
            return "wallet", "domestic"
        # A card issued outside Morocco pays the international fee: the test cards 4242… (Visa, US)
        # and 5555… (Mastercard, FR); the CMI card and any Moroccan card the domestic one.
        return tx.card.brand, "domestic" if tx.card.country == "MA" else "international"

    # -- internals (under the lock) --------------------------------------------------------------

    def _transaction(self, transaction_id: str) -> Transaction:
        tx = self._transactions.get(transaction_id)
        if tx is None:
            raise _not_found("transaction")
        self._expire_if_due(tx, time.time())
        return tx

    def _expire_if_due(self, tx: Transaction, now: float) -> None:
        if tx.status == "pending_approval" and tx.expires_at_exact is not None and now >= tx.expires_at_exact:
            tx.status = "expired"
            tx.decline_code = "expired"
            tx.updated = tx.expires_at or int(now)

    def _decide_card(self, tx: Transaction, token: CardToken, public_url: str) -> None:
        now = tx.created
        decline_code = token.behaviour.decline_code
        if decline_code is not None:
            self._decline(tx, decline_code, now)
        elif token.behaviour is CardBehaviour.THREE_DS:
            tx.status = "three_ds_required"
            tx.three_ds_url = f"{public_url.rstrip('/')}/3ds/{tx.id}"
        else:
            self._authorise(tx, now)

    def _request_wallet_approval(self, tx: Transaction, phone: str) -> None:
        tx.status = "pending_approval"
        tx.phone_last4 = phone[-4:]
        tx.wallet_behaviour = wallet_behaviour(phone)
        tx.expires_at = tx.created + self._config.wallet_expiry_seconds
        tx.expires_at_exact = tx.created_at + self._config.wallet_expiry_seconds
        tx.stale_snapshot = tx.to_json()
        self._announce(tx)
        if tx.wallet_behaviour is not WalletBehaviour.NEVER_ANSWERS:
            transaction_id = tx.id
            self._callbacks.schedule(
                self._config.wallet_approval_delay_seconds, lambda: self._buyer_answers(transaction_id)
            )

    def _buyer_answers(self, transaction_id: str) -> None:
        with self._lock:
            tx = self._transactions[transaction_id]
            self._expire_if_due(tx, time.time())
            if tx.status != "pending_approval":
                return  # voided meanwhile, or expired: the answer comes too late
            now = int(time.time())
            if tx.wallet_behaviour is WalletBehaviour.DECLINES:
                tx.status = "declined"
                tx.decline_code = "wallet_declined"
                tx.updated = now
            else:
                tx.status = "authorised"
                tx.updated = now
                if tx.capture:
                    self._record_capture(tx, tx.amount, now)
            self._queue(tx.id, self._events(tx, with_stale=True))
        self._send_queued(transaction_id)  # the buyer's answer is announced as it happens

    def _authorise(self, tx: Transaction, now: int) -> None:
        tx.status = "authorised"
        tx.updated = now
        if tx.capture:
            tx.stale_snapshot = tx.to_json()
            self._capture(tx, tx.amount, now, with_stale=True)
        else:
            self._announce(tx)

    def _capture(self, tx: Transaction, amount: int, now: int, *, with_stale: bool = False) -> None:
        self._record_capture(tx, amount, now)
        self._announce(tx, with_stale=with_stale)
        if tx.card is not None and tx.card.behaviour is CardBehaviour.DISPUTE:
            transaction_id = tx.id
            self._callbacks.schedule(
                self._config.callback_delay_seconds, lambda: self._dispute_by_itself(transaction_id)
            )

    def _record_capture(self, tx: Transaction, amount: int, now: int) -> None:
        tx.status = "captured"
        tx.captured_amount = amount
        tx.captured_at = now
        tx.capture_sequence = next(self._sequence)
        tx.updated = now

    def _decline(self, tx: Transaction, decline_code: str, now: int) -> None:
        tx.status = "declined"
        tx.decline_code = decline_code
        tx.updated = now
        self._announce(tx)

    def _announce(self, tx: Transaction, *, with_stale: bool = False) -> None:
        """Send the callback of ``tx``'s current state ``callback_delay_seconds`` from now."""
        for event in self._events(tx, with_stale=with_stale):
            self._send_later(tx.id, event)

    def _events(self, tx: Transaction, *, with_stale: bool = False) -> list[dict[str, Any]]:
        """The callback of ``tx``'s current state, then the stale one if asked for (and configured)."""
        snapshot = tx.to_json()
        events = [new_event(f"transaction.{tx.status}", snapshot)]
        if with_stale and self._config.out_of_order_callbacks and tx.stale_snapshot is not None:
            stale = dict(tx.stale_snapshot)
            stale["updated"] = min(stale["updated"], snapshot["updated"] - 1)
            events.append(new_event(f"transaction.{stale['status']}", stale, created=stale["updated"]))
        return events

    def _queue(self, transaction_id: str, events: list[dict[str, Any]]) -> None:
        self._outboxes[transaction_id].events.extend(events)

    def _send_later(self, transaction_id: str, event: dict[str, Any]) -> None:
        self._queue(transaction_id, [event])
        self._callbacks.schedule(
            self._config.callback_delay_seconds, lambda: self._send_queued(transaction_id)
        )

    def _send_queued(self, transaction_id: str) -> None:
        """Deliver the transaction's queued callbacks in order (blocks; not under the lock)."""
        outbox = self._outboxes[transaction_id]
        with outbox.sending:
            while True:
                with self._lock:
                    if not outbox.events:
                        return
                    event = outbox.events.popleft()
                self._callbacks.deliver(outbox.url, event)

    def _settle_refund(self, refund_id: str) -> None:
        with self._lock:
            refund = self._refunds[refund_id]
            if refund.status != "pending":
                return
            now = int(time.time())
            refund.updated = now
            if refund.amount % 100 == REFUND_DECLINED_ENDING:
                refund.status = "failed"
                refund.failure_code = "refund_declined"
            else:
                refund.status = "succeeded"
                refund.settle_sequence = next(self._sequence)
                tx = self._transactions[refund.transaction_id]
                tx.refunded_amount += refund.amount
                tx.updated = now
            self._queue(refund.transaction_id, [new_event(f"refund.{refund.status}", refund.to_json())])
        self._send_queued(refund.transaction_id)

    def _dispute_by_itself(self, transaction_id: str) -> None:
        with self._lock:
            tx = self._transactions[transaction_id]
            if tx.status != "captured" or tx.dispute_id is not None:
                return
            dispute = self._new_dispute(tx, tx.captured_amount, "fraudulent")
            self._queue(tx.id, [new_event("dispute.opened", dispute.to_json())])
        self._send_queued(transaction_id)

    def _new_dispute(self, tx: Transaction, amount: int, reason: str) -> Dispute:
        now = int(time.time())
        dispute = Dispute(
            id=_new_id("m2t_dp_"),
            transaction_id=tx.id,
            transaction_reference=tx.reference,
            amount=amount,
            currency=tx.currency,
            reason=reason,
            created=now,
            updated=now,
        )
        self._disputes[dispute.id] = dispute
        tx.dispute_id = dispute.id
        return dispute


def current_gateway() -> Gateway:
    """The gateway of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]
