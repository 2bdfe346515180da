"""Idempotency keys for creating POSTs (Stripe semantics).

- Same key, same request: the first response is replayed (``Idempotent-Replayed: true``).
- Same key, different request: 409 ``idempotency_key_reuse``.
- Same key while the first request is still running: the second waits briefly for the first to
  finish and replays it, else 409 ``idempotency_key_in_progress`` with ``Retry-After``.
- A request that fails before producing a response (validation error, conflict, crash) saves
  nothing: its transaction rolled back, so the client may retry with the same key.

Keys are scoped per API client. A claimed key whose worker died is taken over after
``LOCK_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, make_response, request
from sqlalchemy.orm import Mapped, mapped_column

from shared.auth.flask import current_principal
from shared.db import UTCDateTime, utcnow
from shared.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReuse,
    MissingIdempotencyKey,
    ValidationFailed,
)

HEADER = "Idempotency-Key"
LOCK_SECONDS = 60
MAX_KEY_LENGTH = 255
_REPLAYED_HEADERS = ("Content-Type", "Location")


class IdempotencyKeyMixin:
    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response_headers: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


def request_fingerprint() -> str:
    body: Any = request.get_json(silent=True) if request.is_json else None
    canonical = (
        json.dumps(body, sort_keys=True, separators=(",", ":"))
        if body is not None
        else request.get_data(as_text=False).decode("latin-1")
    )
    digest = hashlib.sha256()
    for part in (request.method, request.path, canonical):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _replay(row: Any) -> Response:
    response = make_response(row.response_body or "", row.response_status)
    for name, value in json.loads(row.response_headers or "{}").items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


class _Store:
    def __init__(self, session_factory: Any, model: Any, ttl: dt.timedelta) -> None:
        self.session_factory = session_factory
        self.model = model
        self.ttl = ttl

    def claim(self, client_id: str, key: str, fingerprint: str) -> Any:
        """Return None when this request now owns the key, else the existing row."""
        model = self.model
        now = utcnow()
        with self.session_factory() as session:
            existing = session.get(model, (client_id, key))
            if existing is None:
                session.add(
                    model(
                        client_id=client_id,
                        key=key,
                        fingerprint=fingerprint,
                        method=request.method,
                        path=request.path[:500],
                        created_at=now,
                        locked_until=now + dt.timedelta(seconds=LOCK_SECONDS),
                    )
                )
                try:
                    session.commit()
                    return None
                except sa.exc.IntegrityError:
                    session.rollback()  # a concurrent request claimed it first
                    existing = session.get(model, (client_id, key))
                    if existing is None:
                        # …and released it again (it failed) before we could read it: retry.
                        return self.claim(client_id, key, fingerprint)
            if existing.created_at < now - self.ttl:
                # Expired key: start over as if it were new.
                session.delete(existing)
                session.commit()
                return self.claim(client_id, key, fingerprint)
            if (
                existing.response_status is None
                and existing.fingerprint == fingerprint
                and existing.locked_until is not None
                and existing.locked_until < now
            ):
                # The worker that claimed it died mid-request: take the key over atomically.
                taken = session.execute(
                    sa.update(model)
                    .where(
                        model.client_id == client_id,
                        model.key == key,
                        model.locked_until == existing.locked_until,
                        model.response_status.is_(None),
                    )
                    .values(locked_until=now + dt.timedelta(seconds=LOCK_SECONDS))
                )
                session.commit()
                if taken.rowcount == 1:
                    return None
                existing = session.get(model, (client_id, key), populate_existing=True)
            session.expunge(existing)
            return existing

    def load(self, client_id: str, key: str) -> Any:
        with self.session_factory() as session:
            row = session.get(self.model, (client_id, key))
            if row is not None:
                session.expunge(row)
            return row

    def complete(self, client_id: str, key: str, response: Response) -> None:
        headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
        with self.session_factory() as session:
            session.execute(
                sa.update(self.model)
                .where(self.model.client_id == client_id, self.model.key == key)
                .values(
                    response_status=response.status_code,
                    response_headers=json.dumps(headers),
                    response_body=response.get_data(as_text=True),
                    locked_until=None,
                )
            )
            session.commit()

    def release(self, client_id: str, key: str) -> None:
        with self.session_factory() as session:
            session.execute(
                sa.delete(self.model).where(
                    self.model.client_id == client_id,
                    self.model.key == key,
                    self.model.response_status.is_(None),
                )
            )
            session.commit()


def idempotent(view: Callable) -> Callable:
    """Make a creating POST idempotent. Place it under the auth decorator."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            raise MissingIdempotencyKey(
                "Send an Idempotency-Key header (a UUID is ideal) so this request can be retried safely.",
                param=HEADER,
            )
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                param=HEADER,
            )
        services = current_app.extensions["hirfa"]
        config = services.config
        store = _Store(
            services.session_factory,
            services.models.idempotency_key,
            dt.timedelta(hours=config.idempotency_key_ttl_hours),
        )
        client_id = current_principal().client_id
        fingerprint = request_fingerprint()

        deadline = time.monotonic() + config.idempotency_wait_seconds
        existing = store.claim(client_id, key, fingerprint)
        while existing is not None:
            if existing.fingerprint != fingerprint:
                raise IdempotencyKeyReuse(
                    "This Idempotency-Key was used with a different request body or endpoint. "
                    "Use a new key for a new request.",
                    param=HEADER,
                )
            if existing.response_status is not None:
                return _replay(existing)
            if time.monotonic() >= deadline:
                raise IdempotencyKeyInProgress(headers={"Retry-After": "1"}, param=HEADER)
            time.sleep(0.05)
            existing = store.load(client_id, key)
            if existing is None:
                # The first request failed and released the key: this one may run.
                existing = store.claim(client_id, key, fingerprint)

        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            store.release(client_id, key)
            raise
        if response.status_code >= 500:
            store.release(client_id, key)
        else:
            store.complete(client_id, key, response)
        return response

    return wrapper


def idempotent_when_keyed(view: Callable) -> Callable:
    """``idempotent`` for a POST that does not create anything (confirm, capture, cancel): a request
    with an Idempotency-Key gets the same guarantees (a retry replays the first answer), one
    without runs as it is. Place it under the auth decorator."""
    keyed = idempotent(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get(HEADER) is None:
            return view(*args, **kwargs)
        return keyed(*args, **kwargs)

    return wrapper
