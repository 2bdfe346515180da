"""Sending SMS. The service layer sees only the ``SmsSender`` and ``SmsGateway`` ports (``domain/ports.py``).
The file outbox is the development and test implementation (tests read the file like a phone would;
production refuses it); ``HttpSmsProvider`` hands each SMS to a provider's HTTP API (the SMS-gateway
sandbox, ``sandbox/sms``, in development) and reads its signed delivery receipts. ``make_sms_sender``
picks one by name (``SMS_BACKEND``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import requests

from services.onboarding.config import OnboardingConfig
from services.onboarding.domain.ports import (
    InvalidSmsReceipt,
    SmsDeliveryError,
    SmsGateway,
    SmsReceipt,
    SmsRejected,
    SmsSender,
)
from shared.db import utcnow
from shared.ids import new_id
from shared.partners import traced_session
from shared.signatures import SignatureError, verify

# The provider's signature header on delivery receipts (same scheme as the bank's callbacks).
RECEIPT_SIGNATURE_HEADER = "Sms-Signature"
# Every receipt type the provider sends, mapped: anything else is an intermediate state.
RECEIPT_STATUSES: Mapping[str, Literal["delivered", "failed"]] = {
    "message.delivered": "delivered",
    "message.failed": "failed",
}

__all__ = [
    "SMS_BACKENDS",
    "FileSmsOutbox",
    "HttpSmsProvider",
    "SmsDeliveryError",
    "SmsGateway",
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

    def submit(self, to: str, text: str, *, reference: str) -> str:
        self.send(to, text)
        return new_id("filesms")

    def parse_receipt(self, headers: Mapping[str, str], raw_body: bytes) -> SmsReceipt:
        raise InvalidSmsReceipt("the file SMS backend sends no delivery receipts")

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every SMS written so far (oldest first), optionally only those to one number."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            sent = [json.loads(line) for line in handle if line.strip()]
        return [message for message in sent if to is None or message["to"] == to]


class HttpSmsProvider:
    """Hands each SMS to a provider's HTTP API: ``POST <url>`` with ``{"to", "text", "sender"}`` as
    JSON (plus ``reference`` and ``callback_url`` for a notification, and the reference as the
    ``Idempotency-Key``) and the API key as a bearer token. A 2xx is accepted (its ``id`` is the
    message id); a 4xx is an ``SmsRejected``; a 5xx, a timeout or a connection error is an
    ``SmsDeliveryError`` (worth retrying). No error message holds the key or the text."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        sender_id: str,
        timeout_seconds: float,
        receipt_url: str | None = None,
        receipt_secrets: tuple[str, ...] = (),
        receipt_tolerance_seconds: int = 300,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self.sender_id = sender_id
        self.timeout_seconds = timeout_seconds
        self.receipt_url = receipt_url
        self._receipt_secrets = receipt_secrets
        self.receipt_tolerance_seconds = receipt_tolerance_seconds
        self._http = session or traced_session()

    def __repr__(self) -> str:
        return f"HttpSmsProvider(url={self.url!r})"

    def send(self, to: str, text: str) -> None:
        self._post({"to": to, "text": text, "sender": self.sender_id}, idempotency_key=None)

    def submit(self, to: str, text: str, *, reference: str) -> str:
        body: dict[str, Any] = {"to": to, "text": text, "sender": self.sender_id, "reference": reference}
        if self.receipt_url:
            body["callback_url"] = self.receipt_url
        answer = self._post(body, idempotency_key=reference)
        message_id = answer.get("id") or answer.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise SmsDeliveryError("the SMS provider answered without a message id")
        return message_id

    def parse_receipt(self, headers: Mapping[str, str], raw_body: bytes) -> SmsReceipt:
        if not self._receipt_secrets:
            raise InvalidSmsReceipt("no receipt secret is configured")
        try:
            verify(
                self._receipt_secrets,
                headers.get(RECEIPT_SIGNATURE_HEADER),
                raw_body,
                tolerance_seconds=self.receipt_tolerance_seconds,
            )
        except SignatureError as exc:
            raise InvalidSmsReceipt(f"signature {exc.reason}") from None
        try:
            event = json.loads(raw_body)
            data = event["data"]
            receipt_id, message_id = str(event["id"]), str(data["message_id"])
            event_type = str(event["type"])
        except (ValueError, KeyError, TypeError):
            raise InvalidSmsReceipt("the receipt is not a delivery receipt") from None
        error_code = data.get("error_code")
        return SmsReceipt(
            receipt_id=receipt_id,
            message_id=message_id,
            status=RECEIPT_STATUSES.get(event_type, "other"),
            error_code=str(error_code)[:40] if error_code else None,
        )

    def _post(self, body: dict[str, Any], *, idempotency_key: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self._http.post(self.url, json=body, headers=headers, timeout=self.timeout_seconds)
        except requests.RequestException as exc:
            raise SmsDeliveryError(f"the SMS provider could not be reached ({type(exc).__name__})") from None
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise SmsRejected(f"the SMS provider refused the message ({response.status_code})")
        if not 200 <= response.status_code < 300:
            raise SmsDeliveryError(f"the SMS provider answered {response.status_code}")
        try:
            answer = response.json()
        except (ValueError, AttributeError):
            return {}  # OTP sends need no message id; submit() refuses an answer without one
        return answer if isinstance(answer, dict) else {}


def _file_outbox(config: OnboardingConfig) -> SmsGateway:
    return FileSmsOutbox(config.sms_outbox_file)


def _http_provider(config: OnboardingConfig) -> SmsGateway:
    return HttpSmsProvider(
        config.sms_provider_url,
        api_key=config.sms_provider_api_key,
        sender_id=config.sms_sender_id,
        timeout_seconds=config.http_timeout_seconds,
        receipt_url=f"{config.public_url.rstrip('/')}/v1/sms/receipts",
        receipt_secrets=tuple(part for part in config.sms_receipt_secret.split(",") if part),
        receipt_tolerance_seconds=config.bank_callback_tolerance_seconds,
    )


# The SMS backends, by the name SMS_BACKEND gives (OnboardingConfig.validate checks the name).
SMS_BACKENDS: Mapping[str, Callable[[OnboardingConfig], SmsGateway]] = {
    "file": _file_outbox,
    "http": _http_provider,
}


def make_sms_sender(config: OnboardingConfig) -> SmsGateway:
    return SMS_BACKENDS[config.sms_backend](config)
