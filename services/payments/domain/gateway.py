"""The payments domain's port to a gateway: the interface every gateway adapter implements, and
the typed values it speaks.

The service layer sees only ``PaymentGateway`` and the dataclasses here. Each gateway adapter has
its own package under ``adapters/gateways/`` (``m2t/``: HTTP client and wire transformers;
``fake/``: in memory), is registered by name in ``GatewayRegistry``, and passes the shared contract
suite (``tests/contract/test_gateway_contract.py``).

Statuses are normalised: an adapter maps every status its gateway can send to one of
``TransactionStatus`` and keeps the gateway's own word in ``raw_status`` for the attempt log.

Errors say what the caller may assume about the money:
- ``GatewayDeclined`` is not an error: a decline is a transaction in status ``declined``.
- ``GatewayRequestRefused``: the gateway answered 4xx; nothing was done. ``code`` is its reason.
- ``GatewayOutcomeUnknown``: timeout, connection lost, 5xx after retries. The operation may or may
  not have happened: the caller must find out later (status query) and never assume a failure.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from shared.partner_ports import InvalidCallback, PartnerRegistry

__all__ = [
    "AuthoriseRequest",
    "CallbackKind",
    "CaptureRequest",
    "CardDetails",
    "CardToken",
    "DisputeStatus",
    "GatewayCallback",
    "GatewayDispute",
    "GatewayError",
    "GatewayOutcomeUnknown",
    "GatewayRefund",
    "GatewayRegistry",
    "GatewayRequestRefused",
    "GatewayTransaction",
    "InvalidCallback",
    "NextAction",
    "PaymentGateway",
    "PaymentMethod",
    "RefundRequest",
    "RefundStatus",
    "RequestToPay",
    "TokeniseRequest",
    "TransactionStatus",
    "UnmappedCallback",
    "UnrecognisedCallback",
    "UnsupportedOperation",
    "VoidRequest",
]


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    MOBILE_WALLET = "mobile_wallet"


class TransactionStatus(enum.StrEnum):
    ACTION_REQUIRED = "action_required"  # 3-D Secure challenge, or the buyer must approve in the wallet
    AUTHORISED = "authorised"  # funds reserved, to capture (manual capture)
    CAPTURED = "captured"
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"  # a wallet request nobody answered in time

    @property
    def is_final(self) -> bool:
        return self in (
            TransactionStatus.CAPTURED,
            TransactionStatus.DECLINED,
            TransactionStatus.VOIDED,
            TransactionStatus.EXPIRED,
        )


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DisputeStatus(enum.StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class CallbackKind(enum.StrEnum):
    TRANSACTION = "transaction"
    REFUND = "refund"
    DISPUTE = "dispute"


# -- requests ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokeniseRequest:
    """Sandbox only: in production the buyer's browser gives the card to the gateway's hosted fields."""

    card_number: str
    exp_month: int
    exp_year: int
    cvc: str

    def __repr__(self) -> str:
        # A PAN must never reach a log line or a traceback.
        return f"TokeniseRequest(card_number='…{self.card_number[-4:]}')"


@dataclasses.dataclass(frozen=True)
class AuthoriseRequest:
    reference: str  # our payment id: the gateway echoes it and we can look the transaction up by it
    amount: int  # minor units
    currency: str
    method: PaymentMethod
    capture: bool  # False: authorise only (manual capture)
    callback_url: str
    idempotency_key: str
    card_token: str | None = None
    phone: str | None = None
    return_url: str | None = None  # card: where the 3-D Secure page sends the buyer back
    description: str | None = None

    def __repr__(self) -> str:
        return (
            f"AuthoriseRequest(reference={self.reference!r}, amount={self.amount}, "
            f"method={self.method.value!r})"
        )


@dataclasses.dataclass(frozen=True)
class RequestToPay:
    """A mobile-wallet payment: the gateway asks the buyer's wallet (by phone number) to approve it."""

    reference: str  # our payment id
    amount: int
    currency: str
    phone: str  # E.164 Moroccan mobile
    capture: bool
    callback_url: str
    idempotency_key: str
    description: str | None = None

    def __repr__(self) -> str:
        return f"RequestToPay(reference={self.reference!r}, amount={self.amount}, phone='…{self.phone[-4:]}')"

    def as_authorisation(self) -> AuthoriseRequest:
        """The same request in the shape of an authorisation, for gateways that take both at one endpoint."""
        return AuthoriseRequest(
            reference=self.reference,
            amount=self.amount,
            currency=self.currency,
            method=PaymentMethod.MOBILE_WALLET,
            capture=self.capture,
            callback_url=self.callback_url,
            idempotency_key=self.idempotency_key,
            phone=self.phone,
            description=self.description,
        )


@dataclasses.dataclass(frozen=True)
class CaptureRequest:
    gateway_reference: str
    amount: int
    idempotency_key: str


@dataclasses.dataclass(frozen=True)
class VoidRequest:
    gateway_reference: str
    idempotency_key: str


@dataclasses.dataclass(frozen=True)
class RefundRequest:
    gateway_reference: str  # the transaction refunded
    reference: str  # our refund id
    amount: int
    currency: str
    idempotency_key: str


# -- answers -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CardToken:
    token: str
    brand: str
    last4: str
    country: str | None = None

    def __repr__(self) -> str:
        # The token charges the card: it stays out of logs and tracebacks like the PAN.
        return f"CardToken(brand={self.brand!r}, last4={self.last4!r}, country={self.country!r})"


