"""The fault suite's tools: a stack on a PostgreSQL of the suite's own, a tap that records the
partners' signed callbacks, a burst of money driven through the public APIs, and the checks that
nothing was lost, created twice or left stuck once a fault has healed.

Everything goes through the APIs a marketplace, an operator or a partner uses; the database is only
touched to hold a lock for a moment, so that a process can be killed at a chosen point of its work
(``HeldLock``).
"""

from __future__ import annotations

import collections
import dataclasses
import http.server
import itertools
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from services.stack import wait_for_ready
from shared.db import make_engine
from tests.e2e.stack import Stack
from tests.support import wait_until

MARKETPLACE = ("cli_demo_marketplace", "demo-marketplace-secret")
OPERATOR = ("cli_demo_operator", "demo-operator-secret")
# Answers a client retries with the same request (and key): the service is away for a moment.
RETRIED_STATUSES = frozenset({502, 503, 504})
SETTLE_TIMEOUT_SECONDS = 90.0
# Every fault's line, printed as a table at the end of the run (``conftest.pytest_terminal_summary``).
REPORTS: list[FaultReport] = []


# -- the stack -----------------------------------------------------------------------------------


class FaultStack(Stack):
    """The e2e stack, each process connecting to PostgreSQL under its own application name (so the
    suite can see which process waits on a lock), and the partners' callbacks through ``taps``."""

    database_urls: dict[str, str]
    taps: dict[str, CallbackTap]

    def start(self, name: str, **extra_env: str):  # type: ignore[override]
        return super().start(name, PGAPPNAME=name, **extra_env)

    def wait_services_ready(self, timeout: float = 60) -> float:
        """Wait for the three APIs' /readyz (the broker and their databases reachable)."""
        started = time.monotonic()
        pending = wait_for_ready(self.urls, timeout)
        assert not pending, f"not ready within {timeout}s: {pending}"
        return time.monotonic() - started

    def pids(self, name: str) -> list[int]:
        """The process ``name`` and its children (a gunicorn master and its workers)."""
        leader = self.processes[name].pid
        children_file = Path(f"/proc/{leader}/task/{leader}/children")
        children = [int(pid) for pid in children_file.read_text().split()] if children_file.exists() else []
        return [leader, *children]

    def api_worker(self, name: str) -> int:
        """The pid of the one gunicorn worker serving the API ``name``."""
        workers = self.pids(name)[1:]
        assert len(workers) == 1, f"expected one worker under {name}: {workers}"
        return workers[0]

    def suspend(self, name: str) -> None:
        """Freeze ``name``: its port still takes connections, nothing answers (a hung partner)."""
        for pid in self.pids(name):
            _signal(pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        for pid in self.pids(name):
            _signal(pid, signal.SIGCONT)

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and everything in its process group, and wait for it."""
        self.stop(name, signal.SIGKILL, timeout=10)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclasses.dataclass(frozen=True)
class Capture:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackTap:
    """A reverse proxy in front of one service's public URL: the partners' callbacks pass through
    unchanged and are recorded, signature header and raw body, for the suite to replay."""

    FORWARDED = ("Content-Type", "User-Agent", "M2T-Signature", "Bank-Signature")

    def __init__(self) -> None:
        self.target = ""
        self.captures: list[Capture] = []
        self._lock = threading.Lock()
        tap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name: self.headers[name] for name in tap.FORWARDED if name in self.headers}
                with tap._lock:
                    tap.captures.append(Capture(time.monotonic(), self.path, headers, body))
                try:
                    answer = requests.post(tap.target + self.path, data=body, headers=headers, timeout=15)
                    status, content = answer.status_code, answer.content
                except requests.RequestException:
                    status, content = 502, b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, target: str) -> None:
        self.target = target
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def since(self, moment: float) -> list[Capture]:
        with self._lock:
            return [capture for capture in self.captures if capture.at >= moment]


class HeldLock:
    """A table lock held by the suite in one service's database, to stop a process at a known point
    of its work (waiting on the lock, its transaction open) before killing it there."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url, poolclass=sa.pool.NullPool)

    @contextmanager
    def holding(self, table: str, mode: str) -> Iterator[None]:
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
            try:
                yield
            finally:
                connection.rollback()

    def waiting(self, application_name: str) -> int:
        """How many connections of ``application_name`` wait on a lock right now."""
        with self.engine.connect() as connection:
            return connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND wait_event_type = 'Lock' AND datname = current_database()"
                ),
                {"name": application_name},
            ).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()


