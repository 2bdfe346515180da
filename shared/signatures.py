"""HMAC signatures for callbacks and webhooks (bank callbacks now, gateway and marketplace webhooks later).

The header value is ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``. Signing the
timestamp with the body lets a receiver refuse replays of an old, genuinely signed message. Several
``v1=`` entries may appear while a secret is being rotated: the message is authentic if any matches.

Always sign and verify the raw bytes as sent on the wire, never a re-serialised JSON document: two
serialisations of the same object need not be byte-identical.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Secret = bytes | str


class SignatureError(ValueError):
    """The signature header is missing, unreadable, stale or does not match.

    ``reason`` is one of ``REASONS``; it is meant for logs and metrics. Tell the sender no more than
    "invalid signature": the reason helps an attacker more than it helps a legitimate sender.
    """

    REASONS = frozenset({"missing", "malformed", "timestamp_outside_tolerance", "mismatch"})

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown signature error reason: {reason!r}")
        super().__init__(message)
        self.reason = reason


def _secret_bytes(secret: Secret | bytearray | memoryview) -> bytes:
    if isinstance(secret, str):
        raw = secret.encode("utf-8")
    elif isinstance(secret, bytes | bytearray | memoryview):
        raw = bytes(secret)
    else:
        raise TypeError(f"signature secret must be bytes or str, not {type(secret).__name__}")
    if not raw:
        # An empty key still yields an HMAC, one that anybody can compute.
        raise ValueError("signature secret must not be empty")
    return raw


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    signed_payload = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret, signed_payload, hashlib.sha256).hexdigest()


def sign(secret: Secret, body: bytes, timestamp: int | None = None) -> str:
    """Return the signature header value for ``body``, stamped with ``timestamp`` (default: now)."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    if stamp < 0:
        raise ValueError("timestamp must not be negative")
    return f"t={stamp},{SCHEME}={_digest(_secret_bytes(secret), stamp, body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator or not key:
            raise SignatureError("malformed", "Signature header items must be key=value pairs.")
        if key == "t":
            timestamps.append(value.strip())
        elif key == SCHEME:
            signatures.append(value.strip().lower())
        # Other keys (a future "v2", say) are ignored so senders can add schemes without breaking us.
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise SignatureError("malformed", "Signature header needs exactly one numeric t= timestamp.")
    if not signatures:
        raise SignatureError("malformed", f"Signature header has no {SCHEME}= signature.")
    return int(timestamps[0]), signatures


def verify(
    secret: Secret | Sequence[Secret],
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check ``header`` against ``body``; return its timestamp or raise ``SignatureError``.

    ``secret`` may be a sequence of secrets (old and new during a rotation): any one may match. The
    timestamp must be within ``tolerance_seconds`` of ``now`` in either direction, so neither a
    replayed old message nor one stamped in the future (to outlive the window) is accepted.
    """
    if tolerance_seconds < 0:
        raise ValueError("tolerance_seconds must not be negative")
    # One secret is bytes or text; anything else is several (bytes is a sequence too, of ints).
    secrets: list[Secret | bytearray | memoryview] = (
        [secret] if isinstance(secret, bytes | bytearray | memoryview | str) else list(secret)
    )
    if not secrets:
        raise ValueError("at least one secret is needed to verify a signature")
    keys = [_secret_bytes(one) for one in secrets]

    if header is None or not header.strip():
        raise SignatureError("missing", "No signature header.")
    timestamp, candidates = _parse_header(header)

    expected = [_digest(key, timestamp, body).encode("ascii") for key in keys]
    # Compare every pair without stopping early, so timing does not reveal which entry matched.
    matched = False
    for candidate in candidates:
        candidate_bytes = candidate.encode("utf-8", errors="replace")
        for digest in expected:
            matched |= hmac.compare_digest(candidate_bytes, digest)
    if not matched:
        raise SignatureError("mismatch", "No signature matches the body.")

    # Checked after authenticity, so a stale-timestamp reason in the logs always means a genuine
    # message replayed (or a sender clock that drifted), never a forgery.
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp_outside_tolerance", "Signature timestamp is outside the tolerance.")
    return timestamp
