"""The bank-partner API as every service's adapter reaches it: one HTTP client with the partner's
API key, the signed callbacks (``Bank-Signature``), and reading the bank's answers.

Onboarding opens accounts and accounts sends transfers through the same API; each service's
adapter subclasses ``BankPartnerApi`` and adds its resource (openings, transfers) and how to read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

import requests

from shared.config import BankPartnerClientConfig
from shared.partner_ports import InvalidCallback, PartnerError
from shared.partners import PartnerHttpClient, read_signed_callback

SIGNATURE_HEADER = "Bank-Signature"

Resource = TypeVar("Resource")
ResourceReader = Callable[[Mapping[str, Any]], Resource]


@dataclasses.dataclass(frozen=True)
class SignedCallback(Generic[Resource]):
    """A verified callback: the bank's event id and type, and the resource it is about."""

    event_id: str
    type: str
    resource: Resource


class BankPartnerApi:
    """The bank-partner HTTP API. Every call has a timeout; only idempotent calls are retried, and
    ``retries`` of them at most."""

    # Retries of an idempotent call; an adapter whose writes the bank deduplicates may allow more.
    default_retries: ClassVar[int] = 0

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        callback_secret: str,
        timeout: float,
        tolerance_seconds: int = 300,
        retries: int | None = None,
        retry_backoff_seconds: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        retries = self.default_retries if retries is None else retries
        self._client = PartnerHttpClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            retry_backoff_seconds=retry_backoff_seconds,
            session=session,
            name="bank partner",
        )
        self._callback_secret = callback_secret
        self.tolerance_seconds = tolerance_seconds

    @classmethod
    def from_config(cls, config: BankPartnerClientConfig) -> Self:
        """The adapter as a service's settings describe the bank-partner API."""
        return cls(
            config.bank_partner_url,
            api_key=config.bank_partner_api_key,
            callback_secret=config.bank_callback_secret,
            timeout=config.http_timeout_seconds,
            tolerance_seconds=config.bank_callback_tolerance_seconds,
        )

    def _fetch(
        self,
        method: str,
        path: str,
        read: ResourceReader[Resource],
        *,
        what: str,
        body: dict[str, Any] | None = None,
    ) -> Resource:
        """One call the bank deduplicates (on our reference) or that only reads, and its answer read
        with ``read``; an answer that cannot be read is a transient ``PartnerError``."""
        payload = self._client.call(method, path, body, idempotent=True)
        try:
            return read(payload)
        except (ValueError, KeyError, TypeError):
            raise PartnerError(f"bank partner answered with an unreadable {what}", transient=True) from None

    def _fetch_file(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """A file the bank serves (a statement), as bytes; a read, so retried like one."""
        content = self._client.call("GET", path, idempotent=True, params=params, raw=True)
        return bytes(content)

    def _read_callback(
        self, headers: Mapping[str, str], raw_body: bytes, read: ResourceReader[Resource]
    ) -> SignedCallback[Resource]:
        """Verify the signature over the raw body, then read the callback's ``data`` with ``read``."""
        body = read_signed_callback(
            self._callback_secret,
            headers.get(SIGNATURE_HEADER),
            raw_body,
            tolerance_seconds=self.tolerance_seconds,
        )
        try:
            return SignedCallback(
                event_id=str(body["id"]), type=str(body["type"]), resource=read(body["data"])
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidCallback("malformed") from None