def stop_while_waiting(
    lock: HeldLock,
    table: str,
    mode: str,
    application_name: str,
    kill: Callable[[], None],
    *,
    waiters: int = 1,
) -> None:
    """Hold ``table`` locked until ``waiters`` connections of ``application_name`` wait on it, kill
    the process there (its transaction open), then release the lock. Tries again when nothing came
    to wait (no work was due while the lock was held)."""
    for _ in range(20):
        with lock.holding(table, mode):
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if lock.waiting(application_name) >= waiters:
                    kill()
                    return
                time.sleep(0.02)
        time.sleep(0.3)
    raise AssertionError(f"{application_name} never came to wait on {table}")


# -- talking to the APIs -------------------------------------------------------------------------


@dataclasses.dataclass
class Answers:
    """Every HTTP answer the suite received during one fault, and the connections that failed."""

    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    server_errors: list[str] = dataclasses.field(default_factory=list)  # 5xx other than 503
    unexpected: list[str] = dataclasses.field(default_factory=list)  # refusals a burst never expects
    connection_errors: int = 0
    in_progress_after: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def record(self, what: str, response: requests.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code not in RETRIED_STATUSES:
                self.server_errors.append(f"{what} -> {response.status_code} {response.text[:300]}")
            if response.status_code == 409 and _code(response) == "idempotency_key_in_progress":
                self.in_progress_after.append((time.monotonic(), what))

    def record_unexpected(self, what: str, response: requests.Response) -> None:
        with self.lock:
            self.unexpected.append(f"{what} -> {response.status_code} {response.text[:300]}")

    def record_trouble(self, what: str) -> None:
        """Something a client could not get done (no answer in time, a read that failed)."""
        with self.lock:
            self.unexpected.append(what)

    def record_connection_error(self) -> None:
        with self.lock:
            self.connection_errors += 1

    @property
    def count_500(self) -> int:
        return len(self.server_errors)

    @property
    def count_503(self) -> int:
        return self.statuses[503]


def _code(response: requests.Response) -> str | None:
    try:
        return response.json().get("code")
    except ValueError:
        return None


class Api:
    """One API client (a marketplace, an operator) of the running stack. ``send`` retries what a
    careful client retries (a connection lost, 502/503/504, a key still in progress), with the same
    Idempotency-Key, until ``retry_for`` seconds have passed."""

    def __init__(self, stack: Stack, credentials: tuple[str, str], answers: Answers) -> None:
        self.stack = stack
        self.credentials = credentials
        self.answers = answers
        self.headers = {"Authorization": f"Bearer {stack.token(*credentials)}"}

    def send(
        self,
        method: str,
        service: str,
        path: str,
        *,
        key: str | None = None,
        retry_for: float = 90.0,
        timeout: float = 15.0,
        **kwargs: Any,
    ) -> requests.Response | None:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        what = f"{method} {service}{path}"
        deadline = time.monotonic() + retry_for
        pause = 0.2
        while True:
            try:
                response = requests.request(
                    method, f"{self.stack.urls[service]}{path}", headers=headers, timeout=timeout, **kwargs
                )
            except requests.RequestException:
                self.answers.record_connection_error()
                response = None
            else:
                self.answers.record(what, response)
                retried = response.status_code in RETRIED_STATUSES or (
                    response.status_code == 409 and _code(response) == "idempotency_key_in_progress"
                )
                if not retried:
                    return response
            if time.monotonic() >= deadline:
                return response
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)

    def get_json(self, service: str, path: str, **params: Any) -> Any:
        response = self.send("GET", service, path, params=params)
        assert response is not None and response.status_code == 200, (path, response and response.text)
        return response.json()

    def all_pages(self, service: str, path: str, **params: Any) -> list[dict]:
        items: list[dict] = []
        cursor = None
        while True:
            page = self.get_json(
                service, path, limit=100, **params, **({"starting_after": cursor} if cursor else {})
            )
            items.extend(page["data"])
            if not page["has_more"]:
                return items
            cursor = page["next_cursor"]


