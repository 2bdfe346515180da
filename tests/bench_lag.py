"""``make bench``, the lag part: how long after payments commits a ``payments.payment.succeeded``
event the artisan's balance shows it, through the real processes, at half the maximum load.

The embedded broker (``hirfa stack broker``), payments' outbox relay (``hirfa payments relay``) and
accounts' consumer (``hirfa accounts consume``) run as ``make run`` runs them (deploy/Procfile's
lines, each in its own process group), on throwaway PostgreSQL databases (``TEST_DATABASE_URL``,
dropped afterwards), with the settings production uses: nothing of the relay's or the consumer's
configuration is changed (batch sizes, poll interval, linger, JSON logs at INFO), so what the
environment sets (``CONSUMER_BATCH_SIZE=50 make bench``) is what is measured.

Before the processes start, accounts knows the artisans (registered, tier 3, as the ledger part
makes them) and a short history of their payments (``HISTORY``, 6,000), with the statistics
autovacuum keeps on a database in use: on a ledger made a moment ago and analyzed empty, the plan
PostgreSQL keeps for checking each journal line's entry (its foreign key) reads every entry, so the
consumer would slow down with each batch until autovacuum analyzed the journal again. The
events are built as the ledger's tests build them (``tests/ledger_support.py``, checked against
their schema) and written to payments' outbox by payments' own unit of work, one payment a
transaction, as a payment that succeeds is. First a burst (``LAG_BENCH_BURST`` payments, 10,000,
in one transaction): the maximum posting rate is the burst's size over the time from its commit to
its last posting. Then a steady feed at half that rate for ``LAG_BENCH_SECONDS`` (25), from
``FEEDERS`` threads (4), as payments' API commits several payments at once; should a thread fall
behind its schedule (the machine is busy), it writes what it has due in one transaction, at most
``CATCH_UP`` payments, and the rate reached and the transactions are printed.

A payment's lag is the time its journal entry is committed in accounts minus the time its outbox
row is committed in payments, both read from the database server's clock (the two databases are on
the same server): the feeder reads ``clock_timestamp()`` in the payment's transaction just before
its commit, and the bench polls accounts' journal every ``POLL_SECONDS`` (10 ms), each entry timed
by the first poll that sees it. The first time is taken before its commit and the second after
the entry's: a lag is never understated, and overstated by at most a poll's 10 ms and the outbox
row's commit (a millisecond or so). The poll reads the entries after the last one it saw (entry
ids grow in the consumer's order, and one consumer commits one batch after another); a payment it
did not see is reported as not measured.

Beside it, where the lag goes, from the times the services record themselves (the relay's
``published_at``, the consumer's ``posted_at``; their processes' clocks, on this machine): the
relay's leg, the broker's and the consumer's until it wrote the entry, and the rest of its batch
until the commit.

Afterwards every payment must have posted (no ledger case, nothing parked) and the integrity check
must hold. Skipped without PostgreSQL. Every process is stopped at the end, and killed with the
bench should it be interrupted or killed (``tests.support.start_child``); interrupted by Ctrl-C
or SIGTERM, the bench also drops its databases on the way out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared.config import PROJECT_ROOT

SECONDS = float(os.environ.get("LAG_BENCH_SECONDS", "25"))
BURST = int(os.environ.get("LAG_BENCH_BURST", "10000"))
ARTISANS = 300
HISTORY = 20 * ARTISANS  # payments in the ledger before the processes start
GROSS, FEE = 1_000, 100  # 10 MAD, 1 MAD fee: 2,000 payments per artisan stay under the tier-3 cap
WARM_UP = 30
POLL_SECONDS = 0.01
FEEDERS = 4
CATCH_UP = 50
GOAL_P99_SECONDS = 1.0
SETTLE_TIMEOUT_SECONDS = 120.0
# Procfile lines, started in this order and stopped in the reverse one (the broker last).
PROCESSES = ("broker", "payments_relay", "accounts_consumer")


@dataclasses.dataclass(frozen=True)
class LagFigures:
    """Lags, in seconds, of the payments that were measured; ``missing``: those never seen posted."""

    measured: int
    missing: int
    p50: float
    p99: float
    worst: float


def percentile(ordered: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of ``ordered`` (sorted, not empty): the smallest value that at
    least ``percent`` % of the values do not exceed."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def lag_figures(committed: Mapping[str, dt.datetime], posted: Mapping[str, dt.datetime]) -> LagFigures:
    """Each payment's lag (``posted`` minus ``committed``, by payment id), over the payments in
    ``committed``: the median, the 99th percentile and the worst. A payment never posted is
    counted as missing, not as a lag."""
    lags = sorted(
        (posted[payment] - at).total_seconds() for payment, at in committed.items() if payment in posted
    )
    if not lags:
        return LagFigures(0, len(committed), math.nan, math.nan, math.nan)
    return LagFigures(
        measured=len(lags),
        missing=len(committed) - len(lags),
        p50=percentile(lags, 50),
        p99=percentile(lags, 99),
        worst=lags[-1],
    )


def main() -> None:
    from tests.support import Databases

    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        if databases.backend != "postgresql":
            print("lag: skipped (it is measured on PostgreSQL; none answers at TEST_DATABASE_URL)")
            return
        try:
            with stopped_cleanly_by_sigterm():
                _bench(Path(directory), databases)
        finally:
            databases.drop_all()


@contextlib.contextmanager
def stopped_cleanly_by_sigterm() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) ends the bench as Ctrl-C does: with an exception, so the
    processes are stopped and the databases dropped on the way out. ``tests.support``'s guard,
    installed by the first process started, kills the processes first and then calls this."""

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is leave:
            signal.signal(signal.SIGTERM, previous)


