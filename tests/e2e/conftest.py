"""The e2e stack: every Procfile process, started once per test module."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack


@pytest.fixture(scope="module")
def stack(databases, tmp_path_factory):
    urls = {name: databases.create(f"e2e_{name}") for name in ("onboarding", "payments", "accounts")}
    stack = Stack(tmp_path_factory.mktemp("stack"), urls)
    stack.init()
    stack.start_all()
    try:
        stack.wait_ready(60)
        yield stack
    finally:
        codes = stack.stop_all()
        print({name: stack.log(name)[-2000:] for name in codes if codes[name] not in (0, None, -15)})
