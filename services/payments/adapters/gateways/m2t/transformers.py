"""M2T's wire JSON to and from the gateway interface's dataclasses (no HTTP here).

The status tables are exhaustive: every status M2T documents maps to one normalised status, and a
status not in the table raises ``UnknownM2TStatus`` rather than being guessed at. A payload that is
not what M2T documents (a missing field, an amount that is not an integer, …) raises
``M2TPayloadError``. The adapter turns those into a gateway error (an API answer) or an
``InvalidCallback`` (a callback); the service layer never sees a half-read object.

The request bodies built here may carry a card number, a card token or a phone number: they are
handed to the HTTP client and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from services.payments.domain.gateway import (
    AuthoriseRequest,
    CallbackKind,
    CaptureRequest,
    CardDetails,
    CardToken,
    DisputeStatus,
    GatewayCallback,
    GatewayDispute,
    GatewayRefund,
    GatewayTransaction,
    NextAction,
    RefundRequest,
    RefundStatus,
    TokeniseRequest,
    TransactionStatus,
    UnmappedCallback,
)

__all__ = [
    "CALLBACK_KINDS",
    "DISPUTE_STATUSES",
    "REFUND_STATUSES",
    "TRANSACTION_STATUSES",
    "M2TPayloadError",
    "UnknownM2TEventType",
    "UnknownM2TStatus",
    "authorise_body",
    "callback_from",
    "capture_body",
    "card_token_from",
    "dispute_from",
    "refund_body",
    "refund_from",
    "refunds_from_list",
    "tokenise_body",
    "transaction_from",
    "transactions_from_list",
    "unmapped_callback_from",
]

# -- the status tables (exhaustive: the spec's complete lists) ---------------------------------------

TRANSACTION_STATUSES: Mapping[str, TransactionStatus] = MappingProxyType(
    {
        "three_ds_required": TransactionStatus.ACTION_REQUIRED,
        "pending_approval": TransactionStatus.ACTION_REQUIRED,  # a wallet request waiting on the buyer
        "authorised": TransactionStatus.AUTHORISED,
        "captured": TransactionStatus.CAPTURED,  # stays captured when refunded (refunded_amount grows)
        "declined": TransactionStatus.DECLINED,
        "voided": TransactionStatus.VOIDED,
        "expired": TransactionStatus.EXPIRED,  # a wallet request nobody answered in time
    }
)

REFUND_STATUSES: Mapping[str, RefundStatus] = MappingProxyType(
    {
        "pending": RefundStatus.PENDING,
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
    }
)

DISPUTE_STATUSES: Mapping[str, DisputeStatus] = MappingProxyType(
    {
        "open": DisputeStatus.OPEN,
        "won": DisputeStatus.WON,
        "lost": DisputeStatus.LOST,
    }
)

# Callback event types, and which object their ``data`` holds. ``transaction.expired`` is documented
# as never sent (the merchant must poll), but an ``expired`` snapshot reads fine if it ever is.
CALLBACK_KINDS: Mapping[str, CallbackKind] = MappingProxyType(
    {
        "transaction.pending_approval": CallbackKind.TRANSACTION,
        "transaction.authorised": CallbackKind.TRANSACTION,
        "transaction.captured": CallbackKind.TRANSACTION,
        "transaction.declined": CallbackKind.TRANSACTION,
        "transaction.voided": CallbackKind.TRANSACTION,
        "transaction.expired": CallbackKind.TRANSACTION,
        "refund.succeeded": CallbackKind.REFUND,
        "refund.failed": CallbackKind.REFUND,
        "dispute.opened": CallbackKind.DISPUTE,
        "dispute.closed": CallbackKind.DISPUTE,
    }
)

# NextAction.type values (see base.NextAction).
REDIRECT_TO_URL = "redirect_to_url"
WALLET_APPROVAL = "wallet_approval"


# -- errors ------------------------------------------------------------------------------------------


class M2TPayloadError(ValueError):
    """An M2T payload that is not what M2T documents. The message names the field, never its value."""


class UnknownM2TStatus(M2TPayloadError):
    """A status the tables above do not know: a new M2T status must be mapped by hand, never guessed."""

    def __init__(self, object_kind: str, raw_status: str) -> None:
        super().__init__(
            f"M2T {object_kind} status {raw_status!r} is not mapped (known: "
            f"{', '.join(_TABLES[object_kind])})"
        )
        self.object_kind = object_kind
        self.raw_status = raw_status


class UnknownM2TEventType(M2TPayloadError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"M2T callback type {event_type!r} is not mapped")
        self.event_type = event_type


_TABLES: Mapping[str, Mapping[str, Any]] = {
    "transaction": TRANSACTION_STATUSES,
    "refund": REFUND_STATUSES,
    "dispute": DISPUTE_STATUSES,
}


def _status(object_kind: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        raise M2TPayloadError(f"M2T {object_kind}: status must be a string")
    try:
        return _TABLES[object_kind][raw]
    except KeyError:
        raise UnknownM2TStatus(object_kind, raw) from None


# -- field readers -----------------------------------------------------------------------------------


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise M2TPayloadError(f"M2T {what} must be a JSON object")
    return payload


def _str(payload: Mapping[str, Any], key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise M2TPayloadError(f"M2T {what}: {key} must be a non-empty string")
    return value


def _optional_str(payload: Mapping[str, Any], key: str, what: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise M2TPayloadError(f"M2T {what}: {key} must be a string or null")
    return value


def _int(payload: Mapping[str, Any], key: str, what: str, *, default: int | None = None) -> int:
    value = payload.get(key, default)
    # bool is an int in Python; JSON true is not an amount.
    if isinstance(value, bool) or not isinstance(value, int):
        raise M2TPayloadError(f"M2T {what}: {key} must be an integer")
    if value < 0:
        raise M2TPayloadError(f"M2T {what}: {key} must not be negative")
    return value


def _list(payload: Any, what: str) -> list[Any]:
    data = _object(payload, what).get("data")
    if not isinstance(data, list):
        raise M2TPayloadError(f"M2T {what}: data must be a list")
    return data


# -- requests ----------------------------------------------------------------------------------------


def tokenise_body(request: TokeniseRequest) -> dict[str, Any]:
    return {
        "card_number": request.card_number,
        "exp_month": request.exp_month,
        "exp_year": request.exp_year,
        "cvc": request.cvc,
    }


def authorise_body(request: AuthoriseRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": request.reference,
        "amount": request.amount,
        "currency": request.currency,
        "method": request.method.value,
        "capture": request.capture,
        "callback_url": request.callback_url,
    }
    # Only the fields of the method: M2T wants card_token for a card and phone for a wallet.
    if request.card_token is not None:
        body["card_token"] = request.card_token
    if request.phone is not None:
        body["phone"] = request.phone
    if request.return_url is not None:
        body["return_url"] = request.return_url
    if request.description is not None:
        body["description"] = request.description
    return body


def capture_body(request: CaptureRequest) -> dict[str, Any]:
    return {"amount": request.amount}


def refund_body(request: RefundRequest) -> dict[str, Any]:
    # M2T takes no currency here: a refund is in its transaction's currency.
    return {"reference": request.reference, "amount": request.amount}


# -- answers -----------------------------------------------------------------------------------------


def card_token_from(payload: Any) -> CardToken:
    what = "token"
    payload = _object(payload, what)
    return CardToken(
        token=_str(payload, "token", what),
        brand=_str(payload, "brand", what),
        last4=_str(payload, "last4", what),
        country=_optional_str(payload, "country", what),
    )


def _card_from(value: Any) -> CardDetails | None:
    if value is None:
        return None
    what = "transaction card"
    card = _object(value, what)
    return CardDetails(
        brand=_str(card, "brand", what),
        last4=_str(card, "last4", what),
        country=_optional_str(card, "country", what),
    )


def _next_action(raw_status: str, payload: Mapping[str, Any]) -> NextAction | None:
    what = "transaction"
    if raw_status == "three_ds_required":
        three_ds = _object(payload.get("three_ds"), "transaction three_ds")
        return NextAction(type=REDIRECT_TO_URL, redirect_url=_str(three_ds, "redirect_url", what))
    if raw_status == "pending_approval":
        wallet = _object(payload.get("wallet"), "transaction wallet")
        return NextAction(type=WALLET_APPROVAL, expires_at=_int(wallet, "expires_at", what))
    return None


def transaction_from(payload: Any) -> GatewayTransaction:
    """A transaction as M2T shows it (an API answer, or a callback's ``data``)."""
    what = "transaction"
    payload = _object(payload, what)
    raw_status = payload.get("status")
    status = _status(what, raw_status)
    return GatewayTransaction(
        gateway_reference=_str(payload, "id", what),
        reference=_str(payload, "reference", what),
        status=status,
        raw_status=raw_status,
        amount=_int(payload, "amount", what),
        currency=_str(payload, "currency", what),
        captured_amount=_int(payload, "captured_amount", what, default=0),
        refunded_amount=_int(payload, "refunded_amount", what, default=0),
        decline_code=_optional_str(payload, "decline_code", what),
        decline_message=_optional_str(payload, "decline_message", what),
        next_action=_next_action(raw_status, payload),
        card=_card_from(payload.get("card")),
        updated_at=_int(payload, "updated", what),
    )


def refund_from(payload: Any) -> GatewayRefund:
    what = "refund"
    payload = _object(payload, what)
    raw_status = payload.get("status")
    status = _status(what, raw_status)
    return GatewayRefund(
        gateway_reference=_str(payload, "id", what),
        reference=_str(payload, "reference", what),
        transaction_reference=_str(payload, "transaction_id", what),
        status=status,
        raw_status=raw_status,
        amount=_int(payload, "amount", what),
        currency=_str(payload, "currency", what),
        failure_code=_optional_str(payload, "failure_code", what),
        updated_at=_int(payload, "updated", what),
    )


def dispute_from(payload: Any) -> GatewayDispute:
    """M2T's ``transaction_id`` is its own id; its ``transaction_reference`` is the transaction's
    ``reference``, i.e. our payment id (the base's ``payment_reference``)."""
    what = "dispute"
    payload = _object(payload, what)
    raw_status = payload.get("status")
    status = _status(what, raw_status)
    return GatewayDispute(
        gateway_reference=_str(payload, "id", what),
        transaction_reference=_str(payload, "transaction_id", what),
        payment_reference=_optional_str(payload, "transaction_reference", what),
        status=status,
        raw_status=raw_status,
        amount=_int(payload, "amount", what),
        currency=_str(payload, "currency", what),
        reason=_str(payload, "reason", what),
        updated_at=_int(payload, "updated", what),
    )


def transactions_from_list(payload: Any) -> list[GatewayTransaction]:
    return [transaction_from(item) for item in _list(payload, "transaction list")]


def refunds_from_list(payload: Any) -> list[GatewayRefund]:
    return [refund_from(item) for item in _list(payload, "refund list")]


def callback_from(body: Any) -> GatewayCallback:
    """A verified callback body ``{"id","type","created","data"}`` as a ``GatewayCallback``."""
    what = "callback"
    body = _object(body, what)
    event_id = _str(body, "id", what)
    event_type = _str(body, "type", what)
    try:
        kind = CALLBACK_KINDS[event_type]
    except KeyError:
        raise UnknownM2TEventType(event_type) from None
    data = body.get("data")
    if kind is CallbackKind.TRANSACTION:
        return GatewayCallback(
            event_id=event_id, type=event_type, kind=kind, transaction=transaction_from(data)
        )
    if kind is CallbackKind.REFUND:
        return GatewayCallback(event_id=event_id, type=event_type, kind=kind, refund=refund_from(data))
    return GatewayCallback(event_id=event_id, type=event_type, kind=kind, dispute=dispute_from(data))


def unmapped_callback_from(body: Any) -> UnmappedCallback:
    """What can be read of a verified callback ``callback_from`` could not map, for the attempt log.

    Reads leniently (a field of the wrong type is None), since the body already failed the strict
    reading; never raises.
    """
    body = body if isinstance(body, Mapping) else {}
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    event_type = _lenient_str(body, "type")
    kind = None
    if event_type is not None:
        prefix = event_type.partition(".")[0]
        kind = next((candidate for candidate in CallbackKind if candidate.value == prefix), None)
    return UnmappedCallback(
        event_id=_lenient_str(body, "id"),
        type=event_type,
        kind=kind,
        raw_status=_lenient_str(data, "status"),
        gateway_reference=_lenient_str(data, "id"),
        # A dispute's ``reference``, if it ever had one, would be M2T's word, not one of our ids.
        reference=None if kind is CallbackKind.DISPUTE else _lenient_str(data, "reference"),
        transaction_reference=_lenient_str(data, "transaction_id"),
        payment_reference=_lenient_str(data, "transaction_reference"),
    )


def _lenient_str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None
