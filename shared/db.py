"""Database plumbing: engines, the unit of work, and Alembic migrations per service.

Each service has its own declarative ``Base`` (its own database, its own metadata); the tables
every service needs (outbox, inbox, idempotency keys) are mixins from ``shared.events`` and
``shared.idempotency_store`` that each service declares on its own ``Base``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime; a naive one (SQLite hands them out) is taken as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use shared.db.utcnow()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else as_utc(value)


# A new connection that fails (the server restarting, "the database system is starting up") is
# tried again after each of these pauses before the request gives up with 503: a restart of a
# second or two goes unnoticed by clients.
CONNECT_RETRY_DELAYS = (0.25, 0.5, 1.0)
CONNECT_TIMEOUT_SECONDS = 5


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - driver hook
            # WAL lets the web workers, relay and consumer share one file; foreign keys are off
            # by default in SQLite.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:  # pragma: no cover - driver hook
            # Take the write lock up front so two writers never deadlock on a lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.get("connect_args", {})}
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    engine = sa.create_engine(url, **kwargs)
    _ping_idle_connections(engine)

    @event.listens_for(engine, "do_connect")
    def _connect_with_retries(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        for delay in CONNECT_RETRY_DELAYS:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError:
                time.sleep(delay)
        return dialect.connect(*cargs, **cparams)

    return engine


# A pooled connection unused for this long is checked before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: sa.Engine) -> None:
    """Check a pooled connection before use when it sat idle for a while: one that died with a
    server restart is replaced, and the pool drops every connection as old as it. One taken back
    from a request a moment ago is not pinged: under load that would be a round trip per request,
    and a connection that broke since fails its statement, which invalidates the pool the same way
    (that request answers 503, as it would while the server is away)."""

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:  # pragma: no cover - pool hook
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:  # pragma: no cover
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # a new connection, or one in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                # The pool replaces it (and every older one) and tries again.
                raise sa.exc.DisconnectionError() from error
            raise


class UnitOfWork:
    """One database transaction. Use as a context manager; nothing is saved without ``commit()``.

    Events recorded with ``add_event`` are written to the outbox inside the same transaction,
    so a state change and the news of it are saved together or not at all.

    A unit of work may instead ``join`` a transaction its owner holds open (a creating request
    whose idempotency record is saved with its effect: ``shared.idempotency``). Then ``commit()``
    only writes the events and flushes, and the owner commits, or rolls back, all of it at once.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        outbox_writer: Callable[[Session, Any], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox_writer = outbox_writer
        self._joined: Session | None = None
        self.session: Session | None = None
        self._events: list[Any] = []

    def join(self, session: Session) -> UnitOfWork:
        """Work inside ``session``'s transaction, which its owner ends (see the class docstring)."""
        self._joined = session
        return self

    def __enter__(self) -> UnitOfWork:
        self.session = self._joined or self._session_factory()
        self._events = []
        return self

    def __exit__(self, *exc_info: Any) -> None:
        assert self.session is not None
        if self._joined is None:
            # close() discards whatever was not committed, without expiring loaded objects, so
            # results read inside the unit of work stay usable after it.
            self.session.close()
        self.session = None
        self._events = []

    @property
    def outbox(self) -> Any:
        """The outbox writer (``shared.events.outbox.OutboxWriter``): its table and topic, for a
        set-based statement that writes many events at once; None without an outbox."""
        return self._outbox_writer

    def add_event(self, event: Any) -> None:
        self._events.append(event)

    def write_events(self) -> None:
        """Write the events recorded so far to the outbox now, in the current transaction.

        ``commit()`` does this itself; the consumer calls it early so that an event handler's
        events land inside that handler's savepoint and are rolled back with it.
        """
        assert self.session is not None, "write_events() outside the unit of work"
        if self._events:
            if self._outbox_writer is None:
                raise RuntimeError("this unit of work has no outbox but events were recorded")
            # Many events at once (a set-based batch) go in one statement when the writer can.
            write_many = getattr(self._outbox_writer, "write_many", None)
            if write_many is not None and len(self._events) > 1:
                write_many(self.session, self._events)
            else:
                for pending in self._events:
                    self._outbox_writer(self.session, pending)
            self._events = []

    def discard_events(self) -> None:
        """Forget the events recorded since the last write (their state change was rolled back)."""
        self._events = []

    def commit(self) -> None:
        assert self.session is not None, "commit() outside the unit of work"
        self.write_events()
        if self._joined is None:
            self.session.commit()
        else:
            self.session.flush()  # the owner commits

    def rollback(self) -> None:
        assert self.session is not None
        if self._joined is not None:
            # Undoing part of the owner's transaction would undo what it holds too (its claim).
            raise RuntimeError("a unit of work joined to its owner's transaction cannot roll it back")
        self._events = []
        self.session.rollback()


def insert_statement(session: Session, table: Any) -> Any:
    """``INSERT`` into ``table`` (a model or a Table) in the session's dialect, whose
    ``on_conflict_do_nothing`` PostgreSQL and SQLite both understand."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if is_postgres(session) else sqlite.insert)(table)


class _DriverStatement:
    """A Core statement compiled once for PostgreSQL: its SQL, the values it fixes itself (a
    literal in the statement, ``locked_until=None``), and how each parameter is converted on its
    way to the driver (``UTCDateTime``'s check, say), as SQLAlchemy would convert it."""

    def __init__(self, statement: Any, dialect: sa.Dialect, names: tuple[str, ...]) -> None:
        # ``names``: an insert given no values of its own inserts the parameters' columns.
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        self.sql: str = compiled.string
        self.returns_rows = bool(statement.is_select or compiled.returning)
        # A column whose default or ``onupdate`` SQLAlchemy computes in Python at execution (an
        # ``updated_at``, say) has a parameter here with no value: such a statement keeps going
        # through SQLAlchemy, which computes it.
        self.computes_defaults = bool(compiled.insert_prefetch or compiled.update_prefetch)
        self.fixed: dict[str, Any] = {}
        self.converters: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self.fixed[name] = bind.effective_value
            converter = bind.type._cached_bind_processor(dialect)  # noqa: SLF001 - SQLAlchemy's own cache
            if converter is not None:
                self.converters[name] = converter

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.fixed, **given}
        for name, converter in self.converters.items():
            values[name] = converter(values[name])
        return values


# One entry per hot statement and set of parameters, keyed by the statement itself (kept alive, so
# never mistaken for another): a handful, each built once, never one per request.
_DRIVER_STATEMENTS: dict[tuple[Any, tuple[str, ...]], _DriverStatement] = {}
_DRIVER_CURSOR = "hirfa_driver_cursor"


def first_row(session: Session, statement: Any, parameters: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The first row ``statement`` (a Core statement built once, at import) returns with
    ``parameters``, in ``session``'s transaction; None when it returns none.

    On PostgreSQL it goes straight to the session's psycopg connection, compiled once per
    process: SQLAlchemy's execution machinery (the compiled cache's lookup, the parameters'
    assembly, the result's set-up) cost a request on the hot path more than the database took to
    run the statement. Values go through the same conversions as SQLAlchemy's
    (``_DriverStatement``), and the engine's ``before_cursor_execute`` listeners still hear of it.
    A row is a plain tuple: the columns come back as the driver reads them (no result types: the
    callers select none that need one). Elsewhere (SQLite), and for a statement whose column
    defaults SQLAlchemy computes at execution, it runs as any Core statement."""
    connection = session.connection()
    driver_statement = None
    if connection.dialect.name == "postgresql":
        key = (statement, tuple(parameters))
        driver_statement = _DRIVER_STATEMENTS.get(key)
        if driver_statement is None:
            driver_statement = _DRIVER_STATEMENTS[key] = _DriverStatement(
                statement, connection.dialect, key[1]
            )
    if driver_statement is None or driver_statement.computes_defaults:
        result = connection.execute(statement, parameters)
        row = result.first() if result.returns_rows else None
        return None if row is None else tuple(row)
    try:
        values = driver_statement.parameters(parameters)
    except Exception as error:  # a value its type refuses, as SQLAlchemy reports it
        raise sa.exc.StatementError(str(error), driver_statement.sql, parameters, error) from error
    pooled = connection.connection
    dbapi_connection = pooled.driver_connection
    # One cursor per database connection, kept with the pool's record of it (which forgets it
    # when the connection is closed or invalidated): a cursor made and closed per statement was
    # a fifth of the statement's own cost here.
    cursor = pooled.info.get(_DRIVER_CURSOR)
    if cursor is None or cursor.closed:
        cursor = pooled.info[_DRIVER_CURSOR] = dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if connection.dispatch.before_cursor_execute:
            connection.dispatch.before_cursor_execute(
                connection, cursor, driver_statement.sql, values, None, False
            )
        # psycopg prepares a statement once it has run a few times on the connection (its own
        # threshold), and forgets it at every rollback: preparing at once would add a round trip
        # to the first run after each rollback (every GET's session ends in one).
        cursor.execute(driver_statement.sql, values)
        return cursor.fetchone() if driver_statement.returns_rows else None
    except BaseException as error:
        if isinstance(error, Exception) and not isinstance(error, connection.dialect.loaded_dbapi.Error):
            raise  # not the driver's (a listener's own error, say): as SQLAlchemy lets it through
        # A driver error, or an interruption mid-call (which leaves the connection unusable), is
        # handed to SQLAlchemy's own handling, so callers see what they see from any other
        # statement (a lock wait that ran out, the database gone), ``handle_error`` listeners hear
        # of it, and a lost connection invalidates the pool as a whole as it would through
        # SQLAlchemy (connections as old as it are replaced before use, not each failing one
        # request). It raises; the ``raise`` below only satisfies the type checker.
        connection._handle_dbapi_exception(  # noqa: SLF001 - SQLAlchemy's handling, not ours to copy
            error, driver_statement.sql, values, cursor, None
        )
        raise


def is_postgres(engine_or_session: sa.Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def run_migrations(service_dir: Path, database_url: str, revision: str = "head") -> None:
    """Apply a service's Alembic migrations (``services/<name>/migrations``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if database_url.startswith("sqlite"):
        database = database_url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(config, revision)


def rebuild_index(
    name: str, table: str, columns: list[str], *, unique: bool = False, where: str | None = None
) -> None:
    """Inside a migration: index ``name`` on ``table`` made anew with ``columns`` (and ``where``,
    a partial index's predicate), under the same name.

    On PostgreSQL without blocking the table: migrations run while the version before still
    serves, and a plain ``DROP INDEX`` holds the table's exclusive lock until the transaction ends,
    after ``CREATE INDEX`` has read the whole table (the outbox, the journal: tables never pruned),
    so every write would wait for the build. The new index is built ``CONCURRENTLY`` under a
    passing name beside the old one (a unique one keeps its rule throughout: both enforce it), the
    old one dropped ``CONCURRENTLY``, the new one renamed; outside the migration's transaction, as
    PostgreSQL requires, so the migrations before it are committed first. A migration interrupted
    anywhere in here is simply run again (see below).
    Elsewhere (SQLite, ``make run``'s databases) a plain drop and create."""
    from alembic import op

    predicate = None if where is None else sa.text(where)
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, unique=unique, sqlite_where=predicate)
        return
    building = f"{name}_rebuilt"

    def validity(index: str) -> bool | None:
        """Whether ``index`` is whole (a build that ran to its end), None when there is none."""
        found = op.get_bind().execute(
            sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:index)"),
            {"index": index},
        )
        return found.scalar()

    with op.get_context().autocommit_block():
        # What an interrupted run left under the passing name (a migration's version is stamped
        # only after its last step, so a run again is always the same direction): a build that
        # failed part way is dropped and made again; a whole one is kept, and the old index
        # dropped if still there, so uniqueness is never left unchecked and nothing rebuilt twice.
        rebuilt = validity(building)
        if rebuilt is False:
            op.drop_index(building, table_name=table, postgresql_concurrently=True)
        if not rebuilt:
            op.create_index(
                building,
                table,
                columns,
                unique=unique,
                postgresql_where=predicate,
                postgresql_concurrently=True,
            )
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.execute(sa.text(f'ALTER INDEX "{building}" RENAME TO "{name}"'))


def run_alembic_environment(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py``: migrate online, batch mode on SQLite."""
    from alembic import context

    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported; run against a database")
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("migrations need sqlalchemy.url (the service's database URL)")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things: Alembic's batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
