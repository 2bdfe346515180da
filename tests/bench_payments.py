"""``make bench``'s payments API part: ``POST /v1/payments``, and a payment created then confirmed
with an approved card through the M2T sandbox, beside a bare Flask + SQLAlchemy endpoint that
validates a small JSON body and inserts one row, all measured in the same run, as ratios.

Everything is served the way production serves it, side by side on this machine: the payments app
and the bare endpoint each under gunicorn with ``deploy/gunicorn.conf.py`` and the same worker and
thread counts (``WEB_CONCURRENCY``, default one worker per core; ``GUNICORN_THREADS``, default the
configuration's), JSON logs at INFO, on PostgreSQL (a throwaway database per app); the M2T sandbox as
``make run`` serves it (``python -m sandbox.m2t``: gunicorn, one worker), sending its callbacks
to payments. Tokens are real EdDSA tokens from the token issuer's key store, verified against its
JWKS the way payments fetches it from onboarding (served here by the bench).

The load comes from locust, headless, in its own process (``tests/bench_payments_load.py``):
``PAYMENTS_BENCH_USERS`` clients (16) for ``PAYMENTS_BENCH_SECONDS`` (15) per run, each run after a
short warm-up: the bare endpoint and ``POST /v1/payments`` as fast as they answer, twice each, in
turns; then ``POST /v1/payments`` paced at half its maximum, where its p99 is the figure that
counts; then create + confirm. Beside each figure, the CPU time
the app's own processes spent per request (per pair for create + confirm, the callbacks payments
received included, the sandbox's own work not): on a machine shared with other work, throughput
depends on the share of the cores the run was given, CPU per request much less. Not a test:
nothing here asserts a time. Skipped without PostgreSQL (``TEST_DATABASE_URL``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask, request

from shared.config import PROJECT_ROOT

USERS = int(os.environ.get("PAYMENTS_BENCH_USERS", "16"))
SECONDS = int(os.environ.get("PAYMENTS_BENCH_SECONDS", "15"))
WARM_UP_SECONDS = 3
ROUNDS = 2  # of the bare endpoint and POST /v1/payments, in turns
PAYEES = 1_000
MARKETPLACE = "cli_bench_marketplace"
M2T_API_KEY = "bench-m2t-api-key"
M2T_CALLBACK_SECRET = "bench-m2t-callback-secret"
APPROVED_CARD = "4242424242424242"
BIN = Path(sys.executable).parent

# -- the reference: a bare Flask + SQLAlchemy endpoint ------------------------------------------------

BARE_TABLE = sa.Table(
    "bare_payments",
    sa.MetaData(),
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("artisan_id", sa.String(40), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


def bare_app() -> Flask:
    """The reference endpoint, for gunicorn: ``POST /payments`` checks a small JSON body and
    inserts one row (database at ``BENCH_BARE_DATABASE_URL``)."""
    url = os.environ["BENCH_BARE_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)
    app = Flask("bare")

    @app.post("/payments")
    def create() -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("artisan_id"), str)
            or type(body.get("amount")) is not int
            or body["amount"] <= 0
            or body.get("currency") != "MAD"
        ):
            return {"error": "invalid body"}, 422
        row = {
            "id": "pay_" + uuid.uuid4().hex,
            "artisan_id": body["artisan_id"],
            "amount": body["amount"],
            "currency": body["currency"],
        }
        with engine.begin() as connection:
            connection.execute(BARE_TABLE.insert().values(**row))
        return row, 201

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# -- running it ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Figures:
    """One locust run's figures for one kind of request. ``cpu_ms``: the CPU time the app's
    processes spent per request (or pair), which other work on the machine does not take away as it
    does throughput; None where /proc cannot tell."""

    per_second: float
    p50: float
    p99: float
    requests: int
    failures: int
    cpu_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class Served:
    """A server process started by the bench: its URL, and its process group (gunicorn's master and
    workers)."""

    url: str
    group: int

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the group's processes used so far; None without /proc."""
        ticks = 0
        try:
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # ended meanwhile
                if int(fields[2]) == self.group:  # its process group
                    ticks += int(fields[11]) + int(fields[12])
        except OSError:
            return None
        return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    from tests.support import Databases

    with tempfile.TemporaryDirectory() as directory:
        databases = Databases(Path(directory))
        if databases.backend != "postgresql":
            print("payments API: skipped (it is measured on PostgreSQL; none answers at TEST_DATABASE_URL)")
            return
        try:
            _bench(Path(directory), databases)
        finally:
            databases.drop_all()


