"""``make bench``, the ledger part: postings per second through the accounts consumer, beside the
ceiling plain SQL reaches with single transfers from 8 concurrent clients on the same database.

The ceiling (``transfer_ceiling``) is the classic double-entry transfer, one per transaction: lock
the two accounts (one ``SELECT … FOR UPDATE`` in id order), update both balances, insert the entry
and its two lines, commit. Eight client processes run it at once for a few seconds, each on its own
connection with prepared statements, between random pairs of 1,000 accounts (so they seldom wait
for each other's locks). When ``pgbench`` is on the PATH (it comes with PostgreSQL's client) it
runs the same transfer script with 8 clients too, and the higher of the two figures is the ceiling:
the consumer is measured against the strongest reference this machine gives.

The consumer is timed on ``payments.payment.succeeded`` events for 50 tier-3 artisans, as the
broker hands them over (value and key bytes): decode with the schema check, then ``apply_batch``,
``CONSUMER_BATCH_SIZE`` (default 200) per transaction; and once more one event per transaction.
The broker is left out of the timed part. Afterwards the ledger's integrity check
(``GET /v1/ledger/integrity``) must find nothing, and every event must have posted: a throughput
figure means nothing if postings were refused.

On SQLite (no PostgreSQL at ``TEST_DATABASE_URL``) there are no concurrent clients to measure: the
consumer's figures are printed without a ceiling.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ARTISANS = 50
PAYMENTS = 10_000
UNBATCHED_PAYMENTS = 500
GROSS, FEE = 10_000, 1_000  # 100 MAD, 10 MAD fee: 200 payments per artisan stay under the tier-3 cap

# As many consumer processes as the topics have partitions (KAFKA_TOPIC_PARTITIONS, 3): the most a
# consumer group can keep busy. BENCH_LEDGER_CONSUMERS changes it.
CONSUMERS = int(os.environ.get("BENCH_LEDGER_CONSUMERS", "3"))

CEILING_CLIENTS = 8
CEILING_SECONDS = 5.0
CEILING_ACCOUNTS = 1_000

# The transfer, one per transaction (the COMMIT is the client's): 2 row locks (one statement),
# 2 balance updates, 3 inserts. ``:name`` parameters, as pgbench writes them.
TRANSFER = (
    "SELECT id FROM bench_raw_accounts WHERE id IN (:a, :b) ORDER BY id FOR UPDATE",
    "UPDATE bench_raw_accounts SET balance = balance - :amount WHERE id = :a",
    "UPDATE bench_raw_accounts SET balance = balance + :amount WHERE id = :b",
    "INSERT INTO bench_raw_entries (id, posting_key) "
    "SELECT n, 'transfer:' || n FROM nextval('bench_raw_entries_id_seq') AS n",
    "INSERT INTO bench_raw_lines (entry_id, account_id, amount) "
    "VALUES (currval('bench_raw_entries_id_seq'), :a, :credit)",
    "INSERT INTO bench_raw_lines (entry_id, account_id, amount) "
    "VALUES (currval('bench_raw_entries_id_seq'), :b, :amount)",
)
TRANSFER_TABLES = """
CREATE TABLE bench_raw_accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE bench_raw_entries (
    id bigserial PRIMARY KEY,
    posting_key varchar(120) NOT NULL UNIQUE,
    posted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_raw_lines (
    id bigserial PRIMARY KEY,
    entry_id bigint NOT NULL REFERENCES bench_raw_entries (id),
    account_id integer NOT NULL REFERENCES bench_raw_accounts (id),
    amount bigint NOT NULL
);
CREATE INDEX ON bench_raw_lines (entry_id);
CREATE INDEX ON bench_raw_lines (account_id);
"""


def main() -> None:
    from tests.support import Databases

    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        try:
            url = databases.create("bench_accounts")
            where = databases.admin_url.rsplit("@", 1)[-1] if databases.admin_url else "a temporary file"
            print(f"ledger postings on {databases.backend} ({where}); the broker is not timed")
            ceiling = transfer_ceiling(databases.create("bench_transfers")) if databases.admin_url else None
            consumer_postings(url, ceiling)
        finally:
            databases.drop_all()


# -- the ceiling: single transfers in plain SQL, 8 clients ---------------------------------------


def transfer_ceiling(url: str) -> dict[str, Any]:
    """Transfers per second of ``CEILING_CLIENTS`` concurrent clients, each one transfer per
    transaction; and whether the transfers' ledger adds up afterwards."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(TRANSFER_TABLES)
        connection.execute(
            "INSERT INTO bench_raw_accounts (id, balance) SELECT n, 0 FROM generate_series(1, %s) AS n",
            (CEILING_ACCOUNTS,),
        )
        connection.execute("VACUUM ANALYZE")
    figures = {"python": _python_clients(url)}
    pgbench = shutil.which("pgbench")
    if pgbench is not None:
        figures["pgbench"] = _pgbench_clients(pgbench, url)
    with psycopg.connect(url) as connection:
        unbalanced = connection.execute(
            "SELECT count(*) FROM bench_raw_accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total "
            "FROM bench_raw_lines GROUP BY account_id) l ON l.account_id = a.id "
            "WHERE a.balance <> coalesce(l.total, 0)"
        ).fetchone()
        total, transfers = connection.execute(
            "SELECT coalesce(sum(amount), 0), count(DISTINCT entry_id) FROM bench_raw_lines"
        ).fetchone()
    return {
        "per_second": max(figures.values()),
        "figures": figures,
        "statements": len(TRANSFER),
        "sound": unbalanced[0] == 0 and total == 0,
        "transfers": transfers,
    }


def _psycopg_sql(statement: str) -> str:
    return re.sub(r":([a-z]+)", r"%(\1)s", statement)


def _transfer_client(url: str, seed: int, ready: Any, start: Any, seconds: float, done: Any) -> None:
    """One client: connects, says it is ready, waits for the start, then transfers for ``seconds``
    and puts how many transfers it committed."""
    import psycopg

    statements = [_psycopg_sql(statement) for statement in TRANSFER]
    rng = random.Random(seed)
    count = 0
    # prepare_threshold=0: every statement is prepared on first use, as pgbench -M prepared does.
    with psycopg.connect(url, prepare_threshold=0) as connection:
        ready.release()
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            a, b = rng.sample(range(1, CEILING_ACCOUNTS + 1), 2)
            amount = rng.randint(1, 10_000)
            params = {"a": a, "b": b, "amount": amount, "credit": -amount}
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement, params)
            connection.commit()
            count += 1
    done.put(count)


