"""An index made anew by a migration (``shared.db.rebuild_index``) never blocks the table's writers
on PostgreSQL: migrations run while the version before still serves, so an outbox that could not
take events while its index was rebuilt would stop every service's state changes for the build."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shared.config import PROJECT_ROOT
from shared.db import make_engine, run_migrations
from tests.support import Databases

PAYMENTS = PROJECT_ROOT / "services" / "payments"
BEFORE = "5c8e1a4f0016"  # capture and cancel keys: the head before
PARTIAL_POSITIONS = "a6d3f9c20017"  # the outbox's broker positions index rebuilt, partial


@pytest.fixture
def database(tmp_path):
    databases = Databases(tmp_path)
    if databases.backend != "postgresql":
        pytest.skip("building an index beside the table's writers is PostgreSQL's")
    try:
        yield databases.create("index_rebuild")
    finally:
        databases.drop_all()


def alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PAYMENTS / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def add_event(connection: sa.Connection) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO outbox (event_id, event_type, topic, key, payload, created_at, available_at, attempts)"
            " VALUES (:event_id, 'payments.payment.created', 'payments.events', 'k', '{}', now(), now(), 0)"
        ),
        {"event_id": f"evt_{uuid.uuid4().hex}"},
    )


def waiting_for_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )


def test_events_are_written_while_the_outbox_index_is_rebuilt(database):
    run_migrations(PAYMENTS, database, BEFORE)
    engine = make_engine(database)
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            command.upgrade(alembic(database), PARTIAL_POSITIONS)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    try:
        # A service's transaction in flight when the migration starts: the build waits for it.
        with engine.connect() as in_flight:
            in_flight.begin()
            add_event(in_flight)
            migration = threading.Thread(target=migrate)
            migration.start()
            deadline = time.monotonic() + 30
            while not waiting_for_a_lock(engine):
                assert time.monotonic() < deadline, "the migration never reached the index build"
                assert migration.is_alive(), failures
                time.sleep(0.05)
            # Meanwhile another request records its event, and is not made to wait for the build
            # (a plain DROP INDEX queues every writer behind its exclusive lock).
            with engine.connect() as writer:
                writer.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                add_event(writer)
                writer.commit()
            in_flight.commit()
        migration.join(60)
        assert not migration.is_alive() and not failures, failures
        with engine.connect() as connection:
            indexes = connection.execute(
                sa.text(
                    "SELECT c.relname, i.indisvalid, pg_get_expr(i.indpred, i.indrelid)"
                    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indrelid = 'outbox'::regclass AND c.relname LIKE 'ix_outbox_broker%'"
                )
            ).all()
            events = connection.execute(sa.text("SELECT count(*) FROM outbox")).scalar()
        assert indexes == [("ix_outbox_broker_position", True, "(broker_offset IS NOT NULL)")]
        assert events == 2
    finally:
        engine.dispose()


def outbox_position_indexes(engine: sa.Engine) -> list[tuple[int, str, bool, str]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT i.indexrelid::int, c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid)"
                    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indrelid = 'outbox'::regclass AND c.relname LIKE 'ix_outbox_broker%'"
                )
            )
        ]


PARTIAL = "(topic, broker_partition, broker_offset) WHERE (broker_offset IS NOT NULL)"


def test_a_whole_build_an_interrupted_run_left_is_kept_not_built_again(database):
    run_migrations(PAYMENTS, database, BEFORE)
    engine = make_engine(database)
    try:
        # Where a run stopped between dropping the old index and renaming the new one left it.
        with engine.begin() as connection:
            connection.execute(sa.text("DROP INDEX ix_outbox_broker_position"))
            connection.execute(
                sa.text(
                    "CREATE INDEX ix_outbox_broker_position_rebuilt ON outbox"
                    " (topic, broker_partition, broker_offset) WHERE broker_offset IS NOT NULL"
                )
            )
        [(built, *_)] = outbox_position_indexes(engine)
        command.upgrade(alembic(database), PARTIAL_POSITIONS)
        [(index, name, valid, definition)] = outbox_position_indexes(engine)
        assert (index, name, valid) == (built, "ix_outbox_broker_position", True)  # renamed only
        assert definition.endswith(PARTIAL)
    finally:
        engine.dispose()


def test_a_build_that_failed_part_way_is_dropped_and_made_again(database):
    run_migrations(PAYMENTS, database, BEFORE)
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            add_event(connection)
            add_event(connection)
            connection.commit()
        # A concurrent build that fails leaves its index behind, invalid: two events share a topic.
        admin = engine.execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection, pytest.raises(sa.exc.IntegrityError):
            connection.execute(
                sa.text(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_outbox_broker_position_rebuilt ON outbox (topic)"
                )
            )
        assert sorted((name, valid) for _, name, valid, _ in outbox_position_indexes(engine)) == [
            ("ix_outbox_broker_position", True),
            ("ix_outbox_broker_position_rebuilt", False),
        ]
        command.upgrade(alembic(database), PARTIAL_POSITIONS)
        [(_, name, valid, definition)] = outbox_position_indexes(engine)
        assert (name, valid) == ("ix_outbox_broker_position", True)
        assert definition.endswith(PARTIAL)
    finally:
        engine.dispose()