# -- the money --------------------------------------------------------------------------------------


@dataclasses.dataclass
class PaymentMade:
    id: str
    artisan_id: str
    amount: int
    fee: int
    confirmed_status: str | None = None  # what the confirm answered, if it answered

    @property
    def net(self) -> int:
        return self.amount - self.fee


@dataclasses.dataclass
class PayoutMade:
    id: str
    artisan_id: str
    amount: int
    answered_status: str  # what the request answered: paid already, or on its way


class Burst:
    """Buyers paying the fault's artisans through the marketplace (create, then confirm with a card
    token, each with its own Idempotency-Key), and an operator paying out what became available,
    from background threads until stopped. Every answer goes to ``answers``."""

    def __init__(
        self,
        marketplace: Api,
        operator: Api,
        artisans: list[str],
        card_token: str,
        *,
        payers: int = 3,
        payout_every: float = 0.3,
    ) -> None:
        self.marketplace = marketplace
        self.operator = operator
        self.artisans = artisans
        self.card_token = card_token
        self.payout_every = payout_every
        self.payments: list[PaymentMade] = []
        self.payouts: list[PayoutMade] = []
        self.refused: list[str] = []  # business refusals (the cap): nothing was created
        self.stopped_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._turns = itertools.cycle(artisans)
        self._threads = [threading.Thread(target=self._pay, daemon=True) for _ in range(payers)]
        self._threads.append(threading.Thread(target=self._pay_out, daemon=True))
        self.errors: list[BaseException] = []

    def __enter__(self) -> Burst:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(180)
        self.stopped_at = time.monotonic()
        assert not any(thread.is_alive() for thread in self._threads), "a burst thread never finished"
        assert not self.errors, self.errors

    def wait_for_payments(self, count: int, timeout: float = 60) -> None:
        start = len(self.payments)
        wait_until(lambda: len(self.payments) >= start + count, timeout, message=f"{count} more payments")

    def run_for(self, seconds: float) -> None:
        time.sleep(seconds)

    def _next_artisan(self) -> str:
        with self._lock:
            return next(self._turns)

    def _pay(self) -> None:
        try:
            while not self._stop.is_set():
                self._one_payment()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def _one_payment(self) -> None:
        artisan_id = self._next_artisan()
        amount = random.randint(100, 400)  # small: the artisans stay well under their tier-1 cap
        fee = amount // 10
        body = {
            "artisan_id": artisan_id,
            "amount": amount,
            "currency": "MAD",
            "application_fee": fee,
            "payment_method_type": "card",
        }
        created = self.marketplace.send("POST", "payments", "/v1/payments", key=str(uuid.uuid4()), json=body)
        if created is None or created.status_code != 201:
            self._refused("create", created)
            return
        payment = PaymentMade(created.json()["id"], artisan_id, amount, fee)
        with self._lock:
            self.payments.append(payment)
        confirmed = self.marketplace.send(
            "POST",
            "payments",
            f"/v1/payments/{payment.id}/confirm",
            key=str(uuid.uuid4()),
            json={"card_token": self.card_token},
        )
        if confirmed is None or confirmed.status_code != 200:
            self._refused("confirm", confirmed)
            return
        payment.confirmed_status = confirmed.json()["status"]

    def _refused(self, step: str, response: requests.Response | None) -> None:
        if response is not None and response.status_code == 409 and _code(response) == "tier_limit_exceeded":
            with self._lock:
                self.refused.append(step)
            return
        if response is None:
            self.marketplace.answers.record_trouble(f"{step}: no answer before the client gave up")
        else:
            self.marketplace.answers.record_unexpected(step, response)

    def _pay_out(self) -> None:
        try:
            for artisan_id in itertools.cycle(self.artisans):
                if self._stop.wait(self.payout_every):
                    return
                balance = self.operator.send("GET", "accounts", f"/v1/artisans/{artisan_id}/balance")
                if balance is None or balance.status_code != 200:
                    self.operator.answers.record_trouble(f"balance: {balance and balance.text}")
                    continue
                available = balance.json()["available"]["amount"]
                if available < 200:
                    continue
                amount = available // 2
                payout = self.operator.send(
                    "POST",
                    "accounts",
                    "/v1/payouts",
                    key=str(uuid.uuid4()),
                    json={"artisan_id": artisan_id, "amount": amount, "currency": "MAD"},
                )
                if payout is not None and payout.status_code in (201, 202):
                    with self._lock:
                        self.payouts.append(
                            PayoutMade(payout.json()["id"], artisan_id, amount, payout.json()["status"])
                        )
                elif payout is None:
                    self.operator.answers.record_trouble("payout: no answer before the client gave up")
                else:
                    self.operator.answers.record_unexpected("payout", payout)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)


