"""Staff members' names, for pages that show who did what: the services' audit trails name people
by id (``stf_…``), onboarding's ``GET /v1/staff/{id}`` says who that is.

Names are kept a few minutes per console process (they seldom change, and a page of history
names the same few people again and again); one that cannot be looked up is shown as its id, and
not asked for again for a minute (a page naming the same person twenty times while onboarding is
down waits for one answer, not twenty).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

from services.console.adapters.hirfa_api import ApiError, ServiceApi

STAFF_ID_PREFIX = "stf_"
# A staff id as onboarding makes them: the prefix, then a ULID (Crockford base32).
_STAFF_ID = re.compile(re.escape(STAFF_ID_PREFIX) + r"[0-9A-Za-z]{1,40}")


class StaffDirectory:
    def __init__(
        self,
        onboarding: ServiceApi,
        *,
        keep_seconds: float = 600.0,
        keep_unknown_seconds: float = 60.0,
        capacity: int = 1000,
    ) -> None:
        self.onboarding = onboarding
        self.keep_seconds = keep_seconds
        self.keep_unknown_seconds = keep_unknown_seconds
        self.capacity = capacity
        self._names: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StaffDirectory({self.onboarding!r})"

    def name_of(self, token: str, staff_id: str) -> str | None:
        """The staff member's name, or None (not a staff id, unknown, or onboarding not answering)."""
        # Only a well-formed id goes into the address: audit text is not ours to put in a URL.
        if not _STAFF_ID.fullmatch(staff_id):
            return None
        now = time.monotonic()
        with self._lock:
            kept = self._names.get(staff_id)
            if kept is not None:
                at, name = kept
                if now - at < (self.keep_seconds if name else self.keep_unknown_seconds):
                    return name
        try:
            card = self.onboarding.get(token, f"/v1/staff/{staff_id}")
        except ApiError:
            card = None
        found = str(card.get("name") or "") if isinstance(card, dict) else ""
        with self._lock:
            self._names[staff_id] = (now, found or None)
            self._names.move_to_end(staff_id)
            while len(self._names) > self.capacity:
                self._names.popitem(last=False)
        return found or None
