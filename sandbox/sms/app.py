"""The SMS-gateway sandbox's Flask app: an HTTP SMS provider, with signed delivery receipts.

``POST /v1/messages`` with ``{"to", "text", "sender"[, "callback_url", "reference"]}`` and the API
key as a bearer token answers 201 with the message id (``msg_…``), its encoding and its segments.
An ``Idempotency-Key`` header makes a retried submission answer the same message, sent once.
Some time later a signed receipt (``Sms-Signature: t=…,v1=HMAC-SHA256(secret, t.body)``, the same
scheme as the bank's) goes to the message's ``callback_url`` (else ``SMS_SANDBOX_DEFAULT_CALLBACK_URL``):
``{"id": "evt_…", "type": "message.delivered" | "message.failed", "created", "data": {"message_id",
"reference", "status", "error_code"}}``, twice when ``SMS_SANDBOX_DUPLICATE_CALLBACKS`` is on (the
default). ``GET /v1/messages?to=`` lists what the sandbox received (oldest first), as a phone would
read it: tests read OTP codes and notifications there.

Test data: a number ending in ``0000`` and one more digit (``+212612340001``) is a test number,
and that digit picks what happens; every other number is delivered.

    number ends in   outcome
    00001            accepted, then a ``message.failed`` receipt (error_code ``unreachable``)
    00002            the first submission of each text answers 503, the next ones are accepted
    00003            every submission answers 503 (the gateway is down for that number)
    00004            refused at once: 400 ``invalid_number`` (not worth retrying)
    00007            accepted, delivered, but the receipt comes late (``late_receipt_seconds``)
    anything else    accepted, then a ``message.delivered`` receipt

Run it as one process (state is in memory): ``python -m sandbox.sms --port 8012``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import secrets
import threading
import time
from typing import Any

from flask import Flask, jsonify, request

from sandbox.common.auth import require_api_key
from sandbox.common.callbacks import CallbackSender, new_event
from sandbox.common.errors import ApiError, register_error_handlers
from sandbox.sms.config import SandboxSmsConfig

SIGNATURE_HEADER = "Sms-Signature"
USER_AGENT = "hirfa-sms-sandbox/1"
CALLBACKS_EXTENSION_KEY = "sms_sandbox.callbacks"
_PUBLIC_ENDPOINTS = {"healthz"}
_MAX_TEXT = 1600  # ten concatenated segments, as many real gateways cap it

# GSM 03.38 basic set and extension table: anything else is sent as UCS-2.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def encoding_and_segments(text: str) -> tuple[str, int]:
    if all(char in _GSM7 or char in _GSM7_EXTENSION for char in text):
        length = sum(2 if char in _GSM7_EXTENSION else 1 for char in text)
        return "GSM-7", 1 if length <= 160 else math.ceil(length / 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else math.ceil(units / 67)


@dataclasses.dataclass
class SmsMessage:
    id: str
    to: str
    text: str
    sender: str
    reference: str | None
    callback_url: str | None
    encoding: str
    segments: int
    status: str = "accepted"  # accepted | delivered | failed
    created_at: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "text": self.text,
            "sender": self.sender,
            "reference": self.reference,
            "status": self.status,
            "encoding": self.encoding,
            "segments": self.segments,
            "created_at": int(self.created_at),
        }


class Gateway:
    """What the sandbox received, in memory, and the receipts it owes."""

    def __init__(self, config: SandboxSmsConfig, callbacks: CallbackSender) -> None:
        self.config = config
        self.callbacks = callbacks
        self._lock = threading.Lock()
        self._messages: list[SmsMessage] = []
        self._by_key: dict[str, SmsMessage] = {}
        self._seen_texts: set[str] = set()

    def submit(self, body: dict[str, Any], idempotency_key: str | None) -> tuple[SmsMessage, bool]:
        to, text, sender = _text(body, "to", 20), _text(body, "text", _MAX_TEXT), _text(body, "sender", 11)
        callback_url = body.get("callback_url") or self.config.default_callback_url or None
        reference = body.get("reference")
        if not to.startswith("+") or not to[1:].isdigit():
            raise ApiError(422, "invalid_request", "to: an E.164 number, e.g. +212612345678.", param="to")
        with self._lock:
            if idempotency_key and idempotency_key in self._by_key:
                return self._by_key[idempotency_key], False
            last = test_digit(to)
            if last == "4":
                raise ApiError(400, "invalid_number", "This number cannot receive SMS.", param="to")
            if last == "3":
                raise ApiError(503, "gateway_unavailable", "The gateway is unavailable for this number.")
            fingerprint = hashlib.sha256(f"{to}\x00{text}".encode()).hexdigest()
            if last == "2" and fingerprint not in self._seen_texts:
                self._seen_texts.add(fingerprint)
                raise ApiError(503, "gateway_unavailable", "The gateway is briefly unavailable; retry.")
            encoding, segments = encoding_and_segments(text)
            message = SmsMessage(
                id="msg_" + secrets.token_hex(12),
                to=to,
                text=text,
                sender=sender,
                reference=str(reference) if reference is not None else None,
                callback_url=str(callback_url) if callback_url else None,
                encoding=encoding,
                segments=segments,
            )
            self._messages.append(message)
            if idempotency_key:
                self._by_key[idempotency_key] = message
        delay = self.config.late_receipt_seconds if last == "7" else self.config.receipt_delay_seconds
        self.callbacks.schedule(delay, lambda: self._settle(message))
        return message, True

    def messages(self, to: str | None) -> list[SmsMessage]:
        with self._lock:
            return [message for message in self._messages if to is None or message.to == to]

    def _settle(self, message: SmsMessage) -> None:
        failed = test_digit(message.to) == "1"
        message.status = "failed" if failed else "delivered"
        if not message.callback_url:
            return
        event = new_event(
            f"message.{message.status}",
            {
                "message_id": message.id,
                "reference": message.reference,
                "status": message.status,
                "error_code": "unreachable" if failed else None,
            },
        )
        self.callbacks.deliver(message.callback_url, event)


def test_digit(number: str) -> str | None:
    """The digit that picks a test number's outcome (``…0000d``), or ``None`` for any other number."""
    return number[-1] if len(number) > 5 and number[-5:-1] == "0000" else None


