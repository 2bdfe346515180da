"""Staff members' names, for pages that show who did what: the services' audit trails name people
by id (``stf_…``), onboarding's ``GET /v1/staff/{id}`` says who that is.

Names are kept a few minutes per console process (they seldom change, and a page of history
names the same few people again and again); one that cannot be looked up is shown as its id.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from services.console.adapters.hirfa_api import ApiError, ServiceApi

STAFF_ID_PREFIX = "stf_"


class StaffDirectory:
    def __init__(self, onboarding: ServiceApi, *, keep_seconds: float = 600.0, capacity: int = 1000) -> None:
        self.onboarding = onboarding
        self.keep_seconds = keep_seconds
        self.capacity = capacity
        self._names: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StaffDirectory({self.onboarding!r})"

    def name_of(self, token: str, staff_id: str) -> str | None:
        """The staff member's name, or None (not a staff id, unknown, or onboarding not answering)."""
        if not staff_id.startswith(STAFF_ID_PREFIX):
            return None
        now = time.monotonic()
        with self._lock:
            kept = self._names.get(staff_id)
            if kept is not None and now - kept[0] < self.keep_seconds:
                return kept[1]
        try:
            card = self.onboarding.get(token, f"/v1/staff/{staff_id}")
        except ApiError:
            return None
        name = str(card.get("name") or "") if isinstance(card, dict) else ""
        if not name:
            return None
        with self._lock:
            self._names[staff_id] = (now, name)
            self._names.move_to_end(staff_id)
            while len(self._names) > self.capacity:
                self._names.popitem(last=False)
        return name