def _bench(directory: Path, databases: Any) -> None:
    from shared.db import run_migrations

    urls = {service: databases.create(f"bench_lag_{service}") for service in ("payments", "accounts")}
    for service, url in urls.items():
        run_migrations(PROJECT_ROOT / "services" / service, url)
    artisans = prepare_ledger(urls["accounts"], ARTISANS, HISTORY)
    feeder = Feeder(urls["payments"], directory)
    watch = JournalWatch(urls["accounts"])
    with running(directory, urls) as logs, watch.polling():
        try:
            # The consumer's group joined and the topics made: the pipeline is warm.
            warm_up = feeder.feed_all(feeder.build(artisans, WARM_UP))
            watch.wait_for(warm_up, SETTLE_TIMEOUT_SECONDS)
            burst = feeder.build(artisans, BURST)
            burst_committed = feeder.burst(burst)
            watch.wait_for(burst_committed, SETTLE_TIMEOUT_SECONDS)
            burst_seconds = (
                max(watch.posted[payment] for payment in burst_committed) - min(burst_committed.values())
            ).total_seconds()
            max_rate = len(burst) / burst_seconds
            rate = max_rate / 2
            steady = feeder.build(artisans, int(rate * SECONDS))
            fed = feeder.feed_steadily(steady, rate)
            watch.wait_for(fed.committed, SETTLE_TIMEOUT_SECONDS)
        except Exception:
            for name, log in logs.items():
                print(f"--- {name} (last lines) ---\n{tail(log)}", file=sys.stderr)
            raise
    feeder.dispose()
    figures = lag_figures(fed.committed, watch.posted)
    legs = lag_legs(urls, fed.committed, watch.posted)
    posted, cases, parked, sound = ledger_state(urls["accounts"])
    expected = HISTORY + len(warm_up) + len(burst) + len(steady)

    def row(label: str, value: str) -> None:
        print(f"{label:<70} {value:>16}")

    print("lag from a payment's outbox commit to the artisan's balance, on postgresql:")
    print("the embedded broker, payments' relay and accounts' consumer as processes (deploy/Procfile)")
    row(f"max posting rate (a burst of {len(burst):,} payments)", f"{max_rate:,.0f} postings/s")
    row(
        f"steady feed at half of it for {SECONDS:.0f} s, one payment a transaction",
        f"{fed.per_second:,.0f} payments/s",
    )
    row(
        f"  in transactions ({FEEDERS} feeders; fewer: they fell behind, caught up)",
        f"{len(steady):,} in {fed.transactions:,}",
    )
    row("lag p50", f"{figures.p50 * 1000:,.0f} ms")
    verdict = "met" if figures.p99 < GOAL_P99_SECONDS else "MISSED"
    row(
        f"lag p99 (goal: under {GOAL_P99_SECONDS * 1000:,.0f} ms: {verdict})", f"{figures.p99 * 1000:,.0f} ms"
    )
    row("lag, worst", f"{figures.worst * 1000:,.0f} ms")
    print("  where it goes, p50 / p99 (by the relay's and the consumer's clocks):")
    for label, lags in legs.items():
        if not lags:
            continue
        ordered = sorted(lags)
        row(f"  {label}", f"{percentile(ordered, 50) * 1000:,.0f} / {percentile(ordered, 99) * 1000:,.0f} ms")
    if figures.missing:
        row("payments not seen posted by the poll (not measured)", f"{figures.missing:,}")
    row(
        "ledger integrity check afterwards",
        "held" if sound else "BROKEN",
    )
    verdict = (
        "as expected"
        if posted == expected and not cases and not parked
        else f"WARNING: expected {expected:,}, no case, none parked"
    )
    print(f"checked: {posted:,} payment entries posted, {cases} ledger case(s), {parked} parked ({verdict})")


