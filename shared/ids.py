"""Prefixed, time-sortable resource ids (``art_01JD…``).

The body is a ULID: 48 bits of milliseconds since the epoch then 80 random bits, in Crockford
base32. Ids sort by creation time as plain strings, which is what cursor pagination relies on.
Within one process, ids made in the same millisecond still increase (the random part is bumped).
"""

from __future__ import annotations

import os
import re
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_ID_PATTERN = re.compile(r"^([a-z]{2,8})_([0-9A-HJKMNP-TV-Z]{26})$")

# The prefixes in use, so a wrong-type id is caught at the edge ("pay_…" passed as an artisan id).
PREFIXES = {
    "artisan": "art",
    "payment": "pay",
    "refund": "re",
    "payout": "po",
    "journal_entry": "je",
    "bank_account": "ba",
    "event": "evt",
    "api_client": "cli",
    "ledger_account": "acct",
    "request": "req",
    "ledger_adjustment": "adj",
}

_lock = threading.Lock()
_last_millis = -1
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ulid() -> str:
    global _last_millis, _last_random
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis <= _last_millis:
            millis = _last_millis
            _last_random = (_last_random + 1) & ((1 << 80) - 1)
        else:
            _last_millis = millis
            _last_random = int.from_bytes(os.urandom(10), "big")
        return _encode(millis, 10) + _encode(_last_random, 16)


def new_id(prefix: str) -> str:
    """A new id with the given prefix, e.g. ``new_id("art")``."""
    return f"{prefix}_{new_ulid()}"


def has_prefix(value: object, prefix: str) -> bool:
    """True when ``value`` is a well-formed id carrying ``prefix``."""
    if not isinstance(value, str):
        return False
    match = _ID_PATTERN.match(value)
    return match is not None and match.group(1) == prefix
