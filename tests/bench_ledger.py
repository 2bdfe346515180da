"""``make bench``, the ledger part: postings per second through the accounts consumer, beside the
ceiling plain SQL reaches with single transfers from 8 concurrent clients on the same database.

The ceiling is the classic double-entry transfer, one per transaction: lock the two accounts (one
``SELECT … FOR UPDATE`` in id order), update both balances, insert the entry and its two lines,
commit; 8 clients at once for a few seconds, between random pairs of 1,000 accounts (so they seldom
wait for each other's locks). ``pgbench`` runs it when it is on the PATH (it comes with
PostgreSQL's client); 8 Python client processes (psycopg, prepared statements) run it too, and the
higher of the two is the ceiling: the consumer is measured against the strongest reference this
machine gives.

The consumers are timed on ``payments.payment.succeeded`` events for tier-3 artisans, as the broker
hands them over (value and key bytes): decode with the schema check, then ``apply_batch``,
``CONSUMER_BATCH_SIZE`` (default 200) per transaction, the broker left out. They run as one process
per partition of the topics (``BENCH_LEDGER_CONSUMERS``, default 3, ``KAFKA_TOPIC_PARTITIONS``),
each on its own artisans, as a consumer group spreads them.

The machine may be shared (CI, other work): a ceiling and a consumer figure measured a minute apart
can see different loads. So the two are measured in ``ROUNDS`` pairs, each pair back to back, and
the ratio reported is the median of the pairs' ratios. Afterwards the ledger's integrity check
(``GET /v1/ledger/integrity``) must find nothing, and every event must have posted: a throughput
figure means nothing if postings were refused.

The accounts database is analyzed once the artisans are registered, as autovacuum keeps a database
in use analyzed (a table made a moment ago has no statistics, and the planner would then scan the
whole inbox for each batch's check). On SQLite (no PostgreSQL at ``TEST_DATABASE_URL``) there are
no concurrent clients to measure: the consumer's figures are printed without a ceiling.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import random
import re
import shutil
import statistics
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
ROUNDS = 3

CEILING_CLIENTS = 8
CEILING_SECONDS = 5.0
CEILING_WARM_UP_SECONDS = 2.0
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
            transfers = databases.create("bench_transfers") if databases.admin_url else None
            consumer_postings(url, transfers)
        finally:
            databases.drop_all()


# -- the ceiling: single transfers in plain SQL, 8 clients ---------------------------------------


def create_transfer_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(TRANSFER_TABLES)
        connection.execute(
            "INSERT INTO bench_raw_accounts (id, balance) SELECT n, 0 FROM generate_series(1, %s) AS n",
            (CEILING_ACCOUNTS,),
        )
        connection.execute("VACUUM ANALYZE")


def warm_up_ceiling(url: str) -> None:
    """Both clients, untimed, for ``CEILING_WARM_UP_SECONDS``: the first transfers into the new
    tables (their first pages and index splits) are not the ceiling, as the consumers' first
    batches (built and warmed up before their rounds) are not theirs."""
    pgbench = shutil.which("pgbench")
    if pgbench is not None:
        _pgbench_clients(pgbench, url, CEILING_WARM_UP_SECONDS)
    _python_clients(url, CEILING_WARM_UP_SECONDS)


def transfer_ceiling(url: str, *, python: bool) -> dict[str, float]:
    """Transfers per second of ``CEILING_CLIENTS`` concurrent clients, each one transfer per
    transaction, by tool: pgbench when on the PATH, the Python clients when asked (or without
    pgbench)."""
    figures = {}
    pgbench = shutil.which("pgbench")
    if pgbench is not None:
        figures["pgbench"] = _pgbench_clients(pgbench, url)
    if python or pgbench is None:
        figures["python"] = _python_clients(url)
    return figures


def transfers_sound(url: str) -> tuple[bool, int]:
    """Whether the transfers' ledger adds up (balances = Σ lines, Σ lines = 0); how many there were."""
    import psycopg

    with psycopg.connect(url) as connection:
        unbalanced = connection.execute(
            "SELECT count(*) FROM bench_raw_accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total "
            "FROM bench_raw_lines GROUP BY account_id) l ON l.account_id = a.id "
            "WHERE a.balance <> coalesce(l.total, 0)"
        ).fetchone()
        total, transfers = connection.execute(
            "SELECT coalesce(sum(amount), 0), count(DISTINCT entry_id) FROM bench_raw_lines"
        ).fetchone()
    return unbalanced[0] == 0 and total == 0, transfers


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