def lag_legs(
    urls: dict[str, str], committed: Mapping[str, dt.datetime], posted: Mapping[str, dt.datetime]
) -> dict[str, list[float]]:
    """Each measured payment's lag in three legs, in seconds, from the times the services record
    (their processes' clocks, on this machine): until the relay marked its outbox row published
    (the relay's wait and the broker's acknowledgement), until the consumer wrote its entry (the
    broker, the consumer's fetch and its batch so far), until that batch was seen committed."""
    from shared.db import make_engine

    def times(url: str, query: str) -> dict[str, dt.datetime]:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                return {str(payment): at for payment, at in connection.execute(sa.text(query))}
        finally:
            engine.dispose()

    published = times(
        urls["payments"],
        "SELECT CAST(payload AS json) -> 'data' ->> 'payment_id', published_at FROM outbox "
        "WHERE published_at IS NOT NULL",
    )
    written = times(
        urls["accounts"], "SELECT cause_id, posted_at FROM journal_entries WHERE cause = 'payment'"
    )
    measured = [
        payment for payment in committed if payment in posted and payment in published and payment in written
    ]
    return {
        "outbox commit -> published by the relay": [
            (published[payment] - committed[payment]).total_seconds() for payment in measured
        ],
        "-> its entry written by the consumer": [
            (written[payment] - published[payment]).total_seconds() for payment in measured
        ],
        "-> that batch committed": [
            (posted[payment] - written[payment]).total_seconds() for payment in measured
        ],
    }


# -- the processes --------------------------------------------------------------------------------


