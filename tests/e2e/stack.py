"""Starts the stack the way ``make run`` does: ``hirfa stack init``, then every Procfile line as
its own process, but on free ports and fresh databases, so a test can stop and restart any one.

Stopping goes in reverse order of dependency: the APIs, workers, consumers and relays first, then
the sandboxes, the broker last (a relay stopped after its broker would wait on it). Every process
runs in its own process group, killed if it outstays its stop, and killed anyway if the test run
itself is interrupted or killed (``tests.support.start_child``).
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
from shared.config import PROBE_PORTS, SANDBOX_SMS_API_KEY
from tests.support import ROOT, free_port, kill_group, start_child

PROCFILE = ROOT / "deploy" / "Procfile"

# What the others depend on, stopped after them in this order (each tier at once): everything
# else (APIs, workers, consumers, relays) goes first.
LAST_TO_STOP: tuple[frozenset[str], ...] = (
    frozenset({"bank_sandbox", "m2t_sandbox", "sms_sandbox"}),
    frozenset({"broker"}),
)


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
            for name in (
                "onboarding",
                "payments",
                "accounts",
                "console",
                "broker",
                "bank_sandbox",
                "m2t_sandbox",
                "sms_sandbox",
            )
        }
        self.urls = {
            name: f"http://127.0.0.1:{self.ports[name]}" for name in ("onboarding", "payments", "accounts")
        }
        # Each relay's, consumer's and worker's /metrics, /healthz and /readyz.
        self.probe_ports = {name: free_port() for name in PROBE_PORTS}
        self.probe_urls = {name: f"http://127.0.0.1:{port}" for name, port in self.probe_ports.items()}
        # The back-office console (a web app for people, not one of the three APIs).
        self.console_url = f"http://127.0.0.1:{self.ports['console']}"
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "VAR_DIR": str(workdir / "var"),
            "ONBOARDING_DEMO_CLIENTS": "true",
            "ONBOARDING_DEMO_STAFF": "true",
            "ONBOARDING_PORT": str(self.ports["onboarding"]),
            "PAYMENTS_PORT": str(self.ports["payments"]),
            "ACCOUNTS_PORT": str(self.ports["accounts"]),
            "CONSOLE_PORT": str(self.ports["console"]),
            "CONSOLE_LOG_JSON": "false",
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
            # SMS go through the SMS-gateway sandbox, as with `make run` (tests read them there).
            "SMS_SANDBOX_PORT": str(self.ports["sms_sandbox"]),
            "SMS_SANDBOX_RECEIPT_DELAY_SECONDS": "0.2",
            "SMS_SANDBOX_LATE_RECEIPT_SECONDS": "2",
            "ONBOARDING_SMS_BACKEND": "http",
            "ONBOARDING_SMS_PROVIDER_URL": f"http://127.0.0.1:{self.ports['sms_sandbox']}/v1/messages",
            "ONBOARDING_SMS_PROVIDER_API_KEY": SANDBOX_SMS_API_KEY,
            "ONBOARDING_NOTIFICATION_RETRY_SECONDS": "0.5",
            "ONBOARDING_PUBLIC_URL": self.urls["onboarding"],
            "ACCOUNTS_BANK_PARTNER_URL": f"http://127.0.0.1:{self.ports['bank_sandbox']}",
            "ACCOUNTS_PUBLIC_URL": self.urls["accounts"],
            # The acquirer's settlement files, read by accounts' reconciliation (as with `make run`).
            "ACCOUNTS_M2T_URL": f"http://127.0.0.1:{self.ports['m2t_sandbox']}",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports['broker']}",
            "JWKS_URL": f"{self.urls['onboarding']}/.well-known/jwks.json",
            "CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "RELAY_MAX_BACKOFF_SECONDS": "2",
            # A broker that lost what it acknowledged is noticed within seconds, and a payment
            # missing from the ledger 20 s after it succeeded is a case (test_broker_loss_path.py).
            "RELAY_LOSS_CHECK_SECONDS": "2",
            "CONSUMER_LOSS_CHECK_SECONDS": "1",
            "ACCOUNTS_COMPLETENESS_CHECK_SECONDS": "2",
            "ACCOUNTS_COMPLETENESS_GRACE_SECONDS": "20",
            "ONBOARDING_DATABASE_URL": database_urls["onboarding"],
            "PAYMENTS_DATABASE_URL": database_urls["payments"],
            "ACCOUNTS_DATABASE_URL": database_urls["accounts"],
            **{f"{name.upper()}_PROBE_PORT": str(port) for name, port in self.probe_ports.items()},
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
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy
            process = start_child(
                ["bash", "-c", "exec " + self.commands[name]],
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
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
        """Signal ``name`` and wait for it; its leftovers are killed. Raises when it did not stop
        within ``timeout`` (it is killed first)."""
        codes, unclean = self.stop_many([name], sig, timeout)
        if unclean:
            raise AssertionError(unclean[0])
        return codes[name]

    def stop_many(
        self, names: list[str], sig: int = signal.SIGTERM, timeout: float = 20
    ) -> tuple[dict[str, int | None], list[str]]:
        """Signal every one of ``names`` at once, then wait for each, all within ``timeout``.

        Returns each exit code (None for one that had to be killed) and a line per unclean stop;
        never raises, and leaves no process of these groups behind.
        """
        processes = {name: process for name in names if (process := self.processes.pop(name, None))}
        codes: dict[str, int | None] = {}
        unclean: list[str] = []
        for process in processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name, process in processes.items():
            try:
                codes[name] = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
                unclean.append(f"{name} did not stop within {timeout}s of {signal.Signals(sig).name}")
            kill_group(process.pid)  # the leader's leftovers, or the leader itself when it hung
            process.wait()
        return codes, unclean

    def stop_all(self, timeout: float = 20) -> dict[str, int | None]:
        """Stop every process in reverse order of dependency, even when some will not stop
        cleanly: those are killed, and reported once everything is down."""
        codes: dict[str, int | None] = {}
        unclean: list[str] = []
        for tier in self.stop_order():
            tier_codes, tier_unclean = self.stop_many(tier, timeout=timeout)
            codes.update(tier_codes)
            unclean.extend(tier_unclean)
        if unclean:
            raise AssertionError("; ".join(unclean))
        return codes

    def stop_order(self) -> list[list[str]]:
        """The running processes, tier by tier, in the order ``stop_all`` stops them."""
        later = frozenset().union(*LAST_TO_STOP)
        tiers = [[name for name in self.processes if name not in later]]
        tiers += [[name for name in self.processes if name in tier] for tier in LAST_TO_STOP]
        return [tier for tier in tiers if tier]

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, timeout: float = 60) -> float:
        started = time.monotonic()
        pending = wait_for_ready({**self.urls, "console": self.console_url}, timeout)
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
