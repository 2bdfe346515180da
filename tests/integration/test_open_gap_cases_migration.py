"""The migration that allows one open payment_not_in_ledger case per payment resolves the
duplicates two workers opened before it (the oldest stays open), then refuses new ones."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shared.config import PROJECT_ROOT
from shared.db import make_engine, run_migrations
from tests.support import Databases

ACCOUNTS = PROJECT_ROOT / "services" / "accounts"
BEFORE = "7a4c2e9b0015"  # erased artisans: the head before
ONE_OPEN_GAP = "e2c9a4b70016"


@pytest.fixture
def database(tmp_path):
    databases = Databases(tmp_path)
    try:
        yield databases.create("open_gap_cases")
    finally:
        databases.drop_all()


def add_case(
    connection: sa.Connection, case_id: str, payment_id: str, minutes: int, status: str = "open"
) -> None:
    at = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    connection.execute(
        sa.text(
            "INSERT INTO ledger_cases (id, kind, status, cause, cause_id, details, created_at) "
            "VALUES (:id, 'payment_not_in_ledger', :status, 'payment', :payment, :details, :at)"
        ),
        {
            "id": case_id,
            "status": status,
            "payment": payment_id,
            "details": json.dumps({"payment_id": payment_id}),
            "at": at.replace(tzinfo=None) if connection.dialect.name == "sqlite" else at,
        },
    )


def cases(engine: sa.Engine) -> dict[str, tuple[str, dict]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, status, details FROM ledger_cases")).all()
    return {
        row.id: (row.status, row.details if isinstance(row.details, dict) else json.loads(row.details))
        for row in rows
    }


def test_duplicate_open_cases_are_resolved_and_no_new_one_gets_in(database):
    run_migrations(ACCOUNTS, database, BEFORE)
    engine = make_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            add_case(connection, "lc_first", "pay_1", 0)
            add_case(connection, "lc_second", "pay_1", 1)
            add_case(connection, "lc_third", "pay_1", 2)
            add_case(connection, "lc_earlier", "pay_1", -60, status="resolved")
            add_case(connection, "lc_other", "pay_2", 3)
        run_migrations(ACCOUNTS, database, ONE_OPEN_GAP)

        after = cases(engine)
        assert {case_id for case_id, (status, _) in after.items() if status == "open"} == {
            "lc_first",
            "lc_other",
        }
        for repeat in ("lc_second", "lc_third"):
            status, details = after[repeat]
            assert (status, details["resolution"], details["duplicate_of"]) == (
                "resolved",
                "duplicate",
                "lc_first",
            )
            assert details["resolved_by"] == "system" and details["payment_id"] == "pay_1"
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            add_case(connection, "lc_fourth", "pay_1", 4)
        with engine.begin() as connection:
            add_case(connection, "lc_resolved_again", "pay_1", 5, status="resolved")  # only open ones are one

        command.downgrade(alembic(database), BEFORE)
        with engine.begin() as connection:
            add_case(connection, "lc_fourth", "pay_1", 4)
    finally:
        engine.dispose()


def alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ACCOUNTS / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
