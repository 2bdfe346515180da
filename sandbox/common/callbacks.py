"""Signed callbacks to the partner's client, delivered in the background the way partners deliver them.

Each delivery re-signs the same body with a fresh timestamp (``shared.signatures.sign``), so a retry
that comes minutes later is still inside the receiver's tolerance window. With duplicates on, the
whole delivery happens twice with byte-identical bodies (same event id): receivers must be
idempotent on the event id. Connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff and jitter; any other 4xx is final.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from shared.signatures import sign

# Besides 5xx: 408 and 429 say "try again later", every other 4xx says the request itself is refused.
_RETRYABLE_CLIENT_ERRORS = {408, 429}


class CallbackSettings(Protocol):
    @property
    def callback_secret(self) -> str: ...
    @property
    def duplicate_callbacks(self) -> bool: ...
    @property
    def callback_timeout_seconds(self) -> float: ...
    @property
    def callback_retries(self) -> int: ...
    @property
    def callback_backoff_seconds(self) -> float: ...
    @property
    def callback_max_backoff_seconds(self) -> float: ...


def check_callback_settings(config: Any) -> None:
    """Refuse impossible callback settings; ``config`` is an ``EnvConfig`` with the ``CallbackSettings``."""
    if not config.callback_secret:
        config.refuse("callback_secret", "must not be empty")
    if config.callback_timeout_seconds <= 0:
        config.refuse("callback_timeout_seconds", "must be positive")
    if config.callback_retries < 0:
        config.refuse("callback_retries", "must not be negative")
    if config.callback_backoff_seconds < 0 or config.callback_max_backoff_seconds < 0:
        config.refuse("callback_*backoff_seconds", "must not be negative")


def new_event(event_type: str, data: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "data": data,
    }


def _where(url: str) -> str:
    # Only the host goes to the logs: a callback URL may carry a token in its path or query.
    return urlsplit(url).netloc or "?"


class CallbackSender:
    """Background jobs (the partner "thinking") and signed callback deliveries, stoppable as a whole."""

    def __init__(
        self,
        config: CallbackSettings,
        *,
        signature_header: str,
        user_agent: str,
        log: logging.Logger,
    ) -> None:
        self._config = config
        self._signature_header = signature_header
        self._user_agent = user_agent
        self._log = log
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()

    def schedule(self, delay_seconds: float, job: Callable[[], None]) -> None:
        """Run ``job`` on a background thread after ``delay_seconds``."""

        def run() -> None:
            try:
                if not self._stopping.is_set():
                    job()
            except Exception:
                self._log.exception("background job failed")
            finally:
                with self._lock:
                    self._timers.discard(timer)

        timer = threading.Timer(delay_seconds, run)
        timer.daemon = True  # a simulator must never keep its process alive on shutdown
        with self._lock:
            if self._stopping.is_set():
                return
            self._timers.add(timer)
        timer.start()

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` in the calling thread, cut short when the sender closes."""
        self._stopping.wait(seconds)

    def deliver(self, url: str, event: dict[str, Any]) -> None:
        """Send ``event`` to ``url`` (twice when duplicates are on). Blocks: call it from a background job."""
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        copies = 2 if self._config.duplicate_callbacks else 1
        for copy in range(1, copies + 1):
            self._deliver_once(url, body, event_id=event["id"], copy=copy)

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Cancel jobs not yet started, cut retry waits short and wait for running deliveries."""
        self._stopping.set()
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        deadline = time.monotonic() + timeout_seconds
        for timer in timers:
            if timer.is_alive() and timer is not threading.current_thread():
                timer.join(max(deadline - time.monotonic(), 0))

    def _backoff(self, retry: int) -> float:
        base = self._config.callback_backoff_seconds * 2 ** (retry - 1)
        # Jitter spreads retries from many events so they do not hit a recovering receiver at once.
        return min(base, self._config.callback_max_backoff_seconds) * random.uniform(0.8, 1.2)

    def _deliver_once(self, url: str, body: bytes, *, event_id: str, copy: int) -> bool:
        attempts = 1 + self._config.callback_retries
        host = _where(url)

        def note(level: int, outcome: str, attempt: int) -> None:
            # Details go in the message too, so the text logs of a local run show them.
            self._log.log(
                level,
                "callback %s: event %s copy %d attempt %d/%d to %s",
                outcome,
                event_id,
                copy,
                attempt,
                attempts,
                host,
                extra={"event_id": event_id, "copy": copy, "attempt": attempt, "host": host},
            )

        for attempt in range(1, attempts + 1):
            if attempt > 1 and self._stopping.wait(self._backoff(attempt - 1)):
                note(logging.INFO, "abandoned on shutdown", attempt)
                return False
            headers = {
                "Content-Type": "application/json",
                "User-Agent": self._user_agent,
                self._signature_header: sign(self._config.callback_secret, body),
            }
            try:
                response = requests.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=self._config.callback_timeout_seconds,
                    # A redirect would turn the POST into a GET; the receiver must give its real URL.
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                note(logging.WARNING, f"not delivered ({type(exc).__name__})", attempt)
                continue
            status = response.status_code
            if 200 <= status < 300:
                note(logging.INFO, f"delivered ({status})", attempt)
                return True
            if status < 500 and status not in _RETRYABLE_CLIENT_ERRORS:
                note(logging.WARNING, f"refused ({status}), not retried", attempt)
                return False
            note(logging.WARNING, f"failed ({status})", attempt)
        note(logging.ERROR, "given up", attempts)
        return False
