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


# Every pair of characters (10 bits): an id is encoded in half as many steps, on every posting.
_PAIRS = tuple(first + second for first in _CROCKFORD for second in _CROCKFORD)


def _encode(value: int, length: int) -> str:
    """The low ``5 * length`` bits of ``value`` as ``length`` Crockford characters."""
    pairs, odd = divmod(length, 2)
    head = _CROCKFORD[(value >> (10 * pairs)) & 31] if odd else ""
    return head + "".join([_PAIRS[(value >> shift) & 1023] for shift in range(10 * (pairs - 1), -1, -10)])


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


# A block of ids is a shared head and a counter in the last eight characters (40 bits), so SQL can
# spell a block's ids with integer arithmetic (``ulid_tail_sql``).
_TAIL_BITS = 40
_TAIL_LENGTH = _TAIL_BITS // 5


def reserve_ulids(count: int) -> tuple[str, int]:
    """Reserve ``count`` consecutive ULIDs at once, for rows written by one set-based statement.

    Returns ``(head, first)``: the i-th id of the block (0 ≤ i < count) is ``head`` followed by
    ``first + i`` in eight Crockford characters. The block is taken from the same clock and counter
    as ``new_ulid``, so ids made afterwards in this process still sort after it and never repeat
    one of it; its tail never wraps (the block starts at the next tail boundary when it would)."""
    global _last_millis, _last_random
    if not 0 < count < 1 << (_TAIL_BITS - 1):
        raise ValueError(f"a block of {count} ids")
    tail_mask = (1 << _TAIL_BITS) - 1
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis <= _last_millis:
            millis = _last_millis
            start = _last_random + 1
        else:
            _last_millis = millis
            # The tail's top bit clear: room for a block without wrapping, as a rule.
            start = int.from_bytes(os.urandom(10), "big") & ~(1 << (_TAIL_BITS - 1))
        if (start & tail_mask) + count > tail_mask:
            start = ((start >> _TAIL_BITS) + 1) << _TAIL_BITS
        start &= (1 << 80) - 1
        _last_random = start + count - 1
        head = _encode(millis, 10) + _encode(start >> _TAIL_BITS, 16 - _TAIL_LENGTH)
        return head, start & tail_mask


def ulid_in_block(head: str, number: int) -> str:
    """The id of a block that ``reserve_ulids`` returned ``head`` for, whose tail is ``number``."""
    return head + _encode(number, _TAIL_LENGTH)


def ulid_tail_sql(number: str) -> str:
    """SQL (PostgreSQL and SQLite alike) spelling the integer expression ``number`` (0 ≤ it < 2⁴⁰)
    as the eight Crockford characters ``reserve_ulids``' ids end with."""
    return " || ".join(
        f"substr('{_CROCKFORD}', CAST((({number}) >> {shift}) & 31 AS INTEGER) + 1, 1)"
        for shift in range(_TAIL_BITS - 5, -1, -5)
    )


def new_id(prefix: str) -> str:
    """A new id with the given prefix, e.g. ``new_id("art")``."""
    return f"{prefix}_{new_ulid()}"


def has_prefix(value: object, prefix: str) -> bool:
    """True when ``value`` is a well-formed id carrying ``prefix``."""
    if not isinstance(value, str):
        return False
    match = _ID_PATTERN.match(value)
    return match is not None and match.group(1) == prefix
