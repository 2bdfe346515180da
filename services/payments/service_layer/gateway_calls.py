"""Calling a gateway from the service layer: timing the call, catching what it may raise, and the
append-only attempt row that records it (with the gateway's raw status) once its answer is applied.

No database transaction is open while a gateway is called: a slow gateway must not hold locks.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from services.payments.adapters.orm import GatewayAttempt
from services.payments.domain.gateway import (
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayRequestRefused,
    PaymentGateway,
)
from shared.db import utcnow

log = logging.getLogger(__name__)

# The attempt outcome of a genuine callback whose type or status we do not map.
UNMAPPED = "unmapped"


@dataclasses.dataclass(frozen=True)
class CallOutcome:
    """Either ``answer`` (the gateway's object) or ``error``; never both."""

    operation: str
    answer: Any = None
    error: GatewayError | None = None
    duration_ms: int = 0
    idempotency_key: str | None = None
    amount: int | None = None

    @property
    def unknown(self) -> bool:
        return isinstance(self.error, GatewayOutcomeUnknown)

    @property
    def refused(self) -> bool:
        return isinstance(self.error, GatewayRequestRefused)


def call_gateway(
    operation: str, call: Callable[[], Any], *, idempotency_key: str | None = None, amount: int | None = None
) -> CallOutcome:
    started = time.monotonic()
    try:
        answer = call()
    except GatewayError as error:
        duration_ms = int((time.monotonic() - started) * 1000)
        level = logging.WARNING if isinstance(error, GatewayOutcomeUnknown) else logging.INFO
        log.log(
            level,
            "gateway %s: %s",
            operation,
            type(error).__name__,
            extra={"operation": operation, "error_code": error.code, "duration_ms": duration_ms},
        )
        return CallOutcome(
            operation, error=error, duration_ms=duration_ms, idempotency_key=idempotency_key, amount=amount
        )
    duration_ms = int((time.monotonic() - started) * 1000)
    return CallOutcome(
        operation, answer=answer, duration_ms=duration_ms, idempotency_key=idempotency_key, amount=amount
    )


# Our own reads of the gateway's current record (``poll_transaction``), as opposed to answers and callbacks.
FRESH_READS = frozenset({"status", "find"})


def poll_transaction(gateway: PaymentGateway, payment_id: str, reference: str | None) -> CallOutcome:
    """Read the gateway's record of the payment: by its transaction id when we know it, else by our
    reference (after a timeout we may not know the id; no answer then means no record)."""
    if reference is not None:
        return call_gateway("status", lambda: gateway.transaction(reference))
    return call_gateway("find", lambda: gateway.find_transaction(payment_id))


def attempt_row(
    outcome: CallOutcome, *, payment_id: str, gateway: str, refund_id: str | None = None
) -> GatewayAttempt:
    answer, error = outcome.answer, outcome.error
    if error is not None:
        kind = "unknown" if outcome.unknown else "refused"
        raw_status, reference, code, message = error.raw_status, None, error.code, str(error)[:300]
    else:
        kind = "ok"
        raw_status = getattr(answer, "raw_status", None)
        reference = getattr(answer, "gateway_reference", None)
        code = getattr(answer, "decline_code", None) or getattr(answer, "failure_code", None)
        message = None
    return GatewayAttempt(
        payment_id=payment_id,
        refund_id=refund_id,
        gateway=gateway,
        operation=outcome.operation,
        idempotency_key=outcome.idempotency_key,
        amount=outcome.amount,
        outcome=kind,
        raw_status=raw_status,
        gateway_reference=reference,
        error_code=code,
        message=message,
        duration_ms=outcome.duration_ms,
        created_at=utcnow(),
    )


def callback_attempt(
    *,
    payment_id: str,
    gateway: str,
    event_type: str,
    raw_status: str | None,
    gateway_reference: str | None,
    refund_id: str | None = None,
    outcome: str = "ok",
) -> GatewayAttempt:
    """A callback is recorded beside the calls, so one payment's whole gateway story reads in one place.

    ``outcome``: ``ok`` (read and applied as news), or ``UNMAPPED`` (genuine, but of a type or
    status we do not map: recorded, not applied).
    """
    return GatewayAttempt(
        payment_id=payment_id,
        refund_id=refund_id,
        gateway=gateway,
        operation=f"callback:{event_type}"[:30],
        outcome=outcome,
        # Sized to the columns: an unmapped callback's words are the gateway's, of any length.
        raw_status=None if raw_status is None else raw_status[:40],
        gateway_reference=None if gateway_reference is None else gateway_reference[:100],
        created_at=utcnow(),
    )