@dataclasses.dataclass(frozen=True)
class CardDetails:
    brand: str
    last4: str
    country: str | None = None


@dataclasses.dataclass(frozen=True)
class NextAction:
    """What the buyer must do: ``redirect_to_url`` (3-D Secure) or ``wallet_approval`` (until ``expires_at``)."""

    type: str
    redirect_url: str | None = None
    expires_at: int | None = None  # unix seconds


@dataclasses.dataclass(frozen=True)
class GatewayTransaction:
    gateway_reference: str  # the gateway's transaction id
    reference: str  # our payment id
    status: TransactionStatus
    raw_status: str
    amount: int
    currency: str
    captured_amount: int = 0
    refunded_amount: int = 0
    decline_code: str | None = None
    decline_message: str | None = None
    next_action: NextAction | None = None
    card: CardDetails | None = None
    updated_at: int = 0  # unix seconds, the gateway's clock: orders snapshots of one transaction


@dataclasses.dataclass(frozen=True)
class GatewayRefund:
    gateway_reference: str
    reference: str  # our refund id
    transaction_reference: str  # the gateway's transaction id
    status: RefundStatus
    raw_status: str
    amount: int
    currency: str
    failure_code: str | None = None
    updated_at: int = 0


@dataclasses.dataclass(frozen=True)
class GatewayDispute:
    gateway_reference: str
    transaction_reference: str  # the gateway's transaction id
    payment_reference: str | None  # our payment id, when the gateway tells it
    status: DisputeStatus
    raw_status: str
    amount: int
    currency: str
    reason: str
    updated_at: int = 0


@dataclasses.dataclass(frozen=True)
class UnmappedCallback:
    """What can still be read of a genuine callback whose event type or status the adapter does not
    map: enough to say which payment (or refund) it is about and what the gateway said, never enough
    to act on. Every field is None when the body does not hold it."""

    event_id: str | None
    type: str | None
    kind: CallbackKind | None  # from the type's prefix (``transaction.…``), when it names a known kind
    raw_status: str | None
    gateway_reference: str | None  # the object's id at the gateway
    reference: str | None  # our id of the object: the payment's (transaction) or the refund's
    transaction_reference: str | None  # the gateway's transaction id (refund, dispute)
    payment_reference: str | None  # our payment id, when a dispute tells it


@dataclasses.dataclass(frozen=True)
class GatewayCallback:
    """A verified callback. Exactly one of ``transaction``, ``refund``, ``dispute`` is set, per ``kind``."""

    event_id: str
    type: str  # the gateway's own event type, for the log
    kind: CallbackKind
    transaction: GatewayTransaction | None = None
    refund: GatewayRefund | None = None
    dispute: GatewayDispute | None = None


# -- errors ------------------------------------------------------------------------------------------


class GatewayError(RuntimeError):
    def __init__(self, message: str, *, code: str | None = None, raw_status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.raw_status = raw_status


class UnrecognisedCallback(InvalidCallback):
    """A callback whose signature is valid but whose event type or status the adapter does not map
    (``reason``: ``unknown_type`` or ``unknown_status``). Genuine, so not to be refused as forged;
    unmapped, so never applied. ``callback`` is what could be read of it."""

    def __init__(self, reason: str, detail: str | None, callback: UnmappedCallback) -> None:
        super().__init__(reason, detail)
        self.callback = callback


class GatewayRequestRefused(GatewayError):
    """The gateway refused the request (4xx): nothing happened. ``code`` is the gateway's reason."""


class GatewayOutcomeUnknown(GatewayError):
    """Timeout, lost connection or a 5xx that retries did not cure: the operation may have happened."""


class UnsupportedOperation(GatewayError):
    """The adapter does not offer this operation (tokenising outside a sandbox)."""


# -- the interface -----------------------------------------------------------------------------------


@runtime_checkable
class PaymentGateway(Protocol):
    name: str

    def tokenise(self, request: TokeniseRequest) -> CardToken: ...

    def authorise(self, request: AuthoriseRequest) -> GatewayTransaction:
        """Card authorisation, captured at once when ``request.capture``."""

    def request_to_pay(self, request: RequestToPay) -> GatewayTransaction:
        """Ask the buyer's mobile wallet to pay; the answer comes later (``action_required`` until then)."""

    def complete_three_ds(self, gateway_reference: str, idempotency_key: str) -> GatewayTransaction:
        """Finish an authorisation after the buyer's 3-D Secure challenge."""

    def capture(self, request: CaptureRequest) -> GatewayTransaction: ...

    def void(self, request: VoidRequest) -> GatewayTransaction: ...

    def refund(self, request: RefundRequest) -> GatewayRefund: ...

    def transaction(self, gateway_reference: str) -> GatewayTransaction: ...

    def find_transaction(self, reference: str) -> GatewayTransaction | None:
        """The transaction made for our ``reference`` (after a timeout we may not know its id)."""

    def refund_status(self, gateway_reference: str) -> GatewayRefund: ...

    def find_refund(self, reference: str) -> GatewayRefund | None: ...

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayCallback:
        """Verify the signature (and replay window) over the raw body, then read it. Raises ``InvalidCallback``:
        ``UnrecognisedCallback`` for a genuine one of a type or status the adapter does not map."""


class GatewayRegistry(PartnerRegistry[PaymentGateway]):
    """Gateway adapters by name (``m2t``, ``fake``): the name is also the callback URL's segment."""