def _bench(directory: Path, databases: Any) -> None:
    from services.payments.adapters.orm import Payment
    from shared.db import make_engine, run_migrations

    payments_url = databases.create("bench_payments")
    bare_url = databases.create("bench_bare")
    run_migrations(PROJECT_ROOT / "services" / "payments", payments_url)
    bare_engine = make_engine(bare_url)
    BARE_TABLE.metadata.create_all(bare_engine)
    bare_engine.dispose()
    payments_engine = make_engine(payments_url)
    artisans = seed_payees(payments_engine, PAYEES)
    token, jwks = issue_token(directory / "keys")

    workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 1)))
    threads = int(os.environ.get("GUNICORN_THREADS", "8"))
    with contextlib.ExitStack() as stack:
        jwks_url = stack.enter_context(serve_jwks(jwks))
        m2t_url = stack.enter_context(sandbox(directory)).url
        payments_port = free_port()
        payments = stack.enter_context(
            gunicorn(
                "services.payments.app:create_app()",
                payments_port,
                workers,
                threads,
                directory / "payments.log",
                PAYMENTS_DATABASE_URL=payments_url,
                PAYMENTS_JWKS_URL=jwks_url,
                PAYMENTS_M2T_URL=m2t_url,
                PAYMENTS_M2T_API_KEY=M2T_API_KEY,
                PAYMENTS_M2T_CALLBACK_SECRET=M2T_CALLBACK_SECRET,
                PAYMENTS_PUBLIC_URL=f"http://127.0.0.1:{payments_port}",
                PAYMENTS_VAR_DIR=str(directory / "var"),
            )
        )
        bare = stack.enter_context(
            gunicorn(
                "tests.bench_payments:bare_app()",
                free_port(),
                workers,
                threads,
                directory / "bare.log",
                BENCH_BARE_DATABASE_URL=bare_url,
            )
        )
        card = card_token(m2t_url)
        load = {"BENCH_TOKEN": token, "BENCH_ARTISANS": ",".join(artisans), "BENCH_CARD_TOKEN": card}

        print(
            f"payments API on PostgreSQL: gunicorn {workers} worker(s) x {threads} threads for both apps; "
            f"locust, {USERS} clients, {SECONDS} s a run"
        )
        # Taken in turns, twice each: a spell of other work on the machine then weighs on both.
        references, creations = [], []
        for _ in range(ROUNDS):
            references.append(locust(bare, "bare", load, directory)["bare insert"])
            creations.append(locust(payments, "create", load, directory)["create"])
        reference, created = together(references), together(creations)
        half_rate = created.per_second / 2
        paced = locust(payments, "create", load, directory, rate=half_rate)["create"]
        pairs = locust(payments, "create_confirm", load, directory)["create+confirm"]
        statements = statements_per_request(
            directory, payments_url, m2t_url, jwks_url, token, artisans[0], card
        )

    rows = [
        ("bare Flask + SQLAlchemy insert", reference),
        ("POST /v1/payments, max", created),
        (f"POST /v1/payments, half max ({half_rate:,.0f}/s)", paced),
        ("create + confirm via M2T sandbox (pairs)", pairs),
    ]
    print(f"{'':<44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'x bare':>7} {'app CPU ms':>11}")
    for label, figures in rows:
        # The paced run's rate is set by the bench, not a throughput: no ratio for it.
        ratio = "" if figures is paced else f"{figures.per_second / reference.per_second:>6.2f}x"
        cpu = "" if figures.cpu_ms is None else f"{figures.cpu_ms:.2f}"
        print(
            f"{label:<44} {figures.per_second:>8,.0f} {figures.p50:>8,.0f} {figures.p99:>8,.0f} "
            f"{figures.failures:>7,} {ratio:>7} {cpu:>11}"
        )
    print(
        f"{'SQL statements per request':<44} create {statements['create']}, "
        f"confirm {statements['confirm']} (tests/integration/test_payment_statements.py)"
    )
    with payments_engine.connect() as connection:
        by_status = dict(
            connection.execute(sa.select(Payment.status, sa.func.count()).group_by(Payment.status)).all()
        )
    payments_engine.dispose()
    # A throughput figure means nothing if the requests were refused: say what was written.
    failures = sum(figures.failures for _, figures in rows)
    verdict = "as expected" if failures == 0 else f"WARNING: {failures:,} request(s) failed"
    print(
        "checked: "
        + ", ".join(f"{count:,} {status}" for status, count in sorted(by_status.items()))
        + f" ({verdict})"
    )


