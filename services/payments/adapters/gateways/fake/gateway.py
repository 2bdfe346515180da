"""``FakeGateway``: an in-memory M2T, for tests and local runs without the sandbox process.

One job, hence one module beyond the usual size: playing M2T. Its state, rules and test hooks
share one lock and one set of in-memory books, and read best side by side.

It keeps M2T's test data (cards by number through its own ``tokenise``, and wallet phones: the
tables in ``shared/test_instruments.py``), M2T's rules
(idempotency keys, one transaction per reference, capture once, void, refunds within the captured
amount, disputes) and M2T's wire shapes: objects are rendered as M2T JSON and read back through the
M2T transformers, and callbacks are M2T callback bodies signed with this gateway's secret, so
``parse_callback`` is exercised exactly as with M2T. Nothing happens by itself with time: the buyer's
3-D Secure choice, the wallet's answer, expiry, refund settlement and disputes are test hooks, so a
test is deterministic and instant. The exceptions: card 0259 opens its dispute as soon as it is
captured, and a wallet request reads expired once the clock passes its ``expires_at``.

One lock guards all state: the fake can be hammered by concurrent requests.

Test hooks (beyond ``PaymentGateway``):

- ``complete_challenge(tx_id, outcome="authenticate"|"fail")``: the buyer on the 3-D Secure page;
- ``answer_wallet(tx_id)``: the wallet buyer answers now, as the phone's test rule says;
- ``expire(tx_id)``: a wallet request nobody answered expires now (it also expires by itself when
  read after ``expires_at`` by the ``clock``, as at M2T: inject a clock to move time);
- ``settle_refund(refund_id)``: the refund succeeds (or fails: amount ending in 13 centimes);
- ``open_dispute(tx_id, amount=None, reason="fraudulent")``, ``close_dispute(dispute_id, "won"|"lost")``;
- ``signed_callback(object_id, event_type=None, timestamp=None)``: ``(headers, raw_body)`` of an M2T
  callback for the object's current snapshot; ``sign(raw_body, timestamp=None)`` signs any body;
- ``events`` (every callback M2T would have sent, in order), ``drain_callbacks()`` (them, signed);
- ``fail_next("timeout"|"server_error"|"refused", operation=None, times=1, code=…)``: the next
  call(s) fail as a timeout (the operation IS done, then ``GatewayOutcomeUnknown``), a 5xx or a
  4xx refusal with M2T's ``code`` (nothing done);
- ``charge_count(reference)``: transactions created for our reference (a test asserts "one charge").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from services.payments.adapters.gateways.m2t import transformers as wire
from services.payments.adapters.gateways.m2t.gateway import header, read_callback
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CaptureRequest,
    CardToken,
    GatewayCallback,
    GatewayDispute,
    GatewayOutcomeUnknown,
    GatewayRefund,
    GatewayRequestRefused,
    GatewayTransaction,
    PaymentMethod,
    RefundRequest,
    RequestToPay,
    TokeniseRequest,
    UnsupportedOperation,
    VoidRequest,
)
from shared.cards import card_digits
from shared.partners import read_signed_callback
from shared.signatures import sign
from shared.test_instruments import CardBehaviour, WalletBehaviour, card_for, wallet_behaviour

SIGNATURE_HEADER = "Fake-Gateway-Signature"
DEFAULT_CALLBACK_SECRET = "fake-gateway-callback-secret"
CURRENCY = "MAD"

# -- M2T's test data: the cards and phones are the tables in shared/test_instruments.py ---------------

# Failures ``fail_next`` injects.
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
REFUSED = "refused"  # no test card is refused this way

_MOROCCAN_MOBILE = re.compile(r"\+212[67][0-9]{8}")

DECLINE_MESSAGES: Mapping[str, str] = {
    CardBehaviour.INSUFFICIENT_FUNDS.value: "The card has insufficient funds.",
    CardBehaviour.STOLEN_CARD.value: "The card was reported stolen.",
    "authentication_failed": "The buyer failed 3-D Secure authentication.",
    "wallet_declined": "The buyer declined the payment in their wallet.",
    "expired": "The buyer did not answer the wallet request in time.",
}


# -- state -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Token:
    token: str
    brand: str
    last4: str
    country: str | None
    behaviour: CardBehaviour  # the card number is not kept: only what it decides

    def __repr__(self) -> str:
        return f"_Token(brand={self.brand!r}, last4={self.last4!r})"


@dataclasses.dataclass
class _Transaction:
    id: str
    reference: str
    method: str
    amount: int
    currency: str
    capture: bool
    status: str  # M2T's word
    created: int
    updated: int
    card: dict[str, Any] | None = None
    card_behaviour: CardBehaviour | None = None
    wallet_rule: WalletBehaviour | None = None
    phone_last4: str | None = None  # the full phone is not kept
    captured_amount: int = 0
    refunded_amount: int = 0
    decline_code: str | None = None
    three_ds_outcome: str | None = None
    expires_at: int | None = None


@dataclasses.dataclass
class _Refund:
    id: str
    reference: str
    transaction_id: str
    amount: int
    currency: str
    status: str
    created: int
    updated: int
    failure_code: str | None = None


@dataclasses.dataclass
class _Dispute:
    id: str
    transaction_id: str
    transaction_reference: str
    amount: int
    currency: str
    reason: str
    status: str
    created: int
    updated: int


class _Timeout(Exception):  # noqa: N818 - an internal signal, not an error
    """Raised inside an operation once its effect is recorded: the caller never sees the answer."""

    def __init__(self, answer: Any) -> None:
        super().__init__("timeout")
        self.answer = answer


class FakeGateway:
    name = "fake"

    def __init__(
        self,
        *,
        callback_secret: str = DEFAULT_CALLBACK_SECRET,
        tolerance_seconds: int = 300,
        wallet_expiry_seconds: int = 120,
        base_url: str = "https://fake-gateway.invalid",
        allow_tokenise: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._callback_secret = callback_secret
        self.tolerance_seconds = tolerance_seconds
        self.wallet_expiry_seconds = wallet_expiry_seconds
        self.base_url = base_url.rstrip("/")
        self.allow_tokenise = allow_tokenise
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._tokens: dict[str, _Token] = {}
        self._transactions: dict[str, _Transaction] = {}
        self._by_reference: dict[str, str] = {}
        self._refunds: dict[str, _Refund] = {}
        self._refund_by_reference: dict[str, str] = {}
        self._disputes: dict[str, _Dispute] = {}
        # key -> (fingerprint, answer): M2T answers a replay with its stored first successful answer.
        self._idempotency: dict[str, tuple[str, Any]] = {}
        self._charges: dict[str, int] = {}
        self._failures: list[tuple[str, str | None, str]] = []
        self.events: list[dict[str, Any]] = []
        self._drained = 0

    def __repr__(self) -> str:
        return f"FakeGateway(transactions={len(self._transactions)})"

    # -- PaymentGateway ---------------------------------------------------------------------------

    def tokenise(self, request: TokeniseRequest) -> CardToken:
        if not self.allow_tokenise:
            raise UnsupportedOperation("tokenising a card is off", code="tokenise_disabled")
        return self._call("tokenise", lambda: self._tokenise(request))

    def authorise(self, request: AuthoriseRequest) -> GatewayTransaction:
        if request.method is not PaymentMethod.CARD:
            raise ValueError("wallet payments go through request_to_pay")
        return self._call(
            "authorise",
            lambda: self._authorise(request),
            key=request.idempotency_key,
            fingerprint=_fingerprint("authorise", wire.authorise_body(request)),
        )

    def request_to_pay(self, request: RequestToPay) -> GatewayTransaction:
        authorisation = request.as_authorisation()
        return self._call(
            "request_to_pay",
            lambda: self._authorise(authorisation),
            key=request.idempotency_key,
            fingerprint=_fingerprint("authorise", wire.authorise_body(authorisation)),
        )

    def complete_three_ds(self, gateway_reference: str, idempotency_key: str) -> GatewayTransaction:
        return self._call(
            "complete_three_ds",
            lambda: self._complete_three_ds(gateway_reference),
            key=idempotency_key,
            fingerprint=_fingerprint("complete_three_ds", gateway_reference),
        )

    def capture(self, request: CaptureRequest) -> GatewayTransaction:
        return self._call(
            "capture",
            lambda: self._capture(request),
            key=request.idempotency_key,
            fingerprint=_fingerprint("capture", request.gateway_reference, request.amount),
        )

    def void(self, request: VoidRequest) -> GatewayTransaction:
        return self._call(
            "void",
            lambda: self._void(request.gateway_reference),
            key=request.idempotency_key,
            fingerprint=_fingerprint("void", request.gateway_reference),
        )

    def refund(self, request: RefundRequest) -> GatewayRefund:
        return self._call(
            "refund",
            lambda: self._create_refund(request),
            key=request.idempotency_key,
            fingerprint=_fingerprint("refund", request.gateway_reference, request.reference, request.amount),
        )

    def transaction(self, gateway_reference: str) -> GatewayTransaction:
        return self._call("transaction", lambda: self._snapshot(self._tx(gateway_reference)))

    def find_transaction(self, reference: str) -> GatewayTransaction | None:
        def find() -> GatewayTransaction | None:
            tx_id = self._by_reference.get(reference)
            return None if tx_id is None else self._snapshot(self._tx(tx_id))

        return self._call("find_transaction", find)

    def refund_status(self, gateway_reference: str) -> GatewayRefund:
        return self._call("refund_status", lambda: self._refund_snapshot(self._refund(gateway_reference)))

    def find_refund(self, reference: str) -> GatewayRefund | None:
        def find() -> GatewayRefund | None:
            refund_id = self._refund_by_reference.get(reference)
            return None if refund_id is None else self._refund_snapshot(self._refunds[refund_id])

        return self._call("find_refund", find)

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayCallback:
        body = read_signed_callback(
            self._callback_secret,
            header(headers, SIGNATURE_HEADER),
            raw_body,
            tolerance_seconds=self.tolerance_seconds,
        )
        return read_callback(body)

    def dispute(self, gateway_reference: str) -> GatewayDispute:
        with self._lock:
            return wire.dispute_from(self._dispute_wire(self._dispute(gateway_reference)))

    # -- test hooks -------------------------------------------------------------------------------

    def complete_challenge(self, gateway_reference: str, outcome: str = "authenticate") -> None:
        """The buyer's choice on the 3-D Secure page (the first choice stands, as at M2T)."""
        if outcome not in ("authenticate", "fail"):
            raise ValueError("outcome must be 'authenticate' or 'fail'")
        with self._lock:
            tx = self._tx(gateway_reference)
            if tx.status == "three_ds_required" and tx.three_ds_outcome is None:
                tx.three_ds_outcome = outcome

    def answer_wallet(self, gateway_reference: str) -> GatewayTransaction:
        """The wallet buyer answers now, as their phone's test rule says (+212600000003 never does)."""
        with self._lock:
            tx = self._tx(gateway_reference)
            if tx.status == "pending_approval":
                if tx.wallet_rule is WalletBehaviour.APPROVES:
                    self._approve(tx)
                elif tx.wallet_rule is WalletBehaviour.DECLINES:
                    self._decline(tx, "wallet_declined")
            return self._snapshot(tx)

    def expire(self, gateway_reference: str) -> GatewayTransaction:
        """A wallet request still waiting expires (M2T sends no callback for it)."""
        with self._lock:
            tx = self._tx(gateway_reference)
            if tx.status == "pending_approval":
                tx.decline_code = "expired"
                self._set(tx, "expired")
            return self._snapshot(tx)

    def settle_refund(self, gateway_reference: str) -> GatewayRefund:
        """M2T decides a pending refund: it succeeds, unless its amount ends in 13 centimes."""
        with self._lock:
            refund = self._refund(gateway_reference)
            if refund.status == "pending":
                refund.updated = self._now()
                if refund.amount % 100 == 13:
                    refund.status, refund.failure_code = "failed", "refund_declined"
                    self._emit_object("refund.failed", self._refund_wire(refund))
                else:
                    refund.status = "succeeded"
                    tx = self._transactions[refund.transaction_id]
                    tx.refunded_amount += refund.amount
                    tx.updated = refund.updated
                    self._emit_object("refund.succeeded", self._refund_wire(refund))
            return self._refund_snapshot(refund)

    def settle_refunds(self) -> list[GatewayRefund]:
        with self._lock:
            return [
                self.settle_refund(refund_id)
                for refund_id, refund in list(self._refunds.items())
                if refund.status == "pending"
            ]

    def open_dispute(
        self, gateway_reference: str, *, amount: int | None = None, reason: str = "fraudulent"
    ) -> GatewayDispute:
        with self._lock:
            tx = self._tx(gateway_reference)
            if tx.status != "captured":
                raise _refused("invalid_status", f"Cannot dispute a {tx.status} transaction.", status=409)
            if any(dispute.transaction_id == tx.id for dispute in self._disputes.values()):
                raise _refused("already_disputed", "This transaction already has a dispute.", status=409)
            amount = tx.captured_amount if amount is None else amount
            if amount > tx.captured_amount:
                raise _refused("amount_too_large", "amount is more than the captured amount.", "amount")
            return self._open_dispute(tx, amount, reason)

    def close_dispute(self, gateway_reference: str, outcome: str) -> GatewayDispute:
        if outcome not in ("won", "lost"):
            raise ValueError("outcome must be 'won' or 'lost'")
        with self._lock:
            dispute = self._dispute(gateway_reference)
            if dispute.status == outcome:
                return wire.dispute_from(self._dispute_wire(dispute))
            if dispute.status != "open":
                raise _refused("invalid_status", "The dispute is closed.", status=409)
            dispute.status, dispute.updated = outcome, self._now()
            self._emit_object("dispute.closed", self._dispute_wire(dispute))
            return wire.dispute_from(self._dispute_wire(dispute))

    def fail_next(
        self, mode: str, *, operation: str | None = None, times: int = 1, code: str = "request_refused"
    ) -> None:
        """The next ``times`` calls (of ``operation``, or any call but ``parse_callback``) fail.

        ``timeout``: the operation is done and recorded, then ``GatewayOutcomeUnknown`` (a charge the
        caller never heard about); ``server_error``: ``GatewayOutcomeUnknown`` and nothing is done;
        ``refused``: a 4xx with M2T's ``code`` (``GatewayRequestRefused``) and nothing is done, for
        the refusals M2T may give that the fake's rules never do.
        """
        if mode not in (TIMEOUT, SERVER_ERROR, REFUSED):
            raise ValueError("mode must be 'timeout', 'server_error' or 'refused'")
        with self._lock:
            self._failures.extend([(mode, operation, code)] * times)

    def charge_count(self, reference: str) -> int:
        """Transactions created for our ``reference``: a replay or a refused duplicate makes none."""
        with self._lock:
            return self._charges.get(reference, 0)

    def sign(self, raw_body: bytes, timestamp: int | None = None) -> dict[str, str]:
        return {
            SIGNATURE_HEADER: sign(self._callback_secret, raw_body, timestamp),
            "Content-Type": "application/json",
        }

    def signed_callback(
        self, gateway_reference: str, event_type: str | None = None, *, timestamp: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """An M2T callback for the current snapshot of a transaction, refund or dispute, signed.

        ``event_type`` defaults to the object's kind and status (``transaction.captured``, ``refund.failed``,
        ``dispute.opened``/``closed``); for a status M2T never announces (``three_ds_required``, a pending
        refund) that is a type ``parse_callback`` refuses, which a test may want too."""
        with self._lock:
            if gateway_reference in self._transactions:
                data = self._tx_wire(self._transactions[gateway_reference])
                event_type = event_type or f"transaction.{data['status']}"
            elif gateway_reference in self._refunds:
                data = self._refund_wire(self._refunds[gateway_reference])
                event_type = event_type or f"refund.{data['status']}"
            elif gateway_reference in self._disputes:
                data = self._dispute_wire(self._disputes[gateway_reference])
                event_type = event_type or (
                    "dispute.opened" if data["status"] == "open" else "dispute.closed"
                )
            else:
                raise KeyError(gateway_reference)
            event = self._event(event_type, data)
        raw_body = _encode(event)
        return self.sign(raw_body, timestamp), raw_body

    def drain_callbacks(self) -> list[tuple[dict[str, str], bytes]]:
        """The callbacks M2T would have sent since the last drain, signed now, in order."""
        with self._lock:
            events, self._drained = self.events[self._drained :], len(self.events)
        return [(self.sign(body), body) for body in map(_encode, events)]

    # -- internals (under the lock) ---------------------------------------------------------------

    def _call(
        self,
        operation: str,
        action: Callable[[], Any],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> Any:
        """One gateway call under the lock: injected failures, and M2T's idempotency-key replay."""
        with self._lock:
            failure, refusal_code = self._take_failure(operation)
            if failure == SERVER_ERROR:
                raise GatewayOutcomeUnknown(
                    f"fake gateway answered 500 to {operation}", code="processing_error"
                )
            if failure == REFUSED:
                raise _refused(refusal_code, f"{operation} refused, as the test asked.", status=409)
            if fingerprint is not None and not key:
                raise _refused("idempotency_key_required", "An Idempotency-Key is required.", status=400)
            if key:
                stored = self._idempotency.get(key)
                if stored is not None:
                    stored_fingerprint, answer = stored
                    if stored_fingerprint != fingerprint:
                        raise _refused(
                            "idempotency_key_reuse",
                            "This idempotency key was used with another request.",
                            status=409,
                        )
                    return answer
            try:
                answer = action()
            except _Timeout as timeout:
                answer, failure = timeout.answer, TIMEOUT
            # Only a success is stored (as at M2T): a refusal changed nothing, a retry runs it again.
            if key:
                self._idempotency[key] = (fingerprint, answer)
            if failure == TIMEOUT:
                # Done and recorded, but the caller never hears the answer.
                raise GatewayOutcomeUnknown(f"fake gateway timed out on {operation}", code="timeout")
            return answer

    def _take_failure(self, operation: str) -> tuple[str | None, str]:
        """The injected failure for this call, if any: its mode and, for a refusal, M2T's code."""
        for index, (mode, only, code) in enumerate(self._failures):
            if only is None or only == operation:
                del self._failures[index]
                return mode, code
        return None, ""

    def _now(self) -> int:
        return int(self._clock())

    def _tx(self, gateway_reference: str) -> _Transaction:
        try:
            tx = self._transactions[gateway_reference]
        except KeyError:
            raise _refused("not_found", "No such transaction.", status=404) from None
        self._expire_if_due(tx)
        return tx

    def _expire_if_due(self, tx: _Transaction) -> None:
        # As at M2T, worked out when read: a wallet request past expires_at reads expired (no callback).
        if tx.status == "pending_approval" and tx.expires_at is not None and self._clock() >= tx.expires_at:
            tx.decline_code = "expired"
            tx.status, tx.updated = "expired", tx.expires_at

    def _refund(self, gateway_reference: str) -> _Refund:
        try:
            return self._refunds[gateway_reference]
        except KeyError:
            raise _refused("not_found", "No such refund.", status=404) from None

    def _dispute(self, gateway_reference: str) -> _Dispute:
        try:
            return self._disputes[gateway_reference]
        except KeyError:
            raise _refused("not_found", "No such dispute.", status=404) from None

    def _tokenise(self, request: TokeniseRequest) -> CardToken:
        number = card_digits(request.card_number)
        if number is None:
            raise _refused("invalid_card_number", "card_number is not a valid card number.", "card_number")
        month, year = request.exp_month, request.exp_year
        if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
            raise _refused("invalid_expiry_month", "exp_month must be a month number, 1 to 12.", "exp_month")
        if isinstance(year, int) and not isinstance(year, bool) and year < 100:
            year += 2000
        if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2099:
            raise _refused("invalid_expiry_year", "exp_year must be a year, like 2030.", "exp_year")
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        if (year, month) < (now.year, now.month):
            raise _refused("expired_card", "The card has expired.", "exp_year")
        if not (
            isinstance(request.cvc, str)
            and request.cvc.strip().isascii()
            and request.cvc.strip().isdigit()
            and 3 <= len(request.cvc.strip()) <= 4
        ):
            raise _refused("invalid_cvc", "cvc must be the 3 or 4 digits on the card.", "cvc")
        card = card_for(number)
        token = _Token(
            token=f"tok_fake_{next(self._ids)}",
            brand=card.brand,
            last4=number[-4:],
            country=card.country,
            behaviour=card.behaviour,
        )
        self._tokens[token.token] = token
        return CardToken(token=token.token, brand=card.brand, last4=token.last4, country=card.country)

    def _complete_three_ds(self, gateway_reference: str) -> GatewayTransaction:
        tx = self._tx(gateway_reference)
        if tx.status == "three_ds_required":
            if tx.three_ds_outcome is None:
                raise _refused("authentication_pending", "The buyer has not finished 3-D Secure.", status=409)
            if tx.three_ds_outcome == "authenticate":
                self._approve(tx)
            else:
                self._decline(tx, "authentication_failed")
        return self._snapshot(tx)

    def _capture(self, request: CaptureRequest) -> GatewayTransaction:
        tx = self._tx(request.gateway_reference)
        if tx.status == "captured":
            raise _refused("already_captured", "The transaction is already captured.", status=409)
        if tx.status != "authorised":
            raise _refused("invalid_status", f"Cannot capture a {tx.status} transaction.", status=409)
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise _refused("invalid_field", "amount must be a positive integer of minor units.", "amount")
        if request.amount > tx.amount:
            raise _refused("amount_too_large", "amount is more than the authorised amount.", "amount")
        self._set_captured(tx, request.amount)
        return self._snapshot(tx)

    def _void(self, gateway_reference: str) -> GatewayTransaction:
        tx = self._tx(gateway_reference)
        if tx.status in ("authorised", "three_ds_required", "pending_approval"):
            self._set(tx, "voided")
            self._emit("transaction.voided", tx)
        elif tx.status != "voided":
            raise _refused("invalid_status", f"Cannot void a {tx.status} transaction.", status=409)
        return self._snapshot(tx)

    def _create_refund(self, request: RefundRequest) -> GatewayRefund:
        tx = self._tx(request.gateway_reference)
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise _refused("invalid_field", "amount must be a positive integer of minor units.", "amount")
        if request.reference in self._refund_by_reference:
            raise _refused(
                "duplicate_reference", "A refund with this reference exists.", "reference", status=409
            )
        if tx.status != "captured":
            raise _refused("invalid_status", f"Cannot refund a {tx.status} transaction.", status=409)
        committed = sum(
            refund.amount
            for refund in self._refunds.values()
            if refund.transaction_id == tx.id and refund.status in ("pending", "succeeded")
        )
        if request.amount > tx.captured_amount - committed:
            raise _refused(
                "refund_exceeds_captured", "The refund exceeds what is left to refund.", "amount", status=409
            )
        now = self._now()
        refund = _Refund(
            id=f"fake_re_{next(self._ids)}",
            reference=request.reference,
            transaction_id=tx.id,
            amount=request.amount,
            currency=tx.currency,
            status="pending",
            created=now,
            updated=now,
        )
        self._refunds[refund.id] = refund
        self._refund_by_reference[refund.reference] = refund.id
        return self._refund_snapshot(refund)

    def _authorise(self, request: AuthoriseRequest) -> GatewayTransaction:
        if request.currency != CURRENCY:
            raise _refused("unsupported_currency", "Only MAD is supported.", "currency")
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise _refused("invalid_field", "amount must be a positive integer of minor units.", "amount")
        if request.reference in self._by_reference:
            raise _refused(
                "duplicate_reference", "A transaction with this reference exists.", "reference", status=409
            )
        now = self._now()
        tx = _Transaction(
            id=f"fake_tx_{next(self._ids)}",
            reference=request.reference,
            method=request.method.value,
            amount=request.amount,
            currency=request.currency,
            capture=request.capture,
            status="new",
            created=now,
            updated=now,
        )
        if request.method is PaymentMethod.CARD:
            token = self._tokens.get(request.card_token or "")
            if token is None:
                raise _refused("invalid_card_token", "Unknown card token.", "card_token")
            if token.behaviour is CardBehaviour.PROCESSING_ERROR:
                raise GatewayOutcomeUnknown(
                    "fake gateway answered 500 processing_error", code="processing_error"
                )
            tx.card = {"brand": token.brand, "last4": token.last4, "country": token.country}
            tx.card_behaviour = token.behaviour
        else:
            phone = request.phone or ""
            if not _MOROCCAN_MOBILE.fullmatch(phone):
                raise _refused("invalid_field", "phone must be a Moroccan mobile number in E.164.", "phone")
            tx.wallet_rule = wallet_behaviour(phone)
            tx.phone_last4 = phone[-4:]
        self._transactions[tx.id] = tx
        self._by_reference[tx.reference] = tx.id
        self._charges[tx.reference] = self._charges.get(tx.reference, 0) + 1
        if tx.method == PaymentMethod.MOBILE_WALLET.value:
            tx.expires_at = now + self.wallet_expiry_seconds
            self._set(tx, "pending_approval")
            self._emit("transaction.pending_approval", tx)
        elif tx.card_behaviour is not None and tx.card_behaviour.decline_code is not None:
            self._decline(tx, tx.card_behaviour.decline_code)
        elif tx.card_behaviour is CardBehaviour.THREE_DS:
            self._set(tx, "three_ds_required")
        else:
            self._approve(tx)
            if tx.card_behaviour is CardBehaviour.TIMEOUT:
                raise _Timeout(self._snapshot(tx))
        return self._snapshot(tx)

    def _approve(self, tx: _Transaction) -> None:
        if tx.capture:
            self._set_captured(tx, tx.amount)
        else:
            self._set(tx, "authorised")
            self._emit("transaction.authorised", tx)

    def _set_captured(self, tx: _Transaction, amount: int) -> None:
        tx.captured_amount = amount
        self._set(tx, "captured")
        self._emit("transaction.captured", tx)
        if tx.card_behaviour is CardBehaviour.DISPUTE:
            self._open_dispute(tx, amount, "fraudulent")

    def _decline(self, tx: _Transaction, code: str) -> None:
        tx.decline_code = code
        self._set(tx, "declined")
        self._emit("transaction.declined", tx)

    def _set(self, tx: _Transaction, status: str) -> None:
        tx.status, tx.updated = status, self._now()

    def _open_dispute(self, tx: _Transaction, amount: int, reason: str) -> GatewayDispute:
        now = self._now()
        dispute = _Dispute(
            id=f"fake_dp_{next(self._ids)}",
            transaction_id=tx.id,
            transaction_reference=tx.reference,
            amount=amount,
            currency=tx.currency,
            reason=reason,
            status="open",
            created=now,
            updated=now,
        )
        self._disputes[dispute.id] = dispute
        self._emit_object("dispute.opened", self._dispute_wire(dispute))
        return wire.dispute_from(self._dispute_wire(dispute))

    def _event(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"evt_fake_{next(self._ids)}", "type": event_type, "created": self._now(), "data": data}

    def _emit(self, event_type: str, tx: _Transaction) -> None:
        self._emit_object(event_type, self._tx_wire(tx))

    def _emit_object(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append(self._event(event_type, data))

    # M2T's wire shapes: everything a caller sees goes through the M2T transformers.

    def _tx_wire(self, tx: _Transaction) -> dict[str, Any]:
        return {
            "id": tx.id,
            "reference": tx.reference,
            "method": tx.method,
            "status": tx.status,
            "amount": tx.amount,
            "currency": tx.currency,
            "captured_amount": tx.captured_amount,
            "refunded_amount": tx.refunded_amount,
            "card": None if tx.card is None else dict(tx.card),
            "phone_last4": tx.phone_last4,
            "decline_code": tx.decline_code,
            "decline_message": DECLINE_MESSAGES.get(tx.decline_code or ""),
            "three_ds": (
                {"redirect_url": f"{self.base_url}/3ds/{tx.id}"} if tx.status == "three_ds_required" else None
            ),
            "wallet": None if tx.expires_at is None else {"expires_at": tx.expires_at},
            "created": tx.created,
            "updated": tx.updated,
        }

    def _refund_wire(self, refund: _Refund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "reference": refund.reference,
            "transaction_id": refund.transaction_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "status": refund.status,
            "failure_code": refund.failure_code,
            "created": refund.created,
            "updated": refund.updated,
        }

    def _dispute_wire(self, dispute: _Dispute) -> dict[str, Any]:
        return {
            "id": dispute.id,
            "transaction_id": dispute.transaction_id,
            "transaction_reference": dispute.transaction_reference,
            "amount": dispute.amount,
            "currency": dispute.currency,
            "reason": dispute.reason,
            "status": dispute.status,
            "created": dispute.created,
            "updated": dispute.updated,
        }

    def _snapshot(self, tx: _Transaction) -> GatewayTransaction:
        return wire.transaction_from(self._tx_wire(tx))

    def _refund_snapshot(self, refund: _Refund) -> GatewayRefund:
        return wire.refund_from(self._refund_wire(refund))


def _refused(
    code: str, message: str, param: str | None = None, *, status: int = 422
) -> GatewayRequestRefused:
    error = GatewayRequestRefused(f"fake gateway refused the request ({status} {code}): {message}", code=code)
    error.param = param  # type: ignore[attr-defined]
    return error


def _fingerprint(*parts: Any) -> str:
    """A digest of a request (as M2T keeps one): comparable, and it keeps no card token or phone."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def _encode(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
