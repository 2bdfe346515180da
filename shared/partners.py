"""Talking to partners over HTTP (banks, gateways): the JSON client every adapter shares, the
signed-callback reader, and a registry of adapters by partner slug.

Every call has a timeout. Only calls the caller declares idempotent are retried (the partner
deduplicates on our reference, or the call only reads), with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import requests

from shared.signatures import SignatureError, verify

log = logging.getLogger(__name__)

Adapter = TypeVar("Adapter")


class PartnerError(RuntimeError):
    """The partner could not be reached or answered with an error. ``transient`` ones may be retried."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class InvalidCallback(ValueError):
    """``reason`` is a ``SignatureError`` reason, or ``malformed`` for a genuine but unreadable body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartnerHttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float,
        retries: int = 0,
        retry_backoff_seconds: float = 0.2,
        session: requests.Session | None = None,
        name: str = "partner",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self._http = session or requests.Session()
        self.name = name

    def _call_once(self, method: str, path: str, body: dict | None) -> Any:
        try:
            response = self._http.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise PartnerError(f"{self.name} unreachable: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise PartnerError(f"{self.name} answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise PartnerError(
                f"{self.name} refused the request ({response.status_code} {_error_code(response)})", transient=False
            )
        try:
            return response.json()
        except ValueError:
            raise PartnerError(f"{self.name} answered with invalid JSON", transient=True) from None

    def call(self, method: str, path: str, body: dict | None = None, *, idempotent: bool) -> Any:
        attempts = 1 + (self.retries if idempotent else 0)
        attempt = 1
        while True:
            try:
                return self._call_once(method, path, body)
            except PartnerError as exc:
                if not exc.transient or attempt >= attempts:
                    raise
                log.info("partner call failed; retrying", extra={"path": path, "attempt": attempt})
                time.sleep(self.retry_backoff_seconds * 2 ** (attempt - 1))
                attempt += 1


def _error_code(response: requests.Response) -> str:
    """The partner's own error code (``{"code", "message"}``), for the logs."""
    try:
        return str(response.json().get("code", "?"))
    except (ValueError, AttributeError):
        return "?"


def read_signed_callback(
    secret: str, signature: str | None, raw_body: bytes, *, tolerance_seconds: int
) -> dict[str, Any]:
    """Verify the HMAC over the raw body (and its replay window), then parse it as JSON."""
    try:
        verify(secret, signature, raw_body, tolerance_seconds=tolerance_seconds)
    except SignatureError as exc:
        raise InvalidCallback(exc.reason) from None
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise InvalidCallback("malformed") from None
    if not isinstance(body, dict):
        raise InvalidCallback("malformed")
    return body


class PartnerRegistry(Generic[Adapter]):
    """Adapters by partner slug (``banque_populaire``, …): the slug names the callback URL too."""

    def __init__(self, adapters: Mapping[str, Adapter]) -> None:
        self._adapters = dict(adapters)

    def get(self, slug: str) -> Adapter:
        return self._adapters[slug]

    def __contains__(self, slug: object) -> bool:
        return slug in self._adapters

    def slugs(self) -> list[str]:
        return sorted(self._adapters)
