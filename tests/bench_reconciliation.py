"""``make bench``'s reconciliation part: a generated settlement file of ``RECON_BENCH_LINES`` lines
(default 1,000,000, the issue's size; the run is linear in it, so ``RECON_BENCH_LINES=100000`` is a
tenth of the wait) reconciled against a ledger that knows every capture, as ``hirfa accounts
reconcile`` does it, in its phases:

(a) reconcile: keep the file, read and check it, stage it, match it against the ledger in SQL
    (every line written to ``recon_items`` with its state) - what pandas is compared with;
(b) post: one settlement entry per matched line, with its ``entry_posted`` event;
(c) complete: what the ledger has and the file lacks, cases, counts, ``run_completed``;

and, in the same run, pandas doing the matching only (``read_csv`` + ``merge`` against the same
ledger extract), as a ratio to (a). Each phase runs in a fresh process of its own, whose memory is
reported: resident once imported, and the peak (flat memory is a peak close to the first). The
database's own work (COPY, the hash joins, the writes) is in the PostgreSQL server, outside those
figures: its hashes are bounded by ``work_mem`` (``settlement_staging``), spilling to disk beyond.
Phase (a) is also shown step by step.

Not a test: nothing here asserts a time. On PostgreSQL when one answers at ``TEST_DATABASE_URL``
(a throwaway database, dropped afterwards), SQLite in a temporary directory otherwise. The ledger is
laid in bulk SQL for the benchmark (its setup is not what is measured).
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from services.accounts.adapters.file_store import LocalFileStore
from services.accounts.service_layer.reconciliation import ReconciliationSettings, RunRequest, import_file
from shared.config import PROJECT_ROOT
from shared.db import UnitOfWork, make_engine, run_migrations
from tests.support import Databases

HEADER = (
    "settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,"
    "currency,gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at\r\n"
)
GROSS, FEE = 10_000, 300  # the default domestic schedule: 150 bp + 150


def payment_id(i: int) -> str:
    return f"pay_BENCH{i:021d}"


def write_settlement_file(path: Path, lines: int, day: dt.date) -> None:
    stamp = int(dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp())
    with path.open("w", newline="") as out:
        out.write(HEADER)
        for i in range(lines):
            out.write(
                f"{day},M2T-BENCH,capture,tx{i},{payment_id(i)},,,MAD,{GROSS},{FEE},{GROSS - FEE},cmi,domestic,{stamp}\r\n"
            )


def lay_ledger(engine: sa.Engine, lines: int) -> None:
    """One payment entry per line (Dr gateway_receivable:m2t / Cr an artisan's pending), in bulk."""
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        for account_id, kind, owner_type, side in (
            ("la_bench_receivable", "gateway_receivable:m2t", "platform", "debit"),
            ("la_bench_pending", "pending", "artisan", "credit"),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO ledger_accounts (id, owner_type, owner_id, kind, currency, normal_side, balance, opened_at) "
                    "VALUES (:id, :owner_type, :owner_id, :kind, 'MAD', :side, :balance, :now)"
                ),
                {
                    "id": account_id,
                    "owner_type": owner_type,
                    "owner_id": "platform" if owner_type == "platform" else "art_bench",
                    "kind": kind,
                    "side": side,
                    "balance": GROSS * lines if side == "debit" else -GROSS * lines,
                    "now": now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now,
                },
            )
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text(
                    "INSERT INTO journal_entries (id, cause, cause_id, posting_key, description, posted_at) "
                    "SELECT 'je_bench' || i, 'payment', 'pay_BENCH' || lpad(i::text, 21, '0'), "
                    "'payment:pay_BENCH' || lpad(i::text, 21, '0') || '\\:succeeded', 'bench', :now "
                    "FROM generate_series(0, :n - 1) AS i"
                ),
                {"n": lines, "now": now},
            )
            for account, amount in (("la_bench_receivable", GROSS), ("la_bench_pending", -GROSS)):
                connection.execute(
                    sa.text(
                        "INSERT INTO journal_lines (entry_id, account_id, amount, currency, posted_at, balance_after) "
                        "SELECT 'je_bench' || i, :account, :amount, 'MAD', :now, CAST(:amount AS BIGINT) * (i + 1) "
                        "FROM generate_series(0, :n - 1) AS i"
                    ),
                    {"n": lines, "account": account, "amount": amount, "now": now},
                )
            return
        stamp = now.replace(tzinfo=None).isoformat(sep=" ")
        for start in range(0, lines, 10_000):
            chunk = range(start, min(start + 10_000, lines))
            connection.execute(
                sa.text(
                    "INSERT INTO journal_entries (id, cause, cause_id, posting_key, description, posted_at) "
                    "VALUES (:id, 'payment', :pay, :key, 'bench', :now)"
                ),
                [
                    {
                        "id": f"je_bench{i}",
                        "pay": payment_id(i),
                        "key": f"payment:{payment_id(i)}:succeeded",
                        "now": stamp,
                    }
                    for i in chunk
                ],
            )
            connection.execute(
                sa.text(
                    "INSERT INTO journal_lines (entry_id, account_id, amount, currency, posted_at, balance_after) "
                    "VALUES (:e, :a, :m, 'MAD', :now, :after)"
                ),
                [
                    {"e": f"je_bench{i}", "a": account, "m": amount, "now": stamp, "after": amount * (i + 1)}
                    for i in chunk
                    for account, amount in (("la_bench_receivable", GROSS), ("la_bench_pending", -GROSS))
                ],
            )