def _python_clients(url: str) -> float:
    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Semaphore(0), context.Event(), context.Queue()
    clients = [
        context.Process(target=_transfer_client, args=(url, seed, ready, start, CEILING_SECONDS, done))
        for seed in range(CEILING_CLIENTS)
    ]
    for client in clients:
        client.start()
    for _ in clients:  # every client started and connected: the clock starts for all at once
        if not ready.acquire(timeout=120):
            raise RuntimeError("a transfer client did not start")
    start.set()
    total = sum(done.get(timeout=CEILING_SECONDS + 60) for _ in clients)
    for client in clients:
        client.join(timeout=10)
    return total / CEILING_SECONDS


def _pgbench_clients(pgbench: str, url: str) -> float:
    script = "\n".join(
        [
            f"\\set a random(1, {CEILING_ACCOUNTS})",
            f"\\set b random(1, {CEILING_ACCOUNTS - 1})",
            "\\set b case when :b >= :a then :b + 1 else :b end",
            "\\set amount random(1, 10000)",
            "\\set credit -:amount",
            "BEGIN;",
            *(f"{statement};" for statement in TRANSFER),
            "COMMIT;",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script + "\n")
        file.flush()
        run = subprocess.run(
            [pgbench, "-n", "-M", "prepared", "-c", str(CEILING_CLIENTS), "-j", "2"]
            + ["-T", str(int(CEILING_SECONDS)), "-f", file.name, url],
            capture_output=True,
            text=True,
            timeout=CEILING_SECONDS + 60,
        )
    found = re.search(r"tps = ([0-9.]+)", run.stdout)
    if run.returncode or found is None:
        raise RuntimeError(f"pgbench failed ({run.returncode}): {run.stdout} {run.stderr}")
    return float(found.group(1))


# -- the accounts consumer ------------------------------------------------------------------------


def consumer_postings(url: str, ceiling: dict[str, Any] | None) -> None:
    from services.accounts.adapters.orm import JournalEntry, LedgerCase, ParkedEvent
    from services.accounts.bootstrap import bootstrap
    from services.accounts.config import load_config
    from services.accounts.service_layer.statements import check_integrity
    from shared.config import PROJECT_ROOT
    from shared.db import run_migrations

    run_migrations(PROJECT_ROOT / "services" / "accounts", url)
    # From the environment, so ``CONSUMER_BATCH_SIZE=50 make bench`` compares batch sizes.
    batch_size = load_config(database_url=url, log_json=False).consumer_batch_size
    one = _consumer_run(url, PAYMENTS, ARTISANS, batch_size)
    partitions = _consumers_in_parallel(url, CONSUMERS, batch_size)
    unbatched = _consumer_run(url, UNBATCHED_PAYMENTS, ARTISANS, 1)

    context = bootstrap(load_config(database_url=url, log_json=False), key_lookup=lambda kid: None)
    try:
        report = check_integrity(context.uow_factory())
        with context.session_factory() as session:
            posted = session.scalar(sa.select(sa.func.count()).where(JournalEntry.cause == "payment"))
            cases = session.scalar(sa.select(sa.func.count()).select_from(LedgerCase))
            parked = session.scalar(sa.select(sa.func.count()).select_from(ParkedEvent))
    finally:
        context.engine.dispose()

    def row(label: str, value: str) -> None:
        print(f"{label:<64} {value:>14}")

    row(f"consumer, 1 process, {batch_size} per transaction", f"{one['per_second']:,.0f} postings/s")
    row(
        f"consumers, {CONSUMERS} processes (partitions), {batch_size} per transaction",
        f"{partitions['per_second']:,.0f} postings/s",
    )
    row("consumer, 1 process, 1 per transaction", f"{unbatched['per_second']:,.0f} postings/s")
    if ceiling is not None:
        for tool, figure in ceiling["figures"].items():
            row(
                f"raw SQL ceiling: {CEILING_CLIENTS} clients, 1 transfer per commit ({tool})",
                f"{figure:,.0f} /s",
            )
        best = max(one["per_second"], partitions["per_second"])
        row("ratio consumers / raw SQL ceiling (goal: 2.0x)", f"{best / ceiling['per_second']:.2f}x")
    row("ratio batched / one at a time (1 process)", f"{one['per_second'] / unbatched['per_second']:.1f}x")
    row("SQL statements per posting: consumer batched", f"{one['statements']:.2f}")
    row("SQL statements per posting: consumer one at a time", f"{unbatched['statements']:.1f}")
    if ceiling is not None:
        row("SQL statements per transfer: raw SQL (and a COMMIT)", f"{ceiling['statements']}")
        row(
            "raw SQL transfers: balances = Σ lines, Σ lines = 0",
            f"{'held' if ceiling['sound'] else 'BROKEN'} ({ceiling['transfers']:,})",
        )
    expected = one["postings"] + partitions["postings"] + unbatched["postings"]
    sound = report["differences"] == []
    row(
        "ledger integrity check after the consumers",
        "held" if sound else f"BROKEN ({len(report['differences'])} differences)",
    )
    verdict = (
        "as expected"
        if posted == expected and not cases and not parked
        else f"WARNING: expected {expected:,}, no case, none parked"
    )
    print(f"checked: {posted:,} payment entries posted, {cases} ledger case(s), {parked} parked ({verdict})")


def _consumer_run(
    url: str, payments: int, artisans: int, batch_size: int, ready: Any = None, start: Any = None
) -> dict[str, float]:
    """One accounts consumer, wired as ``hirfa accounts consume`` wires it, on its own artisans
    (tier 3): the payments are built first (untimed, as the broker's value and key bytes), then
    decoded and applied ``batch_size`` per transaction. With ``ready`` and ``start`` (another
    process), it says it is ready and waits for the start."""
    from services.accounts.app import create_app
    from services.accounts.config import load_config
    from tests.ledger_support import LedgerDriver, payment_succeeded

    app = create_app(load_config(database_url=url, log_json=False), key_lookup=lambda kid: None)
    engine = app.extensions["hirfa"].engine
    try:
        driver = LedgerDriver(app)
        consumer = driver.consumer
        owners = [driver.artisan_at_tier(3) for _ in range(artisans)]
        events = [payment_succeeded(owners[i % artisans], GROSS, FEE) for i in range(payments)]
        messages = [(event.to_bytes(), event.key.encode()) for event in events]
        gc.freeze()  # as ``hirfa accounts consume`` does before its first batch
        if ready is not None:
            ready.release()
            start.wait()
        with counting_statements(engine) as statements:
            started = time.perf_counter()
            for first in range(0, len(messages), batch_size):
                chunk = messages[first : first + batch_size]
                consumer.apply_batch([consumer.decode(value, key) for value, key in chunk])
            elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    return {
        "postings": payments,
        "seconds": elapsed,
        "per_second": payments / elapsed,
        "statements": statements[0] / payments,
    }


def _consumer_process(
    url: str, payments: int, artisans: int, batch_size: int, ready: Any, start: Any, done: Any
) -> None:
    done.put(_consumer_run(url, payments, artisans, batch_size, ready, start))


def _consumers_in_parallel(url: str, consumers: int, batch_size: int) -> dict[str, float]:
    """``consumers`` consumer processes at once, as a consumer group spreads the topic's
    partitions (and so the artisans) over its members: PAYMENTS in all."""
    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Semaphore(0), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=_consumer_process,
            args=(url, PAYMENTS // consumers, ARTISANS // consumers, batch_size, ready, start, done),
        )
        for _ in range(consumers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        if not ready.acquire(timeout=300):
            raise RuntimeError("a consumer process did not start")
    start.set()
    runs = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    postings = sum(int(run["postings"]) for run in runs)
    seconds = max(run["seconds"] for run in runs)
    return {"postings": postings, "seconds": seconds, "per_second": postings / seconds}


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


if __name__ == "__main__":
    main()
