"""Artisans' sessions: opaque refresh tokens, device ids, and the lockout after failed codes.

Pure rules, no I/O: the service layer stores what these functions decide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

# A device id is the app's own identifier for its installation (a UUID is ideal): printable, no
# spaces, short enough to index.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
REFRESH_TOKEN_PREFIX = "hrt_"


def is_device_id(value: str) -> bool:
    return bool(_DEVICE_ID.fullmatch(value))


def new_refresh_token() -> str:
    """256 random bits: a bare SHA-256 is enough to store it (nothing to brute-force)."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class LockoutPolicy:
    max_failed_codes: int = 10
    window: dt.timedelta = dt.timedelta(hours=1)
    lockout: dt.timedelta = dt.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class FailureCount:
    """Wrong codes typed for one phone number since ``window_started_at``, and any lock."""

    failed_codes: int
    window_started_at: dt.datetime
    locked_until: dt.datetime | None = None

    def is_locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def after_failure(self, now: dt.datetime, policy: LockoutPolicy) -> FailureCount:
        """One more wrong code: a fresh window once the old one is over; the lock once too many."""
        if now - self.window_started_at > policy.window:
            failed, started = 1, now
        else:
            failed, started = self.failed_codes + 1, self.window_started_at
        if failed >= policy.max_failed_codes:
            # The count starts over when the lock ends.
            return FailureCount(0, now + policy.lockout, locked_until=now + policy.lockout)
        return FailureCount(failed, started, locked_until=self.locked_until)


def first_failure(now: dt.datetime, policy: LockoutPolicy) -> FailureCount:
    return FailureCount(0, now).after_failure(now, policy)