# -- the checks ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Settlement:
    """The state of one fault's money as the APIs tell it, and what is wrong with it."""

    payments: int = 0
    succeeded: int = 0
    payouts: int = 0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    ledger_exactly_once: bool = False
    integrity_ok: bool = False
    balances_match: bool = False
    stuck: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def settled(self) -> bool:
        return not self.problems


def inspect(operator: Api, marketplace: Api, burst: Burst) -> Settlement:
    """Read everything back and say what does not hold (yet)."""
    found = Settlement(payments=len(burst.payments), payouts=len(burst.payouts))
    mine = {payment.id: payment for payment in burst.payments}
    statuses: dict[str, str] = {}
    for artisan_id in burst.artisans:
        for payment in marketplace.all_pages("payments", "/v1/payments", artisan_id=artisan_id):
            statuses[payment["id"]] = payment["status"]
    strangers = set(statuses) - set(mine)
    if strangers:
        found.problems.append(f"payments nobody asked for: {sorted(strangers)[:5]}")
    succeeded = {pid for pid, status in statuses.items() if status == "succeeded"}
    found.succeeded = len(succeeded)
    found.statuses = collections.Counter(statuses.values())
    answered_succeeded = {p.id for p in burst.payments if p.confirmed_status == "succeeded"}
    if answered_succeeded - succeeded:
        found.problems.append(f"answered succeeded, now not: {sorted(answered_succeeded - succeeded)[:5]}")
    processing = sorted(pid for pid, status in statuses.items() if status == "processing")
    if processing:
        found.stuck.append(f"{len(processing)} payments processing")

    posted: collections.Counter = collections.Counter()
    for artisan_id in burst.artisans:
        for entry in operator.all_pages(
            "accounts", "/v1/journal-entries", artisan_id=artisan_id, cause="payment"
        ):
            posted[entry["cause_id"]] += 1
    twice = sorted(pid for pid, count in posted.items() if count > 1)
    missing = sorted(succeeded - set(posted))
    extra = sorted(set(posted) - succeeded)
    found.ledger_exactly_once = not (twice or missing or extra)
    for label, ids in (
        ("posted twice", twice),
        ("missing from the ledger", missing),
        ("posted, not succeeded", extra),
    ):
        if ids:
            found.problems.append(f"{len(ids)} {label}: {ids[:5]}")

    integrity = operator.get_json("accounts", "/v1/ledger/integrity")
    found.integrity_ok = integrity["ok"] is True
    if not found.integrity_ok:
        found.problems.append(f"integrity: {integrity['differences'][:3]}")

    payout_status: dict[str, str] = {}
    for artisan_id in burst.artisans:
        for payout in operator.all_pages("accounts", "/v1/payouts", artisan_id=artisan_id):
            payout_status[payout["id"]] = payout["status"]
    unsettled = sorted(pid for pid, status in payout_status.items() if status in ("pending", "in_transit"))
    if unsettled:
        found.stuck.append(f"{len(unsettled)} payouts pending or in transit")
    unknown_payouts = set(payout_status) - {payout.id for payout in burst.payouts}
    if unknown_payouts:
        found.problems.append(f"payouts nobody asked for: {sorted(unknown_payouts)[:5]}")

    found.balances_match = True
    for artisan_id in burst.artisans:
        balance = operator.get_json("accounts", f"/v1/artisans/{artisan_id}/balance")
        held = balance["pending"]["amount"] + balance["available"]["amount"]
        earned = sum(mine[pid].net for pid in succeeded if mine[pid].artisan_id == artisan_id)
        paid_out = sum(
            payout.amount
            for payout in burst.payouts
            if payout.artisan_id == artisan_id and payout_status.get(payout.id) not in ("failed", "returned")
        )
        if held != earned - paid_out:
            found.balances_match = False
            found.problems.append(f"artisan {artisan_id} holds {held}, expected {earned} - {paid_out}")

    waiting = []
    for artisan_id in burst.artisans:
        waiting += operator.all_pages("accounts", "/v1/ledger/cases", artisan_id=artisan_id, status="waiting")
    if waiting:
        found.stuck.append(f"{len(waiting)} parked money events")
    found.problems += found.stuck
    return found


