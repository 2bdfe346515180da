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
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db import UTCDateTime, first_row, is_postgres, utcnow

# A claim committed before its answer (SQLite's) whose worker died is taken over after this long.
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
    """What ``IdempotencyStore.hold`` found: the earlier request's row (``existing``: answered, with
    another fingerprint, or claimed and not yet answered), or a claim this request now holds until
    ``complete`` or the end."""

    store: IdempotencyStore
    session: Session | None
    client_id: str
    key: str
    existing: Any = None

    def complete(self, *, status: int, headers: Mapping[str, str], body: str) -> None:
        """Keep the answer, committing the claim with it."""
        assert self.session is not None and self.existing is None
        self.store.keep_response(
            self.session, self.client_id, self.key, status=status, headers=headers, body=body
        )
        self.session.commit()


class IdempotencyStore:
    """A service's idempotency keys: ``claim``, ``load``, ``complete`` and ``release`` each in its
    own short transaction; or ``claim_in`` and ``keep_response`` inside the transaction of the
    request's own effect, which then commits or rolls back the key with it."""

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

        The claim is ``claim_in``'s, in a session of its own. Yields a ``HeldClaim`` with ``existing``
        set when an earlier request's row decides the answer (replay it, refuse a different request,
        or one still in progress); otherwise this request holds the key: its
        ``complete`` commits the answer, and leaving without it (an error, a 5xx) rolls the claim
        back, as a crash or a lost connection does. Raises ``KeyStillInProgress`` when a request
        with this key is still running after ``wait_seconds``.
        """
        with self.session_factory() as session:
            existing = self.claim_in(
                session, client_id, key, fingerprint, method=method, path=path, wait_seconds=wait_seconds
            )
            if existing is not None:
                session.expunge(existing)
                session.rollback()
                yield HeldClaim(self, None, client_id, key, existing=existing)
                return
            try:
                yield HeldClaim(self, session, client_id, key)
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

    def claim_in(
        self,
        session: Session,
        client_id: str,
        key: str,
        fingerprint: str,
        *,
        method: str,
        path: str,
        wait_seconds: float,
    ) -> Any:
        """Claim the key inside ``session``'s transaction: None when this request owns it now (the
        claim is saved, or undone, with the rest of the transaction), else the row of the request
        that answered it first.

        A concurrent request with the same key holds the key's row in its own open transaction:
        the insert here waits for that transaction to end (at most ``wait_seconds``, then
        ``KeyStillInProgress``), and finds its answer, or, if it rolled back, claims the key itself.
        """
        model = self.model
        now = utcnow()
        claim = {
            "fingerprint": fingerprint,
            "method": method,
            "path": path[:MAX_PATH_LENGTH],
            "created_at": now,
            "locked_until": now + dt.timedelta(seconds=LOCK_SECONDS),
        }
        postgres = is_postgres(session)
        try:
            # Core statements on the session's connection: the ORM has nothing to add to them.
            claimed = first_row(
                session,
                _claim_statement(model.__table__, postgres),
                {
                    "client_id": client_id,
                    "key": key,
                    **claim,
                    "lock_timeout": f"{max(1, round(wait_seconds * 1000))}ms",
                },
            )
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise KeyStillInProgress from None
            raise
        if claimed is not None:
            return None
        existing = session.get(model, (client_id, key), populate_existing=True)
        if existing is None:
            # Taken away (expired and claimed anew) as we looked: look again.
            return self.claim_in(
                session, client_id, key, fingerprint, method=method, path=path, wait_seconds=wait_seconds
            )
        expired = existing.created_at < now - self.ttl
        abandoned = (
            existing.response_status is None
            and existing.fingerprint == fingerprint
            and existing.locked_until is not None
            and existing.locked_until < now
        )
        if expired or abandoned:
            # An expired key starts over as a new one; one whose claimer died unanswered (a claim
            # saved in a transaction of its own: ``claim``) is taken over. Atomically: of two
            # requests doing this, one wins and the other sees its answer.
            taken = session.execute(
                sa.update(model)
                .where(
                    model.client_id == client_id,
                    model.key == key,
                    model.created_at == existing.created_at,
                    model.locked_until.is_(None)
                    if existing.locked_until is None
                    else model.locked_until == existing.locked_until,
                )
                .values(**claim, response_status=None, response_headers=None, response_body=None)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
                return None
            session.refresh(existing)
        return existing

    def keep_response(
        self,
        session: Session,
        client_id: str,
        key: str,
        *,
        status: int,
        headers: Mapping[str, str],
        body: str,
    ) -> None:
        """Keep the response of a key claimed with ``claim_in``, in the same transaction."""
        first_row(
            session,
            _keep_response_statement(self.model.__table__),
            {
                "claimed_client_id": client_id,
                "claimed_key": key,
                "response_status": status,
                "response_headers": json.dumps(dict(headers)),
                "response_body": body,
            },
        )

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


# The statements of a request's claim and answer, built once per table: building and hashing a
# statement anew costs a request more than the database takes to run it.

_CLAIM_COLUMNS = ("client_id", "key", "fingerprint", "method", "path", "created_at", "locked_until")


@functools.cache
def _claim_statement(table: sa.Table, postgres: bool) -> Any:
    """Insert the claim unless the key exists, returning a row only if this inserted it.

    On PostgreSQL the wait for a concurrent holder of the key is bounded in the same round trip:
    the row comes from a CTE that first sets the transaction's ``lock_timeout``. The bound stays
    for the rest of the request's transaction: no lock it takes later is waited for longer either
    (a request that would answers 503 ``database_unavailable``, to be retried). SQLite has one
    writer at a time already, which waits at most its busy timeout.
    """
    values = {name: sa.bindparam(name, type_=table.c[name].type) for name in _CLAIM_COLUMNS}
    insert: postgresql.Insert | sqlite.Insert
    if postgres:
        wait = sa.select(
            sa.func.set_config("lock_timeout", sa.bindparam("lock_timeout", type_=sa.String), True)
        ).cte("bounded_wait")
        insert = postgresql.insert(table).from_select(
            list(values), sa.select(*values.values()).select_from(wait)
        )
    else:
        insert = sqlite.insert(table).values(values)
    return insert.on_conflict_do_nothing(index_elements=["client_id", "key"]).returning(table.c.client_id)


@functools.cache
def _keep_response_statement(table: sa.Table) -> Any:
    return (
        sa.update(table)
        .where(
            table.c.client_id == sa.bindparam("claimed_client_id"),
            table.c.key == sa.bindparam("claimed_key"),
        )
        .values(
            response_status=sa.bindparam("response_status"),
            response_headers=sa.bindparam("response_headers"),
            response_body=sa.bindparam("response_body"),
            locked_until=None,
        )
    )
