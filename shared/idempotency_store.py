"""The idempotency-key table and its store: claiming a key, replaying or releasing it.

No Flask here: each service's ``adapters/orm.py`` declares the table from ``IdempotencyKeyMixin``,
and the decorator for views (``shared.idempotency``) drives ``IdempotencyStore``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db import UTCDateTime, utcnow

# A claimed key whose worker died is taken over after this long.
LOCK_SECONDS = 60
MAX_KEY_LENGTH = 255
MAX_PATH_LENGTH = 500


def key_lifetime(*, is_artisan: bool, ttl: dt.timedelta, artisan_ttl: dt.timedelta) -> dt.timedelta:
    """How long a key is honoured: an artisan's device keys at least ``artisan_ttl`` (offline queues)."""
    return max(ttl, artisan_ttl) if is_artisan else ttl


class IdempotencyKeyMixin:
    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(MAX_PATH_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response_headers: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class IdempotencyStore:
    """A service's idempotency keys, each operation in its own short transaction."""

    def __init__(self, session_factory: Callable[[], Session], model: Any, ttl: dt.timedelta) -> None:
        self.session_factory = session_factory
        self.model = model
        self.ttl = ttl

    def claim(self, client_id: str, key: str, fingerprint: str, *, method: str, path: str) -> Any:
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
                        method=method,
                        path=path[:MAX_PATH_LENGTH],
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
                        return self.claim(client_id, key, fingerprint, method=method, path=path)
            if existing.created_at < now - self.ttl:
                # Expired key: start over as if it were new.
                session.delete(existing)
                session.commit()
                return self.claim(client_id, key, fingerprint, method=method, path=path)
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
                if taken.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
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

    def complete(
        self, client_id: str, key: str, *, status: int, headers: Mapping[str, str], body: str
    ) -> None:
        """Keep the response, for every retry with this key to get it again."""
        with self.session_factory() as session:
            session.execute(
                sa.update(self.model)
                .where(self.model.client_id == client_id, self.model.key == key)
                .values(
                    response_status=status,
                    response_headers=json.dumps(dict(headers)),
                    response_body=body,
                    locked_until=None,
                )
            )
            session.commit()

    def release(self, client_id: str, key: str) -> None:
        """Forget an unanswered claim, so the client may retry with the same key."""
        with self.session_factory() as session:
            session.execute(
                sa.delete(self.model).where(
                    self.model.client_id == client_id,
                    self.model.key == key,
                    self.model.response_status.is_(None),
                )
            )
            session.commit()
