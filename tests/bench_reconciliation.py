"""``make bench``'s reconciliation part: a generated settlement file of ``RECON_BENCH_LINES`` lines
(default 1,000,000, the issue's size; the run is linear in it, so ``RECON_BENCH_LINES=100000`` is a
tenth of the wait) reconciled against a ledger that knows every capture, as ``hirfa accounts
reconcile`` does it (stream, stage, match in SQL, post one settlement entry per line), beside
pandas doing only the matching (``read_csv`` + ``merge`` against the same ledger extract) in the
same run, as a ratio; and the memory of each, measured in a fresh process of its own (resident
once imported, and the peak: flat memory is a peak close to the first).

Not a test: nothing here asserts a time. On PostgreSQL when one answers at ``TEST_DATABASE_URL``
(a throwaway database, dropped afterwards), SQLite in a temporary directory otherwise. The ledger is
laid in bulk SQL for the benchmark (its setup is not what is measured).
"""

from __future__ import annotations

import datetime as dt
import importlib
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
                        "SELECT 'je_bench' || i, :account, :amount, 'MAD', :now, :amount * (i + 1) "
                        "FROM generate_series(0, :n - 1) AS i"
                    ),
                    {"n": lines, "account": account, "amount": amount, "now": now},
                )
            # Fresh statistics, as a production ledger has them (autovacuum would catch up later).
            connection.execute(sa.text("ANALYZE journal_entries, journal_lines, ledger_accounts"))
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


def _peak_rss_mib() -> float:
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


def hirfa_run(url: str, path: Path, store: Path) -> dict:
    from services.accounts.adapters.orm import OutboxMessage
    from shared.events.outbox import outbox_writer

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine, expire_on_commit=False)
    settings = ReconciliationSettings(
        file_store=LocalFileStore(store), currency="MAD", default_bank_code="145"
    )
    with path.open("rb") as stream:
        run, _ = import_file(
            lambda: UnitOfWork(factory, outbox_writer(OutboxMessage, "accounts.events")),
            settings,
            stream,
            RunRequest(source="gateway_settlement", name=path.name, gateway="m2t"),
            "bench",
        )
    engine.dispose()
    return dict(run.counts)


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


def report(label: str, lines: int, seconds: float, imported: float, peak: float, note: str = "") -> None:
    print(
        f"{label:<36} {lines / seconds:>10,.0f} lines/s {seconds:>8.1f} s   "
        f"memory {imported:,.0f} MiB once imported, peak {peak:,.0f} MiB (+{peak - imported:,.0f}){note}"
    )


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
            print(
                f"\nreconciliation of a {lines:,}-line settlement file ({databases.backend}), each in its own process"
            )
            seconds, counts, imported, peak = measured(hirfa_run, url, path, Path(directory) / "files")
            report(
                "hirfa (stage, match in SQL, post)",
                lines,
                seconds,
                imported,
                peak,
                f"; matched {counts['matched']:,}",
            )
            try:
                import pandas  # noqa: F401
            except ImportError:
                print("pandas is not installed: no comparison")
                return
            pandas_seconds, matched, imported, peak = measured(pandas_run, url, path, imports=("pandas",))
            assert matched == lines
            report("pandas (read_csv + merge only)", lines, pandas_seconds, imported, peak)
            print(f"{'hirfa / pandas (lines/s)':<36} {pandas_seconds / seconds:>10.2f}x")
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()
