"""The e2e stack: every Procfile process, started once per test module."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.stack import Stack


def assert_ledger_sound(stack: Stack) -> None:
    response = requests.get(
        f"{stack.urls['accounts']}/v1/ledger/integrity",
        headers={"Authorization": f"Bearer {stack.token('cli_demo_operator', 'demo-operator-secret')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["ok"], report["differences"]) == (True, []), report


@pytest.fixture(scope="module")
def stack(databases, tmp_path_factory):
    urls = {name: databases.create(f"e2e_{name}") for name in ("onboarding", "payments", "accounts")}
    stack = Stack(tmp_path_factory.mktemp("stack"), urls)
    stack.init()
    stack.start_all()
    try:
        stack.wait_ready(60)
        yield stack
        # Whatever the module's tests did to the running stack, the ledger they leave is sound.
        assert_ledger_sound(stack)
    finally:
        codes = stack.stop_all()
        print({name: stack.log(name)[-2000:] for name in codes if codes[name] not in (0, None, -15)})


# What a failed e2e test shows besides its assertion: each process's last warnings and errors,
# without the client library's reconnection chatter, so a failure in CI can be read from its log.
NOISE = (
    "Connection failed",
    "Connection lost",
    "ECONNREFUSED",
    "Bootstrap",
    "No node available",
    "Metadata refresh",
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if not report.failed or not isinstance(stack, Stack):
        return
    for name in sorted(stack.commands):
        lines = [
            line
            for line in stack.log(name).splitlines()
            if ('"level": "warning"' in line or '"level": "error"' in line)
            and not any(n in line for n in NOISE)
        ]
        if lines:
            report.sections.append((f"{name} warnings and errors (last 25)", "\n".join(lines[-25:])))