def together(runs: list[Figures]) -> Figures:
    """Runs of equal length as one: the mean rate and median, the worst p99."""
    requests_ = sum(run.requests for run in runs)
    cpu = [run.cpu_ms for run in runs]
    return Figures(
        per_second=sum(run.per_second for run in runs) / len(runs),
        p50=sum(run.p50 for run in runs) / len(runs),
        p99=max(run.p99 for run in runs),
        requests=requests_,
        failures=sum(run.failures for run in runs),
        cpu_ms=None
        if None in cpu or not requests_
        else sum(run.cpu_ms * run.requests for run in runs) / requests_,  # type: ignore[operator]
    )


def seed_payees(engine: sa.Engine, count: int) -> list[str]:
    """``count`` artisans at KYC tier 3, registered with the bench's marketplace."""
    from services.payments.adapters.orm import Payee, PayeeMarketplace
    from shared.db import utcnow
    from shared.ids import new_id

    artisans = [new_id("art") for _ in range(count)]
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Payee),
            [
                {
                    "artisan_id": artisan,
                    "kyc_tier": 3,
                    "tier_cap_amount": 2_000_000,
                    "currency": "MAD",
                    "payout_eligible": True,
                    "kyc_status": "active",
                    "kyc_version": 1,
                    "as_of": now,
                    "ledger_balance": 0,
                    "updated_at": now,
                }
                for artisan in artisans
            ],
        )
        connection.execute(
            sa.insert(PayeeMarketplace),
            [{"artisan_id": artisan, "marketplace_id": MARKETPLACE} for artisan in artisans],
        )
    return artisans


def issue_token(keys_directory: Path) -> tuple[str, dict[str, Any]]:
    """A marketplace's access token from a fresh signing key, and the JWKS that publishes the key."""
    from shared.auth.keys import SigningKeyStore
    from shared.auth.scopes import ROLE_SCOPES, Role
    from shared.auth.tokens import TokenIssuer
    from shared.config import ServiceConfig

    keys = SigningKeyStore(keys_directory)
    keys.generate()
    issuer = TokenIssuer(keys, ServiceConfig.token_issuer, ttl_seconds=3600)
    token, _ = issuer.issue(
        client_id=MARKETPLACE,
        role=Role.MARKETPLACE,
        scopes=ROLE_SCOPES[Role.MARKETPLACE],
        audiences=["hirfa-payments"],
    )
    return token, keys.jwks()


def free_port() -> int:
    from tests.support import free_port as any_free_port

    return any_free_port()


