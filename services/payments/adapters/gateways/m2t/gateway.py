"""``M2TGateway``: the ``PaymentGateway`` for M2T, the acquirer behind Hirfa (the sandbox in development).

HTTP and its failures are ``client``'s; M2T's JSON is ``transformers``'; this class only puts them
together and reads M2T's signed callbacks (``M2T-Signature`` over the raw body, replay window).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests

from services.payments.adapters.gateways.m2t import transformers as wire
from services.payments.adapters.gateways.m2t.client import M2TClient
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CaptureRequest,
    CardToken,
    GatewayCallback,
    GatewayDispute,
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayRefund,
    GatewayTransaction,
    InvalidCallback,
    PaymentMethod,
    RefundRequest,
    RequestToPay,
    TokeniseRequest,
    UnrecognisedCallback,
    UnsupportedOperation,
    VoidRequest,
)
from shared.partners import read_signed_callback

SIGNATURE_HEADER = "M2T-Signature"
DEFAULT_TOLERANCE_SECONDS = 300

T = TypeVar("T")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, whatever the case of the name (a plain dict is not case-insensitive)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def read_answer(read: Callable[[Any], T], payload: Any) -> T:
    """Read an API answer. M2T said yes, but we cannot read what: the outcome is unknown to us."""
    try:
        return read(payload)
    except wire.UnknownM2TStatus as exc:
        raise GatewayOutcomeUnknown(str(exc), code="unknown_status", raw_status=exc.raw_status) from None
    except wire.M2TPayloadError as exc:
        raise GatewayOutcomeUnknown(f"unreadable M2T answer: {exc}", code="unreadable_answer") from None


def read_callback(body: Any) -> GatewayCallback:
    """A verified callback body as a ``GatewayCallback``; ``InvalidCallback`` if it cannot be read,
    ``UnrecognisedCallback`` (with what can be read of it) if M2T sent a type or status not mapped yet."""
    try:
        return wire.callback_from(body)
    except wire.UnknownM2TStatus as exc:
        raise UnrecognisedCallback("unknown_status", str(exc), wire.unmapped_callback_from(body)) from None
    except wire.UnknownM2TEventType as exc:
        raise UnrecognisedCallback("unknown_type", str(exc), wire.unmapped_callback_from(body)) from None
    except wire.M2TPayloadError as exc:
        raise InvalidCallback("malformed", str(exc)) from None


class M2TGateway:
    """M2T over HTTP. ``allow_tokenise`` opens ``POST /v1/tokens`` (sandbox only: in production the
    buyer's browser gives the card to M2T's hosted fields and no PAN ever reaches Hirfa)."""

    name = "m2t"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        callback_secret: str | Sequence[str],
        timeout: float | tuple[float, float] = 10.0,
        retries: int = 2,
        retry_backoff_seconds: float = 0.3,
        retry_max_backoff_seconds: float = 5.0,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        allow_tokenise: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        if not callback_secret:
            raise ValueError("the M2T callback secret must not be empty")
        self._client = M2TClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            retry_backoff_seconds=retry_backoff_seconds,
            retry_max_backoff_seconds=retry_max_backoff_seconds,
            session=session,
        )
        self._callback_secret = callback_secret
        self.tolerance_seconds = tolerance_seconds
        self.allow_tokenise = allow_tokenise

    def __repr__(self) -> str:
        return f"M2TGateway(base_url={self._client.base_url!r})"

    @property
    def client(self) -> M2TClient:
        return self._client

    # -- PaymentGateway ---------------------------------------------------------------------------

    def tokenise(self, request: TokeniseRequest) -> CardToken:
        if not self.allow_tokenise:
            raise UnsupportedOperation(
                "tokenising a card goes through M2T's hosted fields, not Hirfa", code="tokenise_disabled"
            )
        return read_answer(wire.card_token_from, self._client.create_token(wire.tokenise_body(request)))

    def authorise(self, request: AuthoriseRequest) -> GatewayTransaction:
        if request.method is not PaymentMethod.CARD:
            raise ValueError("wallet payments go through request_to_pay")
        return self._create_transaction(request)

    def request_to_pay(self, request: RequestToPay) -> GatewayTransaction:
        # M2T takes card authorisations and wallet requests at one endpoint, told apart by "method".
        return self._create_transaction(request.as_authorisation())

    def _create_transaction(self, request: AuthoriseRequest) -> GatewayTransaction:
        payload = self._client.create_transaction(wire.authorise_body(request), request.idempotency_key)
        return read_answer(wire.transaction_from, payload)

    def complete_three_ds(self, gateway_reference: str, idempotency_key: str) -> GatewayTransaction:
        return read_answer(
            wire.transaction_from, self._client.complete_three_ds(gateway_reference, idempotency_key)
        )

    def capture(self, request: CaptureRequest) -> GatewayTransaction:
        payload = self._client.capture(
            request.gateway_reference, wire.capture_body(request), request.idempotency_key
        )
        return read_answer(wire.transaction_from, payload)

    def void(self, request: VoidRequest) -> GatewayTransaction:
        return read_answer(
            wire.transaction_from, self._client.void(request.gateway_reference, request.idempotency_key)
        )

    def refund(self, request: RefundRequest) -> GatewayRefund:
        payload = self._client.create_refund(
            request.gateway_reference, wire.refund_body(request), request.idempotency_key
        )
        return read_answer(wire.refund_from, payload)

    def transaction(self, gateway_reference: str) -> GatewayTransaction:
        return read_answer(wire.transaction_from, self._client.get_transaction(gateway_reference))

    def find_transaction(self, reference: str) -> GatewayTransaction | None:
        found = read_answer(wire.transactions_from_list, self._client.list_transactions(reference))
        return _only(found, reference, "transaction")

    def refund_status(self, gateway_reference: str) -> GatewayRefund:
        return read_answer(wire.refund_from, self._client.get_refund(gateway_reference))

    def find_refund(self, reference: str) -> GatewayRefund | None:
        return _only(
            read_answer(wire.refunds_from_list, self._client.list_refunds(reference)), reference, "refund"
        )

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayCallback:
        body = read_signed_callback(
            self._callback_secret,
            header(headers, SIGNATURE_HEADER),
            raw_body,
            tolerance_seconds=self.tolerance_seconds,
        )
        return read_callback(body)

    # -- beyond the interface ---------------------------------------------------------------------

    def dispute(self, gateway_reference: str) -> GatewayDispute:
        return read_answer(wire.dispute_from, self._client.get_dispute(gateway_reference))


def _only(found: list[T], reference: str, what: str) -> T | None:
    # References are unique at M2T: two answers would be M2T's bug, and picking one a guess.
    if len(found) > 1:
        raise GatewayError(f"M2T answered {len(found)} {what}s for one reference", code="ambiguous_reference")
    return found[0] if found else None
