"""The Python CPU a posting costs in one accounts consumer process, batches of ``CONSUMER_BATCH_SIZE``
(200), on a throwaway database: what "Ledger postings" in the README quotes in µs a posting.

A shared machine's load moves wall-clock figures a lot; the process's own CPU time
(``time.process_time``) moves less, and the lowest and the median of a few rounds less still.
The consumer is wired and fed as ``tests/bench_ledger.py`` feeds it (the broker's value and key
bytes, decoded with the schema check, then ``apply_batch``), after a warm-up of five batches.

    .venv/bin/python -m tests.profile_ledger [ROUNDS] [POSTINGS_A_ROUND]
    .venv/bin/python -m tests.profile_ledger --profile   # where it goes (cProfile)

When PostgreSQL runs on this machine, the CPU time its server processes spent for the consumer's
connections is measured too (``/proc/<pid>/stat`` of each backend of the throwaway database, an
autovacuum worker's on it included): the other half of what a posting costs, what an index or a
statement less saves.

To compare two versions, run each in turn a few times (``git archive`` one into a directory and
run it there with ``PYTHONPATH`` set to it).
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ARTISANS = 50
WARM_UP = 1_000


def server_cpu_seconds(url: str) -> dict[int, float] | None:
    """CPU seconds each PostgreSQL process serving ``url``'s database has used so far, by process
    id (this question's own connection left out; a process gone before it is read, left out too);
    None when they are not on this machine."""
    import os

    import psycopg

    if not url.startswith("postgresql"):
        return None
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as connection:
        pids = [
            pid
            for (pid,) in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # ended meanwhile (an autovacuum worker, say)
        except OSError:
            return None
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


def server_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """The CPU the processes present at both readings used between them: one that ended in between
    took its figure with it, and one that started took some before it could be read, so only what
    both readings saw is counted (a little under the truth rather than a difference of totals
    over two sets of processes, which could even come out negative)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def main(argv: list[str]) -> None:
    from services.accounts.app import create_app
    from services.accounts.config import load_config
    from shared.config import PROJECT_ROOT
    from shared.db import run_migrations
    from tests.ledger_support import LedgerDriver, payment_succeeded
    from tests.support import Databases

    profile = "--profile" in argv
    numbers = [int(arg) for arg in argv if not arg.startswith("--")]
    rounds = numbers[0] if numbers else 4
    per_round = numbers[1] if len(numbers) > 1 else 2_000
    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        try:
            url = databases.create("profile_accounts")
            run_migrations(PROJECT_ROOT / "services" / "accounts", url)
            config = load_config(database_url=url, log_json=False)
            app = create_app(config, key_lookup=lambda kid: None)
            engine = app.extensions["hirfa"].engine
            try:
                driver = LedgerDriver(app)
                consumer = driver.consumer
                owners = [driver.artisan_at_tier(3) for _ in range(ARTISANS)]
                events = [
                    payment_succeeded(owners[i % ARTISANS], 10_000, 1_000)
                    for i in range(WARM_UP + rounds * per_round)
                ]
                messages = [(event.to_bytes(), event.key.encode()) for event in events]
                with engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
                gc.freeze()  # as ``hirfa accounts consume`` does before its first batch
                batch = config.consumer_batch_size

                def post(chunk: list[tuple[bytes, bytes]]) -> None:
                    for first in range(0, len(chunk), batch):
                        part = chunk[first : first + batch]
                        consumer.apply_batch([consumer.decode(value, key) for value, key in part])

                post(messages[:WARM_UP])
                if profile:
                    profiler = cProfile.Profile(time.process_time)
                    profiler.runcall(post, messages[WARM_UP:])
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(50)
                    return
                figures, server_figures = [], []
                for number in range(rounds):
                    chunk = messages[WARM_UP + number * per_round : WARM_UP + (number + 1) * per_round]
                    server_before = server_cpu_seconds(url)
                    started = time.process_time()
                    post(chunk)
                    figures.append(1e6 * (time.process_time() - started) / per_round)
                    server_after = server_cpu_seconds(url)
                    if server_before is not None and server_after is not None:
                        server_figures.append(
                            1e6 * server_cpu_between(server_before, server_after) / per_round
                        )
                print(
                    f"Python CPU a posting, batch {batch}, {rounds} rounds of {per_round:,}: "
                    + " ".join(f"{figure:.0f}" for figure in figures)
                    + f" µs; median {statistics.median(figures):.0f}, lowest {min(figures):.0f}"
                )
                if len(server_figures) == rounds:
                    print(
                        "PostgreSQL CPU a posting (its processes for this database): "
                        + " ".join(f"{figure:.0f}" for figure in server_figures)
                        + f" µs; median {statistics.median(server_figures):.0f}, lowest {min(server_figures):.0f}"
                    )
            finally:
                engine.dispose()
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
