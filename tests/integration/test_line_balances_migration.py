"""The migration that gives journal lines their running balance fills it in for a ledger that
already has history, keeps the journal immutable, and the ledger then passes the integrity check."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services.accounts.service_layer.statements import check_integrity
from shared.config import PROJECT_ROOT
from shared.db import UnitOfWork, make_engine, run_migrations
from tests.support import Databases

ACCOUNTS = PROJECT_ROOT / "services" / "accounts"
BEFORE = "4b7e1d2c0010"  # broker positions: the head before lines carried balances
LINE_BALANCES = "b7e5c1d20010"


@pytest.fixture
def database(tmp_path):
    databases = Databases(tmp_path)
    try:
        yield databases.create("line_balances")
    finally:
        databases.drop_all()


def alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ACCOUNTS / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def old_history(connection: sa.Connection) -> None:
    """Two accounts and five entries, written as the ledger wrote them before the migration."""
    sqlite = connection.dialect.name == "sqlite"
    start = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)

    def at(minutes: int) -> dt.datetime:
        moment = start + dt.timedelta(minutes=minutes)
        return moment.replace(tzinfo=None) if sqlite else moment

    for account, side in (("acct_receivable", "debit"), ("acct_pending", "credit")):
        connection.execute(
            sa.text(
                "INSERT INTO ledger_accounts (id, owner_type, owner_id, kind, currency, normal_side, balance, opened_at) "
                "VALUES (:id, 'platform', :id, :id, 'MAD', :side, 0, :at)"
            ),
            {"id": account, "side": side, "at": at(0)},
        )
    for number, amount in enumerate([1_000, 2_500, -700, 4_000, -300]):
        entry = f"je_old{number}"
        connection.execute(
            sa.text(
                "INSERT INTO journal_entries (id, cause, cause_id, posting_key, description, posted_at) "
                "VALUES (:id, 'payment', :id, :id, 'old', :at)"
            ),
            {"id": entry, "at": at(number)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO journal_lines (entry_id, account_id, amount, currency) VALUES "
                "(:entry, 'acct_receivable', :amount, 'MAD'), (:entry, 'acct_pending', -:amount, 'MAD')"
            ),
            {"entry": entry, "amount": amount},
        )
    for account, sign in (("acct_receivable", 1), ("acct_pending", -1)):
        connection.execute(
            sa.text("UPDATE ledger_accounts SET balance = :balance WHERE id = :id"),
            {"balance": sign * 6_500, "id": account},
        )


def test_existing_lines_get_their_running_balance_and_posted_at(database):
    run_migrations(ACCOUNTS, database, BEFORE)
    engine = make_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            old_history(connection)
        run_migrations(ACCOUNTS, database, LINE_BALANCES)

        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT l.account_id, l.balance_after, l.posted_at, e.posted_at FROM journal_lines l "
                    "JOIN journal_entries e ON e.id = l.entry_id ORDER BY l.id"
                )
            ).all()
        receivable = [after for account, after, _, _ in rows if account == "acct_receivable"]
        pending = [after for account, after, _, _ in rows if account == "acct_pending"]
        assert receivable == [1_000, 3_500, 2_800, 6_800, 6_500]
        assert pending == [-1_000, -3_500, -2_800, -6_800, -6_500]
        assert all(line_posted == entry_posted for _, _, line_posted, entry_posted in rows)

        report = check_integrity(UnitOfWork(sa.orm.sessionmaker(engine)))
        assert report["differences"] == []

        # Still immutable.
        for change in ("UPDATE journal_lines SET balance_after = 0", "DELETE FROM journal_lines"):
            with pytest.raises(sa.exc.DatabaseError), engine.begin() as connection:
                connection.execute(sa.text(change))

        command.downgrade(alembic(database), BEFORE)
        with engine.connect() as connection:
            columns = {column["name"] for column in sa.inspect(connection).get_columns("journal_lines")}
        assert "balance_after" not in columns
        with pytest.raises(sa.exc.DatabaseError), engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM journal_lines"))
    finally:
        engine.dispose()
