"""Marketplace webhooks as a domain: what can be subscribed to, what an endpoint URL may be, what an
event looks like on the wire, and when a failed delivery is tried again. No Flask, no SQL, no HTTP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import json
import random
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

# The changes a marketplace can be told of. Every one is announced in the transaction of the change.
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    "payment.requires_action",
    "payment.processing",
    "payment.requires_capture",
    "payment.succeeded",
    "payment.failed",
    "payment.canceled",
    "payment.reversal_updated",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "dispute.opened",
    "dispute.closed",
)
ALL_EVENT_TYPES = "*"

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048


class EndpointStatus(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # deleted by the marketplace: kept for its deliveries' history


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first or next attempt
    DELIVERED = "delivered"  # an attempt got a 2xx
    FAILED = "failed"  # no 2xx before the event grew too old to be retried
    CANCELED = "canceled"  # its endpoint was disabled before it got through


class AttemptTrigger(enum.StrEnum):
    AUTOMATIC = "automatic"  # the worker's schedule
    MANUAL = "manual"  # POST /v1/webhook-deliveries/{id}/retry


def new_signing_secret() -> str:
    """``whsec_`` and 32 random bytes in hex: shown once to the marketplace, the HMAC key as written."""
    return SECRET_PREFIX + secrets.token_hex(SECRET_BYTES)


# -- subscriptions -----------------------------------------------------------------------------------


def unknown_event_types(requested: Iterable[str]) -> list[str]:
    """The requested types that are neither a known type nor ``*``, in the order given."""
    return [
        kind
        for kind in dict.fromkeys(requested)
        if kind != ALL_EVENT_TYPES and kind not in WEBHOOK_EVENT_TYPES
    ]


def normalise_event_types(requested: Iterable[str]) -> list[str]:
    """Without repeats; ``["*"]`` alone when ``*`` is among them (it already means every type)."""
    kinds = list(dict.fromkeys(requested))
    return [ALL_EVENT_TYPES] if ALL_EVENT_TYPES in kinds else kinds


def subscribes_to(event_types: Iterable[str], event_type: str) -> bool:
    kinds = set(event_types)
    return ALL_EVENT_TYPES in kinds or event_type in kinds


# -- endpoint URLs -----------------------------------------------------------------------------------


class EndpointUrlError(ValueError):
    """``code``: ``invalid_webhook_url`` or ``insecure_webhook_url``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_endpoint_url(url: str, *, require_https: bool, allow_private_hosts: bool) -> None:
    """Refuse what is not an absolute http(s) URL we are willing to POST to."""
    if len(url) > MAX_URL_LENGTH or any(char.isspace() or not char.isprintable() for char in url):
        raise EndpointUrlError(
            "invalid_webhook_url", "The URL is too long or contains spaces or control characters."
        )
    if not url.isascii():
        raise EndpointUrlError(
            "invalid_webhook_url",
            "Write the URL in ASCII: punycode for the host, percent-encoding for the path.",
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when it is not a number from 0 to 65535
    except ValueError:
        raise EndpointUrlError("invalid_webhook_url", "The URL cannot be parsed.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointUrlError("invalid_webhook_url", "Give an absolute http:// or https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        # They would sit in the database in clear; the signature is what authenticates us.
        raise EndpointUrlError("invalid_webhook_url", "The URL must not carry a user name or password.")
    if parts.fragment:
        raise EndpointUrlError("invalid_webhook_url", "The URL must not have a #fragment.")
    if port == 0:
        raise EndpointUrlError("invalid_webhook_url", "The URL's port must be between 1 and 65535.")
    if require_https and parts.scheme != "https":
        raise EndpointUrlError("insecure_webhook_url", "Webhook URLs must use https.")
    if not allow_private_hosts and is_private_host(parts.hostname):
        raise EndpointUrlError(
            "invalid_webhook_url", "The URL must name a public host, not a local or private address."
        )


def is_private_host(hostname: str) -> bool:
    """``localhost`` or an IP literal that is not globally routable (loopback, private, link-local…).

    Names are checked again, once resolved, when a delivery connects (see the webhook sender).
    """
    name = hostname.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not is_global_address(address)


def is_global_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def url_host(url: str) -> str:
    """The only part of an endpoint URL that goes into logs (its path or query may hold a token)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


# -- events on the wire ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"a webhook snapshot cannot hold {type(value).__name__}")


def iso_utc(moment: dt.datetime) -> str:
    """``2026-11-23T08:02:59.123Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(
    *, event_id: str, event_type: str, created: dt.datetime, sequence: int, snapshot: dict[str, Any]
) -> str:
    """The JSON document POSTed to endpoints. Serialised once, when the event is recorded, so every
    attempt and every endpoint gets the very same bytes (and signatures over the same body)."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created": iso_utc(created),
            "sequence": sequence,
            "data": {"object": snapshot},
        },
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


# -- retries -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min, 4 min … up to ``cap``, each ±``jitter``,
    for as long as the event is younger than ``max_age``; then the delivery has failed for good."""

    max_age: dt.timedelta = dt.timedelta(hours=72)
    base: dt.timedelta = dt.timedelta(seconds=30)
    cap: dt.timedelta = dt.timedelta(hours=3)
    # Below 1/3 the delays still grow strictly until the cap (0.8 × 2d > 1.2 × d).
    jitter: float = 0.2

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> dt.timedelta:
        """The wait after the ``failed_attempts``-th failed attempt (1 for the first)."""
        exponent = min(max(failed_attempts, 1) - 1, 30)
        seconds = min(self.base.total_seconds() * 2**exponent, self.cap.total_seconds())
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        return dt.timedelta(seconds=seconds * spread)

    def next_attempt(
        self,
        *,
        failed_attempts: int,
        now: dt.datetime,
        event_created: dt.datetime,
        rng: random.Random | None = None,
    ) -> dt.datetime | None:
        """When to try again, or None when that would be past the event's ``max_age``: give up."""
        when = now + self.delay(failed_attempts, rng)
        return None if when > event_created + self.max_age else when


# -- the port to whoever POSTs a webhook (``adapters/webhook_sender.py`` over HTTP) --------------------


@dataclasses.dataclass(frozen=True)
class WebhookRequest:
    url: str
    body: bytes = dataclasses.field(repr=False)
    headers: Mapping[str, str] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class SendOutcome:
    status_code: int | None  # the endpoint's HTTP status, when it answered
    error: str | None  # why there is no status: timeout, connection_refused, …
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender(Protocol):
    """POSTs one webhook; never takes longer than ``timeout``, never raises for the endpoint's faults."""

    def send(self, request: WebhookRequest, timeout: float) -> SendOutcome: ...
