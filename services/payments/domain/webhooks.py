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


# -- endpoint URLs ---------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressKind(enum.StrEnum):
    """What an address is, as far as sending a webhook to it goes."""

    PUBLIC = "public"
    LOOPBACK = "loopback"  # 127.0.0.0/8, ::1
    PRIVATE = "private"  # RFC 1918, shared (carrier-grade NAT) space, IPv6 unique-local
    LINK_LOCAL = "link-local"  # 169.254.0.0/16, fe80::/10
    METADATA = "cloud metadata"  # 169.254.169.254, fd00:ec2::254 and their kind
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"  # 0.0.0.0, ::
    RESERVED = "reserved"  # documentation, benchmarking, 240.0.0.0/4, broadcast: not routable


# Where clouds answer a machine's own credentials. Refused whatever the setting: nothing a
# marketplace could mean lives there, and a request there can hand out the host's secrets.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean…
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure's host channel (a public address)
    )
)
METADATA_HOST_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# IPv6 prefixes that carry an IPv4 address a packet ends up at: judged by that address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def address_kind(address: IPAddress) -> AddressKind:
    """Classify one address. IPv6 forms that lead to an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
    IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:aabb:ccdd::``) are
    judged by that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_kind(embedded)
    if address in METADATA_ADDRESSES:
        return AddressKind.METADATA
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_multicast:
        return AddressKind.MULTICAST
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if any(address in network for network in _PRIVATE_NETWORKS):
        return AddressKind.PRIVATE
    if not address.is_global or address.is_reserved:
        return AddressKind.RESERVED
    return AddressKind.PUBLIC


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress, *, allow_private_networks: bool) -> bool:
    """Public addresses always; loopback and private networks only where the setting allows them
    (development, tests and the sandbox run their receivers there); anything else never."""
    return _kind_allowed(address_kind(address), allow_private_networks)


def first_refused_address(
    addresses: Iterable[IPAddress], *, allow_private_networks: bool
) -> tuple[IPAddress, AddressKind] | None:
    """The first address a webhook must not go to, with its kind; None when every one is fine.
    A name is only as safe as the worst of its addresses: a resolver picks any of them."""
    for address in addresses:
        if not address_allowed(address, allow_private_networks=allow_private_networks):
            return address, address_kind(address)
    return None


def host_address(hostname: str) -> IPAddress | None:
    """The address a URL's host spells, or None for a name. Besides the usual forms, the legacy
    IPv4 spellings that resolvers (and browsers) still accept count: ``2130706433``, ``0x7f.1``,
    ``0177.0.0.1`` all mean 127.0.0.1."""
    name = hostname.rstrip(".")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    return _legacy_ipv4(name)


def _legacy_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """``inet_aton``'s reading: one to four parts in decimal, octal (leading 0) or hex (0x); the last
    part fills the remaining bytes. None when ``name`` is not of that form at all."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        lowered = part.lower()
        try:
            if lowered.startswith("0x"):
                numbers.append(int(lowered[2:] or "0", 16))
            elif len(lowered) > 1 and lowered.startswith("0"):
                numbers.append(int(lowered, 8))
            else:
                if not lowered.isdigit():
                    return None
                numbers.append(int(lowered))
        except ValueError:
            return None
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    value = last
    for position, number in enumerate(leading):
        value |= number << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def host_name_kind(hostname: str) -> AddressKind | None:
    """What a host name says of itself before any resolution: ``localhost`` (RFC 6761) and the
    clouds' metadata names. None for other names."""
    name = hostname.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return AddressKind.LOOPBACK
    if name in METADATA_HOST_NAMES:
        return AddressKind.METADATA
    return None


class EndpointUrlError(ValueError):
    """``code``: ``invalid_webhook_url``, ``insecure_webhook_url`` or ``webhook_url_not_public``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


NOT_PUBLIC = "webhook_url_not_public"


def not_public_error(kind: AddressKind) -> EndpointUrlError:
    return EndpointUrlError(
        NOT_PUBLIC,
        f"The URL's host is or resolves to a {kind} address; webhooks go to public addresses only.",
    )


def check_endpoint_url(url: str, *, require_https: bool, allow_private_hosts: bool) -> None:
    """Refuse what is not an absolute http(s) URL we are willing to POST to. A host written as an
    address (or ``localhost``) is judged here; a name is resolved and judged by the service layer,
    and again before every delivery."""
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
    kind = host_name_kind(parts.hostname)
    address = host_address(parts.hostname)
    if address is not None:
        kind = address_kind(address)
    if kind is not None and not _kind_allowed(kind, allow_private_hosts):
        raise not_public_error(kind)


def _kind_allowed(kind: AddressKind, allow_private_networks: bool) -> bool:
    if kind is AddressKind.PUBLIC:
        return True
    return allow_private_networks and kind in (AddressKind.LOOPBACK, AddressKind.PRIVATE)


def url_host_and_port(url: str) -> tuple[str, int]:
    """The host to resolve and the port to connect to (the scheme's default when none is given)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


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


# -- the port to the name service (``adapters/webhook_sender.py``'s ``SystemResolver``) ---------------


class HostNotResolved(Exception):
    """``reason``: ``dns_error`` (no such name, no address) or ``dns_timeout``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HostResolver(Protocol):
    """Every address ``host`` resolves to, within ``timeout`` seconds, or ``HostNotResolved``."""

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]: ...