def settle(
    operator: Api, marketplace: Api, burst: Burst, timeout: float = SETTLE_TIMEOUT_SECONDS
) -> tuple[Settlement, float]:
    """Wait until the fault's money has settled; return the last reading and how long it took."""
    started = time.monotonic()
    while True:
        found = inspect(operator, marketplace, burst)
        elapsed = time.monotonic() - started
        if found.settled or elapsed > timeout:
            return found, elapsed
        time.sleep(1.0)


# -- the report ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class FaultReport:
    number: int
    fault: str
    settlement: Settlement
    answers: Answers
    settle_seconds: float  # from the fault healing (the burst going on) to every check holding
    drain_seconds: float  # from the burst's last answer to every check holding
    notes: list[str] = dataclasses.field(default_factory=list)  # what went wrong besides the checks
    evidence: str = ""  # what shows the fault hit the burst where it was meant to

    @property
    def passed(self) -> bool:
        return (
            self.settlement.settled
            and not self.answers.server_errors
            and not self.answers.unexpected
            and not self.notes
        )


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def report_table(reports: list[FaultReport]) -> list[str]:
    """One line per fault: payments succeeded of those created, payouts made, the checks, the 500s
    and 503s answered, and the seconds until every check held, from the healing and from the
    burst's end; below it, what shows the fault hit, and anything wrong."""
    header = (
        f"{'#':>2} {'fault':<48} {'succeeded':>9} {'payouts':>7} {'ledger 1x':>9} {'integrity':>9} "
        f"{'balances':>8} {'stuck':>5} {'500s':>4} {'503s':>4} {'settle s':>8} {'drain s':>7}  result"
    )
    lines = [header, "-" * len(header)]
    for report in sorted(reports, key=lambda r: r.number):
        s, a = report.settlement, report.answers
        lines.append(
            f"{report.number:>2} {report.fault:<48} {f'{s.succeeded}/{s.payments}':>9} {s.payouts:>7} "
            f"{_yes(s.ledger_exactly_once):>9} {_yes(s.integrity_ok):>9} {_yes(s.balances_match):>8} "
            f"{len(s.stuck):>5} {a.count_500:>4} {a.count_503:>4} {report.settle_seconds:>8.1f} "
            f"{report.drain_seconds:>7.1f}  "
            f"{'ok' if report.passed else 'FAILED'}"
        )
        if report.evidence:
            lines.append(f"{'':>6}{report.evidence}")
        others = {status: n for status, n in s.statuses.items() if status != "succeeded"}
        if others:
            lines.append(f"{'':>6}payments not succeeded, by status: {others}")
        for problem in [*s.problems, *a.server_errors[:3], *a.unexpected[:3], *report.notes]:
            lines.append(f"{'':>6}{problem}")
    return lines
