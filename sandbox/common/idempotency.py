"""``Idempotency-Key`` for the sandboxes' POSTs, so a client can retry anything safely.

- No header: 400 ``idempotency_key_required`` where the key is required (every M2T API POST; the
  3-D Secure page's form, posted by the buyer's browser, is not an API call and needs none). Where
  it is optional (the bank sandbox's test helpers), a POST without one simply runs.
- The first successful (2xx) answer to a key is stored with a fingerprint of the request (method,
  path and JSON body, compared as parsed JSON so key order and spacing do not matter). The same key
  with the same request gets that answer again, same body and status (or the endpoint's replay
  status), with ``Idempotent-Replayed: true``; nothing is done a second time and no callback is sent
  again.
- The same key with another request (other body or other endpoint): 409 ``idempotency_key_reuse``.
- A refused request (4xx) or a failure (5xx) changed nothing and is not stored: retrying it with the
  same key runs it again.
- Two requests with the same key at the same time run one after the other, so the second is a replay.

Keys are opaque strings of at most 255 characters, shared by all endpoints of a sandbox, kept as long
as the process lives. The fingerprint is an HMAC under a random per-process key: a token request's
body holds a card number, and a plain hash of a card number can be reversed by trying them all.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, make_response, request

from sandbox.common.errors import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
EXTENSION_KEY = "sandbox.idempotency"
MAX_KEY_LENGTH = 255


@dataclasses.dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: bytes
    mimetype: str


@dataclasses.dataclass
class _Slot:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    answer: StoredAnswer | None = None


class IdempotencyStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._fingerprint_key = secrets.token_bytes(32)

    def fingerprint(self) -> str:
        """The current request's fingerprint: method, path and body (as canonical JSON when it is JSON)."""
        raw = request.get_data()
        try:
            body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode("utf-8")
        except ValueError:
            body = raw
        digest = hmac.new(self._fingerprint_key, digestmod=hashlib.sha256)
        for part in (request.method.encode("ascii"), request.path.encode("utf-8"), body):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def run(
        self, key: str, fingerprint: str, view: Callable[[], Response], *, replay_status: int | None = None
    ) -> Response:
        """Answer from the stored answer for ``key`` (with ``replay_status`` if given), or run
        ``view`` and store its answer if it succeeds."""
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if slot.answer is not None:
                if slot.answer.fingerprint != fingerprint:
                    raise ApiError(
                        409,
                        "idempotency_key_reuse",
                        "This Idempotency-Key was already used for a different request.",
                        param=HEADER,
                    )
                replay = Response(
                    slot.answer.body,
                    status=replay_status or slot.answer.status,
                    mimetype=slot.answer.mimetype,
                )
                replay.headers[REPLAYED_HEADER] = "true"
                return replay
            response = view()  # an ApiError goes through: nothing is stored
            if 200 <= response.status_code < 300:
                slot.answer = StoredAnswer(
                    fingerprint,
                    response.status_code,
                    response.get_data(),
                    response.mimetype or "application/json",
                )
            return response


def idempotent(
    view: Callable[..., Any] | None = None, *, key_required: bool = True, replay_status: int | None = None
) -> Any:
    """Make a POST view replay its first successful answer to an ``Idempotency-Key``; the key is
    required unless ``key_required`` is false. ``@idempotent`` or ``@idempotent(...)``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            key = request.headers.get(HEADER, "").strip()
            if not key:
                if not key_required:
                    return make_response(view(*args, **kwargs))
                raise ApiError(
                    400, "idempotency_key_required", f"Send an {HEADER} header with every POST.", param=HEADER
                )
            if len(key) > MAX_KEY_LENGTH:
                raise ApiError(
                    400,
                    "invalid_idempotency_key",
                    f"{HEADER} must be at most {MAX_KEY_LENGTH} characters.",
                    param=HEADER,
                )
            store: IdempotencyStore = current_app.extensions[EXTENSION_KEY]
            return store.run(
                key,
                store.fingerprint(),
                lambda: make_response(view(*args, **kwargs)),
                replay_status=replay_status,
            )

        return wrapper

    return decorate if view is None else decorate(view)


def register(app: Flask) -> IdempotencyStore:
    """Give the app its store of answers (one per process: the sandboxes run one worker)."""
    store = IdempotencyStore()
    app.extensions[EXTENSION_KEY] = store
    return store
