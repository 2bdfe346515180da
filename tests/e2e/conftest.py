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