@contextlib.contextmanager
def serve_jwks(jwks: dict[str, Any]) -> Iterator[str]:
    """The issuer's JWKS over HTTP, as onboarding publishes it at ``/.well-known/jwks.json``."""
    document = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def child(args: list[str], port: int, log_path: Path, **env: str) -> Iterator[Served]:
    """A server process, answering ``/healthz`` on ``port``; killed with its group afterwards."""
    from tests.support import kill_group, start_child

    with log_path.open("ab") as log:
        process = start_child(
            args, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited; see {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not answer /healthz")
            time.sleep(0.2)
        yield Served(url, process.pid)
    finally:
        kill_group(process.pid)
        process.wait()


def gunicorn(app: str, port: int, workers: int, threads: int, log_path: Path, **env: str) -> Any:
    """``app`` under gunicorn with production's configuration file."""
    return child(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", app],
        port,
        log_path,
        WEB_CONCURRENCY=str(workers),
        GUNICORN_THREADS=str(threads),
        LOG_JSON="true",
        LOG_LEVEL="INFO",
        **env,
    )


def sandbox(directory: Path) -> Any:
    """The M2T sandbox as ``make run`` serves it, telling payments of each change by one callback
    (its test switches for duplicate and stale callbacks off, as a real acquirer mostly is)."""
    port = free_port()
    return child(
        [sys.executable, "-m", "sandbox.m2t", "--port", str(port), "--threads", str(2 * USERS)],
        port,
        directory / "m2t.log",
        M2T_SANDBOX_API_KEY=M2T_API_KEY,
        M2T_SANDBOX_CALLBACK_SECRET=M2T_CALLBACK_SECRET,
        M2T_SANDBOX_DUPLICATE_CALLBACKS="false",
        M2T_SANDBOX_OUT_OF_ORDER_CALLBACKS="false",
    )


def card_token(m2t_url: str) -> str:
    """The sandbox's token for an approved card (tokens are reusable there)."""
    response = requests.post(
        f"{m2t_url}/v1/tokens",
        json={"card_number": APPROVED_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        headers={"Authorization": f"Bearer {M2T_API_KEY}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def locust(
    server: Served, scenario: str, load: dict[str, str], directory: Path, *, rate: float = 0.0
) -> dict[str, Figures]:
    """One headless locust run against ``server`` after a warm-up: figures by request name."""
    env = {**os.environ, **load, "BENCH_SCENARIO": scenario, "BENCH_RATE_PER_USER": str(rate / USERS)}
    prefix = directory / f"locust-{scenario}-{uuid.uuid4().hex[:6]}"
    for seconds, csv_prefix in ((WARM_UP_SECONDS, None), (SECONDS, prefix)):
        args = [
            str(BIN / "locust"),
            "-f",
            str(PROJECT_ROOT / "tests" / "bench_payments_load.py"),
            "--headless",
            "--users",
            str(USERS),
            "--spawn-rate",
            str(USERS),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            server.url,
            "--only-summary",
            "--loglevel",
            "ERROR",
        ]
        if csv_prefix is not None:
            args += ["--csv", str(csv_prefix)]
        cpu_before = server.cpu_seconds()
        # Exits 1 when any request failed: the failures are read from its figures instead.
        run = subprocess.run(
            args, env=env, cwd=PROJECT_ROOT, capture_output=True, check=False, timeout=seconds + 120
        )
        cpu_after = server.cpu_seconds()
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust wrote no figures: {run.stderr.decode(errors='replace')[-2000:]}")
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    figures = {}
    with open(f"{prefix}_stats.csv", newline="") as stats:
        for row in csv.DictReader(stats):
            count = int(row["Request Count"])
            figures[row["Name"]] = Figures(
                per_second=float(row["Requests/s"]),
                p50=float(row["50%"]),
                p99=float(row["99%"]),
                requests=count,
                failures=int(row["Failure Count"]),
                cpu_ms=None if cpu is None or not count else cpu * 1000 / count,
            )
    return figures


def statements_per_request(
    directory: Path, database_url: str, m2t_url: str, jwks_url: str, token: str, artisan_id: str, card: str
) -> dict[str, int]:
    """The SQL statements one ``POST /v1/payments`` and one confirmation send, counted in this
    process on the same database, keys and sandbox (tests/integration/test_payment_statements.py
    keeps them from growing)."""
    from services.payments.app import create_app
    from services.payments.config import load_config
    from tests.bench_ledger import counting_statements

    config = load_config(
        database_url=database_url,
        jwks_url=jwks_url,
        m2t_url=m2t_url,
        m2t_api_key=M2T_API_KEY,
        m2t_callback_secret=M2T_CALLBACK_SECRET,
        log_level="WARNING",
        var_dir=str(directory / "var"),
    )
    app = create_app(config)
    engine = app.extensions["hirfa"].engine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "artisan_id": artisan_id,
        "amount": 1_000,
        "currency": "MAD",
        "application_fee": 100,
        "payment_method_type": "card",
    }
    try:
        client.get("/v1/payments?limit=1", headers=headers)  # the keys fetched, the pool filled
        with counting_statements(engine) as created:
            answer = client.post("/v1/payments", json=body, headers={**headers, "Idempotency-Key": "count"})
        with counting_statements(engine) as confirmed:
            client.post(
                f"/v1/payments/{answer.json['id']}/confirm", json={"card_token": card}, headers=headers
            )
    finally:
        engine.dispose()
    return {"create": created[0], "confirm": confirmed[0]}


if __name__ == "__main__":
    main()