def settle(url: str) -> None:
    """The ledger as a production one is once autovacuum has been by: vacuumed (hint bits and
    visibility map set, which the first reader of freshly written rows would otherwise pay for) and
    analysed; and written out (a checkpoint, when the server lets us), so that neither side of the
    comparison pays for the setup's writes."""
    engine = make_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("VACUUM (ANALYZE) journal_entries, journal_lines, ledger_accounts"))
            try:
                connection.execute(sa.text("CHECKPOINT"))
            except sa.exc.DBAPIError:
                pass  # not a superuser: the server writes it out in its own time
    engine.dispose()


def _peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux the high-water mark of its own address space
    (``VmHWM``): ``ru_maxrss`` would also count the process it was forked from before ``exec``,
    so a child of a large ``make bench`` would start at its parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured(
    run: Callable[..., Any], *args: Any, imports: tuple[str, ...] = ()
) -> tuple[float, Any, float, float]:
    """Run ``run(*args)`` in a fresh process (spawned, so it inherits nothing of this one's memory),
    ``imports`` imported before the clock starts: ``(seconds, result, resident MiB once imported,
    peak resident MiB)``."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_timed, run, imports, *args).result()


def _timed(run: Callable[..., Any], imports: tuple[str, ...], *args: Any) -> tuple[float, Any, float, float]:
    for module in imports:
        importlib.import_module(module)
    imported = _peak_rss_mib()
    started = time.perf_counter()
    result = run(*args)
    return time.perf_counter() - started, result, imported, _peak_rss_mib()


def _settings(store: Path) -> ReconciliationSettings:
    return ReconciliationSettings(file_store=LocalFileStore(store), currency="MAD", default_bank_code="145")


def _uow_factory(url: str) -> tuple[sa.Engine, Callable[[], UnitOfWork]]:
    from services.accounts.adapters.orm import OutboxMessage
    from shared.events.outbox import outbox_writer

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine, expire_on_commit=False)
    return engine, lambda: UnitOfWork(factory, outbox_writer(OutboxMessage, "accounts.events"))


class _Steps:
    """Phase (a)'s steps, timed by wrapping the functions that do them (in the measured process)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, module: Any, name: str, label: str) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started

        setattr(module, name, timed)


def hirfa_reconcile(url: str, path: Path, store: Path) -> tuple[str, dict[str, float]]:
    """Phase (a): the run staged and matched, left ``posting``: ``(run id, seconds per step)``."""
    from services.accounts.adapters import file_store
    from services.accounts.service_layer import settlement_staging

    steps = _Steps()
    steps.wrap(file_store.LocalFileStore, "put", "keep the file (SHA-256, store)")
    steps.wrap(settlement_staging, "_copy_and_check", "read + COPY + check values")
    steps.wrap(settlement_staging, "_stage_lines", "read line by line + stage")
    steps.wrap(settlement_staging, "_match", "match in SQL + write items")
    engine, uow_factory = _uow_factory(url)
    with path.open("rb") as stream:
        run, _ = import_file(
            uow_factory,
            _settings(store),
            stream,
            RunRequest(source="gateway_settlement", name=path.name, gateway="m2t"),
            "bench",
            finish=False,
        )
    engine.dispose()
    return run.id, steps.seconds


