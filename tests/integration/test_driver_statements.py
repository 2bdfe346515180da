"""``shared.db.first_row``: a hot statement sent straight to psycopg on PostgreSQL (a Core statement
elsewhere) behaves as the same statement run through SQLAlchemy would: its values converted the same
way, its rows the same, the driver's errors raised as SQLAlchemy's, in the session's transaction,
and the engine's statement listeners told of it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import shared.db
from services.payments.adapters.orm import Payee
from shared.db import _DriverStatement, first_row, utcnow
from tests.integration.conftest import add_payee

_PAYEES = Payee.__table__
# A converted value (``as_of`` is a ``UTCDateTime``) and one the statement holds itself (the tier).
_TERMS = sa.select(_PAYEES.c.artisan_id, _PAYEES.c.kyc_tier, _PAYEES.c.restricted_at).where(
    _PAYEES.c.artisan_id == sa.bindparam("artisan_id"),
    _PAYEES.c.as_of <= sa.bindparam("moment", type_=_PAYEES.c.as_of.type),
    _PAYEES.c.kyc_tier >= 1,
)
# ``updated_at`` has a default SQLAlchemy computes on update (``onupdate``).
_RESTRICT = (
    sa.update(_PAYEES)
    .where(_PAYEES.c.artisan_id == sa.bindparam("restricted_artisan"))
    .values(restricted_at=sa.bindparam("restricted_at", type_=_PAYEES.c.restricted_at.type))
)


@pytest.fixture
def context(payments_app):
    return payments_app.extensions["hirfa"]


@pytest.fixture
def artisan(context) -> str:
    return add_payee(context)


def test_a_row_reads_as_through_sqlalchemy_and_none_when_there_is_none(context, artisan):
    with context.session_factory() as session:
        now = {"artisan_id": artisan, "moment": utcnow()}
        expected = session.connection().execute(_TERMS, now).one()
        assert first_row(session, _TERMS, now) == tuple(expected)
        assert expected[0] == artisan
        assert first_row(session, _TERMS, {**now, "artisan_id": "art_none"}) is None
        long_ago = {"artisan_id": artisan, "moment": utcnow() - dt.timedelta(days=3650)}
        assert first_row(session, _TERMS, long_ago) is None


def test_values_are_converted_as_sqlalchemy_converts_them(context, artisan):
    naive = {"artisan_id": artisan, "moment": dt.datetime(2026, 1, 1)}
    with context.session_factory() as session:
        # ``UTCDateTime`` refuses a naive datetime here as it does through SQLAlchemy.
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.connection().execute(_TERMS, naive)
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            first_row(session, _TERMS, naive)


def test_a_statement_whose_defaults_sqlalchemy_computes_gets_them(context, artisan):
    with context.session_factory() as session:
        before = session.get(Payee, artisan).updated_at
        session.expunge_all()
        moment = utcnow()
        assert first_row(session, _RESTRICT, {"restricted_artisan": artisan, "restricted_at": moment}) is None
        session.commit()
    with context.session_factory() as session:
        stored = session.get(Payee, artisan)
        assert stored.restricted_at == moment
        assert stored.updated_at > before


# The same write with every value given: nothing left for SQLAlchemy to compute, so it goes
# straight to the driver on PostgreSQL.
_RESTRICT_GIVEN = (
    sa.update(_PAYEES)
    .where(_PAYEES.c.artisan_id == sa.bindparam("restricted_artisan"))
    .values(
        restricted_at=sa.bindparam("restricted_at", type_=_PAYEES.c.restricted_at.type),
        updated_at=sa.bindparam("updated_at", type_=_PAYEES.c.updated_at.type),
    )
)


def test_it_runs_in_the_sessions_transaction(context, artisan):
    given = {"restricted_artisan": artisan, "restricted_at": utcnow(), "updated_at": utcnow()}
    if context.engine.dialect.name == "postgresql":
        # The write under test is the driver's own, not one handed back to SQLAlchemy.
        assert not _DriverStatement(_RESTRICT_GIVEN, context.engine.dialect, tuple(given)).computes_defaults
    with context.session_factory() as session:
        assert first_row(session, _TERMS, {"artisan_id": artisan, "moment": utcnow()}) is not None
        first_row(session, _RESTRICT_GIVEN, given)
        session.rollback()
    with context.session_factory() as session:
        assert session.get(Payee, artisan).restricted_at is None
        first_row(session, _RESTRICT_GIVEN, given)
        session.commit()
    with context.session_factory() as session:
        assert session.get(Payee, artisan).restricted_at == given["restricted_at"]


def test_the_drivers_errors_are_sqlalchemys_and_the_session_goes_on_after_a_rollback(context, artisan):
    broken = sa.select(sa.literal_column("1")).select_from(sa.table("no_such_table"))
    with context.session_factory() as session:
        with pytest.raises(sa.exc.DBAPIError):
            first_row(session, broken, {})
        session.rollback()
        assert first_row(session, _TERMS, {"artisan_id": artisan, "moment": utcnow()})[0] == artisan


def test_the_engines_statement_listeners_hear_of_it(context, artisan):
    heard: list[tuple[str, object]] = []

    def listen(_connection, _cursor, statement, parameters, *_rest) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            heard.append((statement, parameters))

    sa.event.listen(context.engine, "before_cursor_execute", listen)
    try:
        with context.session_factory() as session:
            first_row(session, _TERMS, {"artisan_id": artisan, "moment": utcnow()})
    finally:
        sa.event.remove(context.engine, "before_cursor_execute", listen)
    assert len(heard) == 1
    statement, parameters = heard[0]
    assert "payees" in statement
    assert artisan in (parameters.values() if isinstance(parameters, dict) else parameters)


def test_a_connection_lost_under_it_is_invalidated_and_said_so(context, artisan):
    if context.engine.dialect.name != "postgresql":
        pytest.skip("a server connection to end: PostgreSQL's")
    moment = {"artisan_id": artisan, "moment": utcnow()}
    with context.session_factory() as session:
        first_row(session, _TERMS, moment)
        backend = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with context.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        with pytest.raises(sa.exc.DBAPIError) as raised:
            first_row(session, _TERMS, moment)
        assert raised.value.connection_invalidated
        session.rollback()
        # The pool hands out a live connection next, not the dead one.
        assert first_row(session, _TERMS, moment)[0] == artisan


def test_a_connection_lost_under_it_invalidates_the_pool_as_sqlalchemy_would(context, artisan, monkeypatch):
    """Every pooled connection as old as the lost one is replaced before its next use: a database
    restart costs one request its answer, not one per pooled connection."""
    if context.engine.dialect.name != "postgresql":
        pytest.skip("server connections to end: PostgreSQL's")
    # No check before use however slow the machine: the statement itself must find them dead.
    monkeypatch.setattr(shared.db, "PING_AFTER_IDLE_SECONDS", 3600)
    moment = {"artisan_id": artisan, "moment": utcnow()}
    context.engine.dispose()
    backends = []
    with context.session_factory() as first, context.session_factory() as second:
        for session in (first, second):  # two connections, both back in the pool afterwards
            first_row(session, _TERMS, moment)
            backends.append(session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    assert len(set(backends)) == 2
    # From a connection of its own (the pool's two are the ones ended).
    killer = sa.create_engine(context.engine.url, poolclass=sa.pool.NullPool)
    try:
        with killer.connect() as other:
            for backend in backends:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
    finally:
        killer.dispose()
    with context.session_factory() as session, pytest.raises(sa.exc.DBAPIError) as raised:
        first_row(session, _TERMS, moment)
    assert raised.value.connection_invalidated
    # The other dead connection, taken back a moment ago (too recently to be pinged), is not
    # handed out again: the whole pool was invalidated.
    with context.session_factory() as session:
        assert first_row(session, _TERMS, moment)[0] == artisan


def test_an_error_not_the_drivers_passes_through_as_it_is(context, artisan):
    class ListenerError(Exception):
        pass

    def refuse(*_arguments) -> None:
        raise ListenerError("a listener's own error")

    sa.event.listen(context.engine, "before_cursor_execute", refuse)
    try:
        with context.session_factory() as session, pytest.raises(ListenerError):
            first_row(session, _TERMS, {"artisan_id": artisan, "moment": utcnow()})
    finally:
        sa.event.remove(context.engine, "before_cursor_execute", refuse)
