"""``make bench``: throughput of the hot paths of the spine, printed as a small table, then ledger
postings per second through the accounts consumer beside a raw-SQL transfer loop on the same
database, as a ratio.

Not a test (nothing here asserts a time); run it before and after a change to compare. The ledger
part uses PostgreSQL when one answers at ``TEST_DATABASE_URL`` (as the tests do: a throwaway
database, dropped afterwards), SQLite in a temporary directory otherwise. The consumer's batch size
is ``CONSUMER_BATCH_SIZE`` (default 200); the broker is left out of the timed part. It also prints
the SQL statements per posting of each loop (tests/integration/test_ledger_statements.py keeps the
consumer's from growing). Then reconciliation (tests/bench_reconciliation.py) and the cost of calls
on databases holding a long history (tests/bench_history.py; ``HISTORY_BENCH_ENTRIES`` and
``HISTORY_BENCH_PAYMENTS`` shrink it).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.events import make_event
from shared.ids import new_id
from shared.logging import mask_sensitive


def per_second(label: str, func: Callable[[], Any], number: int) -> None:
    # The best of five runs: the machine's other work only ever slows a run down.
    seconds = min(timeit.repeat(func, number=number, repeat=5))
    print(f"{label:<40} {number / seconds:>12,.0f} /s")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        keys = SigningKeyStore(Path(directory))
        keys.generate()
        issuer = TokenIssuer(keys, "https://auth.hirfa.ma")

        def marketplace_token() -> str:
            return issuer.issue(
                client_id="cli_bench",
                role=Role.MARKETPLACE,
                scopes=ROLE_SCOPES[Role.MARKETPLACE],
                audiences=["hirfa-payments"],
            )[0]

        token = marketplace_token()
        public = keys.public_keys()
        verifier = TokenVerifier(public.get, "https://auth.hirfa.ma", "hirfa-payments")
        print(f"{'operation':<40} {'throughput':>14}")
        # What a request pays: a client sends the same token for its fifteen minutes, and the
        # verifier remembers the tokens it verified. A token's first use checks the signature.
        per_second("token verification (EdDSA)", lambda: verifier.verify(token), 5000)
        fresh = iter([marketplace_token() for _ in range(5 * 1000)])
        per_second("token verification, first use", lambda: verifier.verify(next(fresh)), 1000)
        per_second("prefixed id generation", lambda: new_id("pay"), 100000)
        artisan_id = new_id("art")
        data = {
            "artisan_id": artisan_id,
            "marketplace_id": "cli_bench",
            "kyc_tier": 0,
            "tier_cap": {"amount": 0, "currency": "MAD"},
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": "2026-11-23T10:00:00+00:00",
        }
        per_second(
            "event build + schema check",
            lambda: make_event("onboarding.artisan.registered", subject=artisan_id, data=data),
            5000,
        )
        line = '{"message": "payment by 0612345678 card 4111111111111111 cin AB123456"}'
        per_second("log line masking", lambda: mask_sensitive(line), 20000)
    print()
    ledger_postings()
    # Reconciliation of a generated settlement file, beside pandas (tests/bench_reconciliation.py).
    from tests import bench_reconciliation

    bench_reconciliation.main()
    # Whether calls cost more on databases with a long history (tests/bench_history.py).
    from tests import bench_history

    bench_history.main()
    print()
    # The payments API under gunicorn beside a bare Flask + SQLAlchemy endpoint (tests/bench_payments.py).
    from tests import bench_payments

    bench_payments.main()


# -- ledger postings: the accounts consumer against raw SQL --------------------------------------

ARTISANS = 50
PAYMENTS = 5_000
UNBATCHED_PAYMENTS = 500
GROSS, FEE = 10_000, 1_000  # 100 MAD, 10 MAD fee: 110 payments per artisan stay under the tier-3 cap


def ledger_postings() -> None:
    from tests.support import Databases

    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        try:
            url = databases.create("bench_accounts")
            where = databases.admin_url.rsplit("@", 1)[-1] if databases.admin_url else "a temporary file"
            print(f"ledger postings on {databases.backend} ({where}); the broker is not timed")
            _ledger_postings(url)
        finally:
            databases.drop_all()


def _ledger_postings(url: str) -> None:
    from services.accounts.adapters.orm import JournalEntry, LedgerCase
    from services.accounts.app import create_app
    from services.accounts.config import load_config
    from shared.config import PROJECT_ROOT
    from shared.db import run_migrations
    from tests.ledger_support import LedgerDriver, payment_succeeded

    run_migrations(PROJECT_ROOT / "services" / "accounts", url)
    # From the environment, so ``CONSUMER_BATCH_SIZE=50 make bench`` compares batch sizes.
    config = load_config(database_url=url, log_json=False)
    app = create_app(config, key_lookup=lambda kid: None)
    context = app.extensions["hirfa"]
    try:
        driver = LedgerDriver(app)
        consumer = driver.consumer
        artisans = [driver.artisan_at_tier(3) for _ in range(ARTISANS)]

        def deliveries(count: int) -> list[tuple[bytes, bytes]]:
            # What the broker hands the consumer: the value and key bytes. Built untimed.
            events = [payment_succeeded(artisans[i % ARTISANS], GROSS, FEE) for i in range(count)]
            return [(event.to_bytes(), event.key.encode()) for event in events]

        def through_consumer(messages: list[tuple[bytes, bytes]], batch_size: int) -> tuple[float, float]:
            with counting_statements(context.engine) as statements:
                started = time.perf_counter()
                for start in range(0, len(messages), batch_size):
                    chunk = messages[start : start + batch_size]
                    consumer.apply_batch([consumer.decode(value, key) for value, key in chunk])
                elapsed = time.perf_counter() - started
            return len(messages) / elapsed, statements[0] / len(messages)

        batch_size = config.consumer_batch_size
        batched, batched_statements = through_consumer(deliveries(PAYMENTS), batch_size)
        unbatched, unbatched_statements = through_consumer(deliveries(UNBATCHED_PAYMENTS), 1)
        with counting_statements(context.engine) as statements:
            raw = raw_transfer_loop(context.engine, PAYMENTS, batch_size)
        raw_statements = statements[0] / PAYMENTS

        with context.session_factory() as session:
            posted = session.scalar(sa.select(sa.func.count()).where(JournalEntry.cause == "payment"))
            cases = session.scalar(sa.select(sa.func.count()).select_from(LedgerCase))
        print(
            f"{'consumer, ' + str(batch_size) + ' per transaction (decode + apply_batch)':<52} {batched:>10,.0f} postings/s"
        )
        print(
            f"{'consumer, 1 per transaction (' + format(UNBATCHED_PAYMENTS, ',') + ' events)':<52} {unbatched:>10,.0f} postings/s"
        )
        print(
            f"{'raw SQL transfer loop, ' + str(batch_size) + ' per transaction':<52} {raw:>10,.0f} postings/s"
        )
        print(
            f"{'ratio consumer / raw SQL':<52} {batched / raw:>10.1%}   (raw SQL {raw / batched:.1f}x faster)"
        )
        print(f"{'ratio batched / one at a time':<52} {batched / unbatched:>10.1f}x")
        print(f"{'SQL statements per posting: consumer batched':<52} {batched_statements:>10.1f}")
        print(f"{'SQL statements per posting: consumer one at a time':<52} {unbatched_statements:>10.1f}")
        print(f"{'SQL statements per posting: raw SQL':<52} {raw_statements:>10.1f}")
        # A throughput figure means nothing if the postings were refused: say what was written.
        expected = PAYMENTS + UNBATCHED_PAYMENTS
        verdict = (
            "as expected" if posted == expected and not cases else f"WARNING: expected {expected:,}, no case"
        )
        print(f"checked: {posted:,} payment entries posted, {cases} ledger case(s) ({verdict})")
    finally:
        context.engine.dispose()


@contextlib.contextmanager
def counting_statements(engine: sa.Engine) -> Iterator[list[int]]:
    """Counts the statements sent to ``engine`` meanwhile (an executemany counts once), in
    ``counter[0]``; a transaction's start or end is not a statement here."""
    counter = [0]

    def count(*_args: Any) -> None:
        counter[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def raw_transfer_loop(engine: sa.Engine, postings: int, batch_size: int) -> float:
    """The same write shape as a payment posting, in plain SQL on the same database: one entry row,
    three line rows and three ``balance = balance + x`` updates, ``batch_size`` per transaction.

    Its own tables: the floor the database sets, without the ledger's reads, locks, checks, inbox
    and outbox.
    """
    metadata = sa.MetaData()
    sa.Table(
        "bench_raw_balances",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "bench_raw_entries",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("posting_key", sa.String(120), nullable=False, unique=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    sa.Table(
        "bench_raw_lines",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_id", sa.Integer, sa.ForeignKey("bench_raw_entries.id"), nullable=False, index=True),
        sa.Column(
            "account_id", sa.Integer, sa.ForeignKey("bench_raw_balances.id"), nullable=False, index=True
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    metadata.create_all(engine)
    # Account 0 is the gateway receivable, 1 the marketplace commission, 2.. the artisans' pending.
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO bench_raw_balances (id, balance) VALUES (:id, 0)"),
            [{"id": i} for i in range(2 + ARTISANS)],
        )
    insert_entry = sa.text("INSERT INTO bench_raw_entries (id, posting_key) VALUES (:id, :key)")
    insert_line = sa.text(
        "INSERT INTO bench_raw_lines (entry_id, account_id, amount) VALUES (:entry, :account, :amount)"
    )
    update = sa.text("UPDATE bench_raw_balances SET balance = balance + :amount WHERE id = :account")

    started = time.perf_counter()
    for start in range(0, postings, batch_size):
        with engine.begin() as connection:
            for entry in range(start, min(start + batch_size, postings)):
                lines = [
                    {"entry": entry, "account": 0, "amount": GROSS},
                    {"entry": entry, "account": 2 + entry % ARTISANS, "amount": -(GROSS - FEE)},
                    {"entry": entry, "account": 1, "amount": -FEE},
                ]
                connection.execute(insert_entry, {"id": entry, "key": f"payment:{entry}:succeeded"})
                connection.execute(insert_line, lines)
                for line in lines:
                    connection.execute(update, line)
    return postings / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
