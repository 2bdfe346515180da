"""Sending SMS. The service layer sees only the ``SmsSender`` port (``domain/ports.py``); the file outbox is the development and
test implementation (tests read the file like a phone would); a provider adapter goes beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from services.onboarding.domain.ports import SmsDeliveryError, SmsSender
from shared.db import utcnow

__all__ = ["FileSmsOutbox", "SmsDeliveryError", "SmsSender", "make_sms_sender"]


class FileSmsOutbox:
    """Appends one JSON line per SMS to a file. Several processes may write it at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, to: str, text: str) -> None:
        line = json.dumps({"to": to, "text": text, "sent_at": utcnow().isoformat()}, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.write(line + "\n")
        except OSError as exc:
            raise SmsDeliveryError(f"could not write the SMS outbox: {exc.strerror}") from None

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every SMS written so far (oldest first), optionally only those to one number."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            sent = [json.loads(line) for line in handle if line.strip()]
        return [message for message in sent if to is None or message["to"] == to]


def make_sms_sender(backend: str, outbox_path: str) -> SmsSender:
    if backend == "file":
        return FileSmsOutbox(outbox_path)
    raise ValueError(f"unknown SMS backend {backend!r}")
