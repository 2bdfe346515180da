"""Sending SMS. The service layer sees only the ``SmsSender`` port (``domain/ports.py``). The file outbox is the
development and test implementation (tests read the file like a phone would; production refuses it);
``HttpSmsProvider`` hands each SMS to a provider's HTTP API. ``make_sms_sender`` picks one by name
(``SMS_BACKEND``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from services.onboarding.config import OnboardingConfig
from services.onboarding.domain.ports import SmsDeliveryError, SmsSender
from shared.db import utcnow

__all__ = [
    "SMS_BACKENDS",
    "FileSmsOutbox",
    "HttpSmsProvider",
    "SmsDeliveryError",
    "SmsSender",
    "make_sms_sender",
]


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


class HttpSmsProvider:
    """Hands each SMS to a provider's HTTP API: ``POST <url>`` with ``{"to", "text", "sender"}`` as
    JSON and the API key as a bearer token. Any 2xx is accepted; anything else, a timeout or a
    connection error is an ``SmsDeliveryError`` (whose message never holds the key or the text)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        sender_id: str,
        timeout_seconds: float,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self.sender_id = sender_id
        self.timeout_seconds = timeout_seconds
        self._http = session or requests.Session()

    def __repr__(self) -> str:
        return f"HttpSmsProvider(url={self.url!r})"

    def send(self, to: str, text: str) -> None:
        try:
            response = self._http.post(
                self.url,
                json={"to": to, "text": text, "sender": self.sender_id},
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.timeout_seconds,
            )
        except requests.RequestException as exc:
            raise SmsDeliveryError(f"the SMS provider could not be reached ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise SmsDeliveryError(f"the SMS provider answered {response.status_code}")


def _file_outbox(config: OnboardingConfig) -> SmsSender:
    return FileSmsOutbox(config.sms_outbox_file)


def _http_provider(config: OnboardingConfig) -> SmsSender:
    return HttpSmsProvider(
        config.sms_provider_url,
        api_key=config.sms_provider_api_key,
        sender_id=config.sms_sender_id,
        timeout_seconds=config.http_timeout_seconds,
    )


# The SMS backends, by the name SMS_BACKEND gives (OnboardingConfig.validate checks the name).
SMS_BACKENDS: Mapping[str, Callable[[OnboardingConfig], SmsSender]] = {
    "file": _file_outbox,
    "http": _http_provider,
}


def make_sms_sender(config: OnboardingConfig) -> SmsSender:
    return SMS_BACKENDS[config.sms_backend](config)