def _python_clients(url: str, seconds: float = CEILING_SECONDS) -> float:
    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Semaphore(0), context.Event(), context.Queue()
    clients = [
        context.Process(target=_transfer_client, args=(url, seed, ready, start, seconds, done))
        for seed in range(CEILING_CLIENTS)
    ]
    for client in clients:
        client.start()
    for _ in clients:  # every client started and connected: the clock starts for all at once
        if not ready.acquire(timeout=120):
            raise RuntimeError("a transfer client did not start")
    start.set()
    total = sum(done.get(timeout=seconds + 60) for _ in clients)
    for client in clients:
        client.join(timeout=10)
    return total / seconds


def _pgbench_clients(pgbench: str, url: str, seconds: float = CEILING_SECONDS) -> float:
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
            + ["-T", str(int(seconds)), "-f", file.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    found = re.search(r"tps = ([0-9.]+)", run.stdout)
    if run.returncode or found is None:
        raise RuntimeError(f"pgbench failed ({run.returncode}): {run.stdout} {run.stderr}")
    return float(found.group(1))


# -- the accounts consumer ------------------------------------------------------------------------


def consumer_postings(url: str, transfers: str | None) -> None:
    from services.accounts.adapters.orm import JournalEntry, LedgerCase, ParkedEvent
    from services.accounts.bootstrap import bootstrap
    from services.accounts.config import load_config
    from services.accounts.service_layer.statements import check_integrity
    from shared.config import PROJECT_ROOT
    from shared.db import run_migrations

    run_migrations(PROJECT_ROOT / "services" / "accounts", url)
    if transfers is not None:
        create_transfer_tables(transfers)
    # From the environment, so ``CONSUMER_BATCH_SIZE=50 make bench`` compares batch sizes.
    batch_size = load_config(database_url=url, log_json=False).consumer_batch_size
    one = _consumer_run(url, PAYMENTS, ARTISANS, batch_size)
    unbatched = _consumer_run(url, UNBATCHED_PAYMENTS, ARTISANS, 1)
    rounds = _rounds(url, transfers, batch_size)

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
        print(f"{label:<70} {value:>16}")

    row(f"consumer, 1 process, {batch_size} per transaction", f"{one['per_second']:,.0f} postings/s")
    row("consumer, 1 process, 1 per transaction", f"{unbatched['per_second']:,.0f} postings/s")
    for number, paired in enumerate(rounds, start=1):
        row(
            f"round {number}: {CONSUMERS} consumer processes (partitions), {batch_size} a transaction",
            f"{paired['consumers']:,.0f} postings/s",
        )
        for tool, figure in paired["ceiling"].items():
            row(
                f"round {number}: raw SQL ceiling, {CEILING_CLIENTS} clients, 1 transfer a commit ({tool})",
                f"{figure:,.0f} /s",
            )
    if transfers is not None:
        ratios = sorted(paired["consumers"] / max(paired["ceiling"].values()) for paired in rounds)
        row(
            "ratio consumers / raw SQL ceiling, median of rounds (goal: 2.0x)",
            f"{statistics.median(ratios):.2f}x",
        )
        row("  the rounds' ratios", " ".join(f"{ratio:.2f}x" for ratio in ratios))
    row("ratio batched / one at a time (1 process)", f"{one['per_second'] / unbatched['per_second']:.1f}x")
    row("SQL statements per posting: consumer batched", f"{one['statements']:.2f}")
    row("SQL statements per posting: consumer one at a time", f"{unbatched['statements']:.1f}")
    if transfers is not None:
        sound, count = transfers_sound(transfers)
        row("SQL statements per transfer: raw SQL (and a COMMIT)", f"{len(TRANSFER)}")
        row(
            "raw SQL transfers: balances = Σ lines, Σ lines = 0",
            f"{'held' if sound else 'BROKEN'} ({count:,})",
        )
    expected = one["postings"] + unbatched["postings"] + sum(paired["postings"] for paired in rounds)
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
    url: str, payments: int, artisans: int, batch_size: int, rounds: int = 1, go: Any = None, done: Any = None
) -> dict[str, float]:
    """One accounts consumer, wired as ``hirfa accounts consume`` wires it, on its own artisans
    (tier 3): the payments are built first (untimed, as the broker's value and key bytes), then
    decoded and applied ``batch_size`` per transaction, ``payments`` a round. In another process
    (``go``, a barrier shared with the parent, and ``done``, a queue), it waits at ``go`` once
    built, then each round starts when everyone is at ``go`` again, and its figures go on ``done``."""
    from services.accounts.app import create_app
    from services.accounts.config import load_config
    from tests.ledger_support import LedgerDriver, payment_succeeded

    app = create_app(load_config(database_url=url, log_json=False), key_lookup=lambda kid: None)
    engine = app.extensions["hirfa"].engine
    try:
        driver = LedgerDriver(app)
        consumer = driver.consumer
        owners = [driver.artisan_at_tier(3) for _ in range(artisans)]
        events = [payment_succeeded(owners[i % artisans], GROSS, FEE) for i in range(payments * rounds)]
        messages = [(event.to_bytes(), event.key.encode()) for event in events]
        # Statistics, as autovacuum keeps them on a database in use: a table made a moment ago has
        # none, and the planner would take every inbox row for a match of the consumer's name.
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        gc.freeze()  # as ``hirfa accounts consume`` does before its first batch
        if go is not None:
            go.wait()  # built: nothing of this process runs while the first ceiling is measured
        for number in range(rounds):
            if go is not None:
                go.wait()
            round_messages = messages[number * payments : (number + 1) * payments]
            with counting_statements(engine) as statements:
                started = time.perf_counter()
                for first in range(0, len(round_messages), batch_size):
                    chunk = round_messages[first : first + batch_size]
                    consumer.apply_batch([consumer.decode(value, key) for value, key in chunk])
                elapsed = time.perf_counter() - started
            figures = {
                "postings": payments,
                "seconds": elapsed,
                "per_second": payments / elapsed,
                "statements": statements[0] / payments,
            }
            if done is not None:
                done.put(figures)
    finally:
        engine.dispose()
    return figures


