"""HTTP glue for M2T: paths, the API key, the ``Idempotency-Key`` of every POST, timeouts, retries,
and the translation of transport failures into the gateway interface's errors. No wire JSON is read
here beyond M2T's ``{"code", "message"}`` error shape: ``transformers`` does that.

Every M2T POST carries an ``Idempotency-Key`` (M2T answers a replay with its stored first answer), so
every call is safe to retry and all are declared idempotent. What a failure means for the money:

- timeout, lost connection, 5xx, an unreadable 2xx (``PartnerError.transient``) after the retries:
  ``GatewayOutcomeUnknown``: it may have happened; the caller finds out by a status query;
- 4xx: ``GatewayRequestRefused`` with M2T's own ``code``: nothing happened;
- except a 409 answered to a retry after an attempt whose outcome was unknown: M2T may be telling
  us the first attempt did happen (``duplicate_reference``, ``already_captured``,
  ``refund_exceeds_captured`` once the first refund counts), so that too is ``GatewayOutcomeUnknown``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from services.payments.domain.call_budget import RETRY_JITTER
from services.payments.domain.gateway import GatewayOutcomeUnknown, GatewayRequestRefused
from shared.partner_ports import PartnerError
from shared.partners import PartnerHttpClient

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _segment(value: str) -> str:
    """One path segment: an id from our database must not be able to change the path."""
    if not isinstance(value, str) or not value:
        raise GatewayRequestRefused("an M2T id must be a non-empty string", code="invalid_reference")
    return quote(value, safe="")


def gateway_error(exc: PartnerError) -> GatewayOutcomeUnknown | GatewayRequestRefused:
    """The gateway error a ``PartnerError`` from M2T means (see the module docstring)."""
    if exc.transient:
        return GatewayOutcomeUnknown(f"M2T outcome unknown: {exc}", code=exc.code or exc.kind)
    if exc.earlier_outcome_unknown and exc.status == 409:
        return GatewayOutcomeUnknown(
            f"M2T refused a retry ({exc.code}) after an attempt whose outcome is unknown", code=exc.code
        )
    return GatewayRequestRefused(
        f"M2T refused the request: {exc}", code=exc.code or f"http_{exc.status or 'error'}"
    )


class M2TClient:
    """The M2T REST API, one method per endpoint, answering M2T's JSON as it came."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float | tuple[float, float],
        retries: int = 2,
        retry_backoff_seconds: float = 0.3,
        retry_max_backoff_seconds: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._http = PartnerHttpClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            retry_backoff_seconds=retry_backoff_seconds,
            retry_max_backoff_seconds=retry_max_backoff_seconds,
            retry_jitter=RETRY_JITTER,
            session=session,
            name="M2T",
        )

    def __repr__(self) -> str:
        return f"M2TClient(base_url={self._http.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        try:
            return self._http.call("GET", path, idempotent=True, params=params)
        except PartnerError as exc:
            raise gateway_error(exc) from None

    def _post(self, path: str, body: Mapping[str, Any], idempotency_key: str) -> Any:
        if not idempotency_key:
            raise GatewayRequestRefused(
                "every M2T POST needs an idempotency key", code="idempotency_key_required"
            )
        try:
            # Idempotent: M2T answers a retry with the same key by its stored first answer.
            return self._http.call(
                "POST", path, dict(body), idempotent=True, headers={IDEMPOTENCY_HEADER: idempotency_key}
            )
        except PartnerError as exc:
            raise gateway_error(exc) from None

    # -- tokens (sandbox only) --------------------------------------------------------------------

    def create_token(self, body: Mapping[str, Any]) -> Any:
        # The call's own key: retries of this call are replays; another call is another token.
        return self._post("/v1/tokens", body, idempotency_key=uuid.uuid4().hex)

    # -- transactions -----------------------------------------------------------------------------

    def create_transaction(self, body: Mapping[str, Any], idempotency_key: str) -> Any:
        return self._post("/v1/transactions", body, idempotency_key)

    def get_transaction(self, transaction_id: str) -> Any:
        return self._get(f"/v1/transactions/{_segment(transaction_id)}")

    def list_transactions(self, reference: str) -> Any:
        return self._get("/v1/transactions", params={"reference": reference})

    def complete_three_ds(self, transaction_id: str, idempotency_key: str) -> Any:
        return self._post(f"/v1/transactions/{_segment(transaction_id)}/3ds/complete", {}, idempotency_key)

    def capture(self, transaction_id: str, body: Mapping[str, Any], idempotency_key: str) -> Any:
        return self._post(f"/v1/transactions/{_segment(transaction_id)}/capture", body, idempotency_key)

    def void(self, transaction_id: str, idempotency_key: str) -> Any:
        return self._post(f"/v1/transactions/{_segment(transaction_id)}/void", {}, idempotency_key)

    # -- refunds ----------------------------------------------------------------------------------

    def create_refund(self, transaction_id: str, body: Mapping[str, Any], idempotency_key: str) -> Any:
        return self._post(f"/v1/transactions/{_segment(transaction_id)}/refunds", body, idempotency_key)

    def get_refund(self, refund_id: str) -> Any:
        return self._get(f"/v1/refunds/{_segment(refund_id)}")

    def list_refunds(self, reference: str) -> Any:
        return self._get("/v1/refunds", params={"reference": reference})

    # -- disputes ---------------------------------------------------------------------------------

    def get_dispute(self, dispute_id: str) -> Any:
        return self._get(f"/v1/disputes/{_segment(dispute_id)}")

    # -- sandbox control (the M2T sandbox only: tests and demos) -----------------------------------

    def sandbox_open_dispute(
        self,
        transaction_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {}
        if amount is not None:
            body["amount"] = amount
        if reason is not None:
            body["reason"] = reason
        return self._post(
            f"/v1/sandbox/transactions/{_segment(transaction_id)}/disputes",
            body,
            idempotency_key or uuid.uuid4().hex,
        )

    def sandbox_close_dispute(
        self, dispute_id: str, outcome: str, *, idempotency_key: str | None = None
    ) -> Any:
        return self._post(
            f"/v1/sandbox/disputes/{_segment(dispute_id)}/close",
            {"outcome": outcome},
            idempotency_key or uuid.uuid4().hex,
        )