def _text(body: dict[str, Any], name: str, max_length: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ApiError(
            422,
            "invalid_request",
            f"{name}: a non-empty string of at most {max_length} characters.",
            param=name,
        )
    return value


def create_app(config: SandboxSmsConfig | None = None) -> Flask:
    config = config or SandboxSmsConfig.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    log = logging.getLogger("sandbox.sms")
    register_error_handlers(
        app,
        log=log,
        server_error_code="internal_error",
        server_error_message="The SMS sandbox failed unexpectedly.",
    )
    require_api_key(app, config.api_key, realm="sms-sandbox", public_endpoints=_PUBLIC_ENDPOINTS)
    callbacks = CallbackSender(
        config,
        signature_header=SIGNATURE_HEADER,
        user_agent=USER_AGENT,
        log=logging.getLogger("sandbox.sms.receipts"),
    )
    app.extensions[CALLBACKS_EXTENSION_KEY] = callbacks
    gateway = Gateway(config, callbacks)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/v1/messages")
    def submit():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "Send a JSON object.")
        message, created = gateway.submit(body, request.headers.get("Idempotency-Key"))
        answer = {key: message.to_json()[key] for key in ("id", "status", "encoding", "segments")}
        return jsonify(answer), 201 if created else 200

    @app.get("/v1/messages")
    def list_messages():
        return jsonify(data=[message.to_json() for message in gateway.messages(request.args.get("to"))])

    return app


def stop_background_work(app: Flask, timeout_seconds: float = 5.0) -> None:
    """Cancel pending receipts and wait for deliveries in flight (tests call it between cases)."""
    app.extensions[CALLBACKS_EXTENSION_KEY].close(timeout_seconds)
