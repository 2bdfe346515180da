"""The idempotency-key table and its store: claiming a key, replaying or releasing it.

No Flask here: each service's ``adapters/orm.py`` declares the table from ``IdempotencyKeyMixin``,
and the decorator for views (``shared.idempotency``) drives ``IdempotencyStore``.

On PostgreSQL a claim is a row inserted in a transaction that stays open while the request runs
(``IdempotencyStore.hold``), and committed with the answer. A request that dies (its process killed,
its connection lost) takes its claim with it, so a retry goes ahead at once; a concurrent request
with the same key waits on the database for the first to finish, then replays it. SQLite has a
single writer, so there a claim is committed at once and a dead worker's claim is taken over after
``LOCK_SECONDS``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db import UTCDateTime, is_postgres, utcnow

# SQLite only: a claimed key whose worker died is taken over after this long.
LOCK_SECONDS = 60
# PostgreSQL's answer when a lock wait outlasted lock_timeout.
_LOCK_NOT_AVAILABLE = "55P03"
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


class KeyStillInProgress(Exception):
    """Another request holding this key was still running when the wait ran out."""


@dataclasses.dataclass
class HeldClaim:
    """What ``IdempotencyStore.hold`` found: the earlier request's row (``existing``: answered, or
    with another fingerprint), or a claim this request now holds until ``complete`` or the end."""

    session: Session | None
    model: Any
    client_id: str
    key: str
    existing: Any = None

    def complete(self, *, status: int, headers: Mapping[str, str], body: str) -> None:
        """Keep the answer, committing the claim with it."""
        assert self.session is not None and self.existing is None
        self.session.execute(
            sa.update(self.model)
            .where(self.model.client_id == self.client_id, self.model.key == self.key)
            .values(
                response_status=status,
                response_headers=json.dumps(dict(headers)),
                response_body=body,
                locked_until=None,
            )
        )
        self.session.commit()


class IdempotencyStore:
    """A service's idempotency keys, each operation in its own short transaction."""

    def __init__(self, session_factory: Callable[[], Session], model: Any, ttl: dt.timedelta) -> None:
        self.session_factory = session_factory
        self.model = model
        self.ttl = ttl

    def holds_claims(self) -> bool:
        """Whether claims live in the request's own open transaction (``hold``): PostgreSQL."""
        with self.session_factory() as session:
            return is_postgres(session)

    @contextmanager
    def hold(
        self, client_id: str, key: str, fingerprint: str, *, method: str, path: str, wait_seconds: float
    ) -> Iterator[HeldClaim]:
        """Claim ``key`` in a transaction held open until the request is answered (PostgreSQL).

        Yields a ``HeldClaim`` with ``existing`` set when an earlier request's row decides the answer
        (replay it, or refuse a different request); otherwise this request holds the key: its
        ``complete`` commits the answer, and leaving without it (an error, a 5xx) rolls the claim
        back, as a crash or a lost connection does. Raises ``KeyStillInProgress`` when a request
        with this key is still running after ``wait_seconds``.
        """
        model = self.model
        with self.session_factory() as session:
            try:
                # A claim not yet committed makes the INSERT below wait: bound that wait.
                session.execute(
                    sa.select(
                        sa.func.set_config("lock_timeout", f"{max(1, int(wait_seconds * 1000))}ms", True)
                    )
                )
                now = utcnow()
                claimed = session.execute(
                    postgresql.insert(model)
                    .values(
                        client_id=client_id,
                        key=key,
                        fingerprint=fingerprint,
                        method=method,
                        path=path[:MAX_PATH_LENGTH],
                        created_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(model.key)
                ).first()
                existing = None
                if claimed is None:
                    # A committed row: answered, or left unanswered by the SQLite-style claim.
                    existing = session.scalars(
                        sa.select(model)
                        .where(model.client_id == client_id, model.key == key)
                        .with_for_update()
                    ).one()
                    if existing.created_at < now - self.ttl or (
                        existing.response_status is None and existing.fingerprint == fingerprint
                    ):
                        # Expired, or a claim nobody holds any more: this request starts it over.
                        existing.fingerprint, existing.method = fingerprint, method
                        existing.path, existing.created_at = path[:MAX_PATH_LENGTH], now
                        existing.response_status = existing.response_headers = existing.response_body = None
                        existing.locked_until = None
                        session.flush()
                        existing = None
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                    raise KeyStillInProgress from None
                raise
            if existing is not None:
                session.expunge(existing)
                session.rollback()
                yield HeldClaim(None, model, client_id, key, existing=existing)
                return
            try:
                yield HeldClaim(session, model, client_id, key)
            finally:
                if session.in_transaction():
                    # Not completed: the claim goes. A lost connection has taken it already.
                    with contextlib.suppress(sa.exc.DBAPIError):
                        session.rollback()

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
