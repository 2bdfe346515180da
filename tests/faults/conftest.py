"""One stack for the whole fault matrix, on a PostgreSQL server of the suite's own (its own port and
data directory: the database fault restarts it), with the partners' callbacks recorded on their way
in. The per-fault table is printed at the end of the run."""

from __future__ import annotations

import uuid

import pytest

from tests.faults.harness import REPORTS, CallbackTap, FaultStack, report_table
from tests.support import POSTGRES_BIN, PostgresServer

# Not started: the console (a web app for people) and the one-shot readiness wait.
LEFT_OUT = ("console", "ready")


@pytest.fixture(scope="module")
def own_postgres():
    if not PostgresServer.available():
        pytest.fail(
            f"the fault suite runs its own PostgreSQL: no initdb/pg_ctl in {POSTGRES_BIN} (TEST_POSTGRES_BIN)"
        )
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_stack(own_postgres, tmp_path_factory):
    urls = {
        name: own_postgres.create_database(f"faults_{name}_{uuid.uuid4().hex[:8]}")
        for name in ("onboarding", "payments", "accounts")
    }
    stack = FaultStack(tmp_path_factory.mktemp("fault-stack"), urls)
    taps = {"payments": CallbackTap(), "accounts": CallbackTap()}
    for name, tap in taps.items():
        tap.start(stack.urls[name])
        # Where the gateway and the bank send their callbacks: through the tap.
        stack.env[f"{name.upper()}_PUBLIC_URL"] = tap.url
    # A payout whose callback went missing is asked about after 5 s rather than a minute.
    stack.env["ACCOUNTS_PAYOUT_POLL_AFTER_SECONDS"] = "5"
    # A bank that does not answer is given up on after 2 s (the payout waits for the worker).
    stack.env["ACCOUNTS_HTTP_TIMEOUT_SECONDS"] = "2"
    stack.database_urls = urls
    stack.taps = taps
    stack.init()
    for name in stack.commands:
        if name not in LEFT_OUT:
            stack.start(name)
    try:
        stack.wait_services_ready(90)
        yield stack
    finally:
        try:
            stack.stop_all()
        finally:
            for tap in taps.values():
                tap.stop()


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.section("fault matrix")
        for line in report_table(REPORTS):
            terminalreporter.write_line(line)
