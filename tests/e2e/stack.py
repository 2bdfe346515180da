"""Starts the stack the way ``make run`` does: ``hirfa stack init``, then every Procfile line as
its own process, but on free ports and fresh databases, so a test can stop and restart any one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from services.stack import wait_for_ready
from tests.support import ROOT, free_port

PROCFILE = ROOT / "deploy" / "Procfile"


def procfile_commands() -> dict[str, str]:
    commands = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


class Stack:
    def __init__(self, workdir: Path, database_urls: dict[str, str]) -> None:
        self.workdir = workdir
        self.ports = {
            name: free_port()
            for name in ("onboarding", "payments", "accounts", "broker", "bank_sandbox", "m2t_sandbox")
        }
        self.urls = {
            name: f"http://127.0.0.1:{self.ports[name]}" for name in ("onboarding", "payments", "accounts")
        }
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "VAR_DIR": str(workdir / "var"),
            "ONBOARDING_DEMO_CLIENTS": "true",
            "ONBOARDING_PORT": str(self.ports["onboarding"]),
            "PAYMENTS_PORT": str(self.ports["payments"]),
            "ACCOUNTS_PORT": str(self.ports["accounts"]),
            "BROKER_PORT": str(self.ports["broker"]),
            "BANK_SANDBOX_PORT": str(self.ports["bank_sandbox"]),
            "BANK_SANDBOX_CALLBACK_DELAY_SECONDS": "0.3",
            "M2T_SANDBOX_PORT": str(self.ports["m2t_sandbox"]),
            "M2T_SANDBOX_CALLBACK_DELAY_SECONDS": "0.2",
            "M2T_SANDBOX_WALLET_APPROVAL_DELAY_SECONDS": "0.5",
            "M2T_SANDBOX_WALLET_EXPIRY_SECONDS": "2",
            "M2T_SANDBOX_SLOW_RESPONSE_SECONDS": "3",
            "PAYMENTS_M2T_URL": f"http://127.0.0.1:{self.ports['m2t_sandbox']}",
            "PAYMENTS_PUBLIC_URL": self.urls["payments"],
            "PAYMENTS_GATEWAY_TIMEOUT_SECONDS": "1",
            "PAYMENTS_GATEWAY_RETRIES": "0",  # the timeout card must show processing (a retry would replay at once)
            "PAYMENTS_RECOVERY_AFTER_SECONDS": "3",
            "PAYMENTS_WORKER_INTERVAL_SECONDS": "0.5",
            "ACCOUNTS_PENDING_HOLD_SECONDS": "1",
            "ACCOUNTS_WORKER_INTERVAL_SECONDS": "0.5",
            "ONBOARDING_BANK_PARTNER_URL": f"http://127.0.0.1:{self.ports['bank_sandbox']}",
            "ONBOARDING_PUBLIC_URL": self.urls["onboarding"],
            "ACCOUNTS_BANK_PARTNER_URL": f"http://127.0.0.1:{self.ports['bank_sandbox']}",
            "ACCOUNTS_PUBLIC_URL": self.urls["accounts"],
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports['broker']}",
            "JWKS_URL": f"{self.urls['onboarding']}/.well-known/jwks.json",
            "CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "RELAY_MAX_BACKOFF_SECONDS": "2",
            "ONBOARDING_DATABASE_URL": database_urls["onboarding"],
            "PAYMENTS_DATABASE_URL": database_urls["payments"],
            "ACCOUNTS_DATABASE_URL": database_urls["accounts"],
        }
        self.commands = procfile_commands()
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def init(self) -> None:
        subprocess.run(
            [str(Path(sys.executable).parent / "hirfa"), "stack", "init"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, name: str, **extra_env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            ["bash", "-c", "exec " + self.commands[name]],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self.started_at[name] = time.monotonic()
        return process

    def wait_started(self, name: str, seconds: float = 8.0) -> None:
        """Give a just-started process time to finish booting (imports, signal handlers): a
        SIGTERM that lands during Python's start-up kills it before it can shut down cleanly."""
        remaining = self.started_at[name] + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        os.killpg(process.pid, sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(
                f"{name} did not stop within {timeout}s of {signal.Signals(sig).name}"
            ) from None

    def stop_all(self) -> dict[str, int | None]:
        """Stop every process, dependants first, even when one of them will not stop cleanly (it
        is killed and reported once the others are down, so no process outlives the stack)."""
        codes: dict[str, int | None] = {}
        unclean: list[str] = []
        # Reverse Procfile order: what depends on the broker (relays, consumers) stops while the
        # broker still answers, so none of them hangs on a dead connection; the broker goes last.
        in_order = [name for name in reversed(self.commands) if name in self.processes]
        for name in in_order + [name for name in self.processes if name not in in_order]:
            try:
                codes[name] = self.stop(name)
            except AssertionError as error:
                codes[name] = None
                unclean.append(str(error))
        if unclean:
            raise AssertionError("; ".join(unclean))
        return codes

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, timeout: float = 60) -> float:
        started = time.monotonic()
        pending = wait_for_ready(self.urls, timeout)
        if pending:
            raise AssertionError(f"not ready within {timeout}s: {pending}")
        return time.monotonic() - started

    def token(self, client_id: str = "cli_demo_marketplace", secret: str = "demo-marketplace-secret") -> str:
        response = requests.post(
            f"{self.urls['onboarding']}/v1/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["access_token"]