def items_per_state(url: str, run_id: str) -> dict[str, int]:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        counts = connection.execute(
            sa.text("SELECT state, COUNT(*) FROM recon_items WHERE run_id = :run GROUP BY state"),
            {"run": run_id},
        ).all()
    engine.dispose()
    return {str(state): int(count) for state, count in counts}


def hirfa_post_and_complete(url: str, run_id: str, store: Path) -> tuple[float, dict[str, int]]:
    """Phases (b) and (c): ``(seconds from the last posted chunk to the run's completion, counts)``."""
    from services.accounts.service_layer.reconciliation import finish_run

    engine, uow_factory = _uow_factory(url)
    last_chunk = [time.perf_counter()]
    run = finish_run(
        uow_factory, _settings(store), run_id, lambda _lines: last_chunk.__setitem__(0, time.perf_counter())
    )
    completing = time.perf_counter() - last_chunk[0]
    engine.dispose()
    return completing, dict(run.counts)


def pandas_run(url: str, path: Path) -> int:
    """pandas doing the matching only: the file (``read_csv``) against the ledger extract (``merge``)."""
    import pandas as pd

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    lines = pd.read_csv(path, dtype={"reference": str, "refund_reference": str})
    ledger = pd.read_sql(
        sa.text(
            "SELECT e.cause_id AS reference, l.amount AS expected FROM journal_entries e "
            "JOIN journal_lines l ON l.entry_id = e.id JOIN ledger_accounts a ON a.id = l.account_id "
            "WHERE a.kind = 'gateway_receivable:m2t' AND e.cause = 'payment'"
        ),
        engine,
    )
    merged = lines.merge(ledger, on="reference", how="left")
    matched = int((merged["gross_amount"] == merged["expected"]).sum())
    engine.dispose()
    return matched


def report(
    label: str, lines: int, seconds: float, imported: float | None = None, peak: float | None = None
) -> None:
    memory = (
        ""
        if imported is None or peak is None
        else f"   peak RSS {peak:,.0f} MiB (+{peak - imported:,.0f} once imported)"
    )
    print(f"{label:<52} {lines / seconds:>10,.0f} lines/s {seconds:>8.1f} s{memory}")


def main() -> None:
    lines = int(os.environ.get("RECON_BENCH_LINES", "1000000"))
    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        try:
            url = databases.create("accounts")
            run_migrations(PROJECT_ROOT / "services" / "accounts", url)
            engine = make_engine(url, poolclass=sa.pool.NullPool)
            lay_ledger(engine, lines)
            engine.dispose()
            path = Path(directory) / "settlement.csv"
            write_settlement_file(path, lines, dt.datetime.now(dt.UTC).date())
            store = Path(directory) / "files"
            print(
                f"\nreconciliation of a {lines:,}-line settlement file ({databases.backend}), "
                "each phase in a process of its own"
            )
            settle(url)
            # pandas first, on the same settled ledger; then Hirfa's phases, one after the other.
            pandas_seconds = None
            # Looked for, not imported here: its processes are measured on their own.
            if importlib.util.find_spec("pandas") is None:
                print("pandas is not installed: no comparison")
            else:
                pandas_seconds, matched, pandas_imported, pandas_peak = measured(
                    pandas_run, url, path, imports=("pandas",)
                )
                assert matched == lines
            reconciling, (run_id, steps), imported, peak = measured(hirfa_reconcile, url, path, store)
            report("(a) hirfa reconcile: keep, read, check, stage, match", lines, reconciling, imported, peak)
            for step, seconds in steps.items():
                print(f"      {step:<46} {seconds:>27.1f} s")
            print(f"      items per state: {items_per_state(url, run_id)}")
            if pandas_seconds is not None:
                report(
                    "    pandas: read_csv + merge, same ledger extract",
                    lines,
                    pandas_seconds,
                    pandas_imported,
                    pandas_peak,
                )
                print(f"{'    hirfa (a) / pandas (lines/s)':<52} {pandas_seconds / reconciling:>10.2f}x")
            finishing, (completing, counts), imported, peak = measured(
                hirfa_post_and_complete, url, run_id, store
            )
            posting = finishing - completing
            report("(b) hirfa post: entries, lines, entry_posted events", lines, posting, imported, peak)
            report("(c) hirfa complete: ledger side, cases, counts", lines, completing)
            report("hirfa end to end (a + b + c)", lines, reconciling + finishing)
            verdict = (
                "as expected" if counts.get("matched") == lines else f"WARNING: expected {lines:,} matched"
            )
            print(f"checked: {counts.get('matched', 0):,} lines matched and posted ({verdict})")
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()