def _rounds(url: str, transfers: str | None, batch_size: int) -> list[dict[str, Any]]:
    """``ROUNDS`` pairs, back to back: the raw-SQL ceiling (if PostgreSQL), then ``CONSUMERS``
    consumer processes at once, as a consumer group spreads the topic's partitions (and so the
    artisans) over its members, PAYMENTS in all a round."""
    context = multiprocessing.get_context("spawn")
    go, done = context.Barrier(CONSUMERS + 1, timeout=600), context.Queue()
    processes = [
        context.Process(
            target=_consumer_run,
            args=(url, PAYMENTS // CONSUMERS, ARTISANS, batch_size, ROUNDS, go, done),
        )
        for _ in range(CONSUMERS)
    ]
    for process in processes:
        process.start()
    go.wait()  # every consumer built and idle
    rounds = []
    for number in range(ROUNDS):
        # Before each round's consumers, with them built and waiting (idle) at the barrier.
        ceiling = {}
        if transfers is not None:
            if number == 0:
                warm_up_ceiling(transfers)
            settle(url, transfers)
            ceiling = transfer_ceiling(transfers, python=number == 0)
            settle(url, transfers)
        go.wait()
        runs = [done.get(timeout=600) for _ in processes]
        postings = sum(int(run["postings"]) for run in runs)
        rounds.append(
            {
                "postings": postings,
                "consumers": postings / max(run["seconds"] for run in runs),
                "ceiling": ceiling,
            }
        )
    for process in processes:
        process.join(timeout=30)
    return rounds


def settle(*urls: str) -> None:
    """Untimed, before each timed part of a round: what the databases' last writes left to do in
    the background is done now, so that it never lands inside the next measurement, whichever it
    is. ``VACUUM ANALYZE`` (autovacuum would otherwise take up the rows the previous part wrote,
    within a minute, on the same two cores), then a ``CHECKPOINT``: it flushes what they dirtied,
    and restarts the clock of the timed ones (every five minutes), so none lands inside a part;
    every part starts right after one, and pays alike for the whole pages the WAL takes at the
    first write of each page after a checkpoint. A role allowed neither leaves the round as it
    was."""
    import psycopg

    urls = tuple(url.replace("postgresql+psycopg://", "postgresql://") for url in urls)
    for url in urls:
        with psycopg.connect(url, autocommit=True) as connection:
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                connection.execute("VACUUM ANALYZE")
    with psycopg.connect(urls[0], autocommit=True) as connection:
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            connection.execute("CHECKPOINT")  # one for the whole server


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