@contextlib.contextmanager
def running(directory: Path, urls: dict[str, str]) -> Iterator[dict[str, Path]]:
    """The broker, payments' relay and accounts' consumer, as deploy/Procfile starts them, on free
    ports and the bench's databases; stopped (SIGTERM, then killed with their groups) when the
    block ends however it ends. Yields their log files."""
    from shared.config import PROBE_PORTS
    from tests.e2e.stack import procfile_commands
    from tests.support import free_port, kill_group, start_child

    commands = procfile_commands()
    port = free_port()
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "VAR_DIR": str(directory / "var"),
        "BROKER_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "PAYMENTS_DATABASE_URL": urls["payments"],
        "ACCOUNTS_DATABASE_URL": urls["accounts"],
        # The relay's and the consumer's probes on free ports, beside a stack that may be running.
        **{f"{name.upper()}_PROBE_PORT": str(free_port()) for name in PROCESSES if name in PROBE_PORTS},
    }
    logs = {name: directory / f"{name}.log" for name in PROCESSES}
    processes: list[subprocess.Popen] = []
    try:
        for name in PROCESSES:
            with logs[name].open("ab") as log:  # the child keeps its own copy
                processes.append(
                    start_child(
                        ["bash", "-c", "exec " + commands[name]],
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            if name == "broker":
                wait_for_port(port, processes[-1])
        yield logs
    finally:
        for process in reversed(processes):  # the broker last: a relay stopped after it would wait
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                pass
            kill_group(process.pid)  # what is left of the group (the broker binary under hirfa)
            process.wait()


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the broker exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("the broker did not start")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# -- accounts: the artisans, the journal, the checks ------------------------------------------------


def prepare_ledger(url: str, artisans: int, history: int) -> list[str]:
    """``artisans`` artisans known to accounts at tier 3, as onboarding's events make them, and a
    history of ``history`` payments posted as the consumer posts them, then the statistics a
    database in use has (autovacuum keeps them). A ledger made a moment ago and analyzed empty
    would have the planner check each line's entry by reading every entry: the plan PostgreSQL
    keeps for a foreign key's check is made when the consumer's connection first uses it."""
    from services.accounts.app import create_app
    from services.accounts.config import load_config
    from tests.ledger_support import LedgerDriver

    config = load_config(database_url=url, log_json=False)
    app = create_app(config, key_lookup=lambda kid: None)
    engine = app.extensions["hirfa"].engine
    try:
        driver = LedgerDriver(app)
        owners = [driver.artisan_at_tier(3) for _ in range(artisans)]
        consumer = driver.consumer
        events = Feeder.build(owners, history)
        for first in range(0, len(events), config.consumer_batch_size):
            consumer.apply_batch(events[first : first + config.consumer_batch_size])
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return owners


class JournalWatch:
    """Polls accounts' journal every ``POLL_SECONDS``: ``posted`` holds, by payment id, the
    database's clock at the first poll that saw the payment's entry."""

    def __init__(self, url: str) -> None:
        from shared.db import make_engine

        self.engine = make_engine(url, poolclass=sa.pool.NullPool)
        self.posted: dict[str, dt.datetime] = {}
        self._last_entry = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def poll(self, connection: sa.Connection) -> None:
        rows = connection.execute(
            sa.text(
                "SELECT id, cause_id, clock_timestamp() FROM journal_entries "
                "WHERE id > :after AND cause = 'payment' ORDER BY id"
            ),
            {"after": self._last_entry},
        ).all()
        if rows:
            with self._lock:
                for _, payment, seen_at in rows:
                    self.posted.setdefault(payment, seen_at)
            self._last_entry = rows[-1][0]

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        thread = threading.Thread(target=self._run, name="journal-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(10)
            self.engine.dispose()

    def _run(self) -> None:
        with self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            while not self._stop.is_set():
                started = time.monotonic()
                self.poll(connection)
                self._stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - started)))

    def wait_for(self, payments: Mapping[str, Any] | Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(payment in self.posted for payment in payments):
                    return
            time.sleep(0.05)
        with self._lock:
            missing = sum(1 for payment in payments if payment not in self.posted)
        raise RuntimeError(f"{missing:,} payment(s) not posted within {timeout:.0f} s")


def ledger_state(url: str) -> tuple[int, int, int, bool]:
    """Payment entries posted, ledger cases, parked events, and whether the integrity check held."""
    from services.accounts.adapters.orm import JournalEntry, LedgerCase, ParkedEvent
    from services.accounts.bootstrap import bootstrap
    from services.accounts.config import load_config
    from services.accounts.service_layer.statements import check_integrity

    context = bootstrap(load_config(database_url=url, log_json=False), key_lookup=lambda kid: None)
    try:
        report = check_integrity(context.uow_factory())
        with context.session_factory() as session:
            posted = session.scalar(sa.select(sa.func.count()).where(JournalEntry.cause == "payment"))
            cases = session.scalar(sa.select(sa.func.count()).select_from(LedgerCase))
            parked = session.scalar(sa.select(sa.func.count()).select_from(ParkedEvent))
    finally:
        context.engine.dispose()
    return int(posted or 0), int(cases or 0), int(parked or 0), report["differences"] == []


# -- payments: the outbox --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fed:
    committed: dict[str, dt.datetime]  # payment id -> the database's clock just before its commit
    per_second: float
    transactions: int


class Feeder:
    """Writes ``payments.payment.succeeded`` events to payments' outbox with payments' own unit of
    work, noting the database's clock just before each commit."""

    def __init__(self, url: str, directory: Path) -> None:
        from services.payments.bootstrap import bootstrap
        from services.payments.config import load_config

        self.context = bootstrap(
            load_config(database_url=url, log_json=False, var_dir=str(directory / "feeder")),
            key_lookup=lambda kid: None,
        )

    @staticmethod
    def build(artisans: list[str], count: int) -> list[Any]:
        """``count`` events, the artisans in turn (built before the clock runs)."""
        from tests.ledger_support import payment_succeeded

        return [payment_succeeded(artisans[index % len(artisans)], GROSS, FEE) for index in range(count)]

    def write(self, events: Sequence[Any]) -> dt.datetime:
        """One transaction holding ``events``; the database's clock just before it commits."""
        with self.context.uow_factory() as uow:
            for event in events:
                uow.add_event(event)
            uow.write_events()
            assert uow.session is not None
            at = uow.session.scalar(sa.select(sa.func.clock_timestamp()))
            uow.commit()
        return at

    def burst(self, events: Sequence[Any]) -> dict[str, dt.datetime]:
        at = self.write(events)
        return {event.data["payment_id"]: at for event in events}

    def feed_all(self, events: Sequence[Any]) -> dict[str, dt.datetime]:
        return {event.data["payment_id"]: self.write([event]) for event in events}

    def feed_steadily(self, events: Sequence[Any], rate: float) -> Fed:
        """``events`` at ``rate`` a second, one a transaction, from ``FEEDERS`` threads (as payments'
        API commits several payments at once), each taking every ``FEEDERS``-th event at its time;
        a thread behind its schedule writes what it has due (up to ``CATCH_UP``) in one."""
        committed: dict[str, dt.datetime] = {}
        transactions = [0] * FEEDERS
        failures: list[BaseException] = []
        stop = threading.Event()  # the bench is leaving (interrupted), or a feeder failed
        started = time.monotonic()

        def feed(lane: int) -> None:
            mine = events[lane::FEEDERS]
            written = 0
            try:
                while written < len(mine) and not stop.is_set():
                    ahead = started + (written * FEEDERS + lane) / rate - time.monotonic()
                    if ahead > 0 and stop.wait(ahead):
                        return
                    due = int(((time.monotonic() - started) * rate - lane) / FEEDERS) + 1
                    chunk = mine[written : max(written + 1, min(due, written + CATCH_UP, len(mine)))]
                    at = self.write(chunk)
                    committed.update((event.data["payment_id"], at) for event in chunk)
                    written += len(chunk)
                    transactions[lane] += 1
            except BaseException as failure:  # noqa: BLE001 - told to the bench, which raises it
                failures.append(failure)
                stop.set()

        threads = [
            threading.Thread(target=feed, args=(lane,), name=f"feeder-{lane}", daemon=True)
            for lane in range(FEEDERS)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            stop.set()
        if failures:
            raise failures[0]
        return Fed(committed, len(events) / (time.monotonic() - started), sum(transactions))

    def dispose(self) -> None:
        self.context.engine.dispose()


if __name__ == "__main__":
    main()
