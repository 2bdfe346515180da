"""A test run that is itself interrupted (Ctrl-C, a CI timeout, a killed pytest) leaves no process
of its stack behind."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.support import ROOT, kill_group, start_child

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process groups from /proc"),
]

# A test run in miniature: it starts a few of the stack's processes (a gunicorn API with its
# workers among them), says which, and waits to be interrupted.
TEST_RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from tests.e2e.stack import Stack

    workdir = Path(sys.argv[1])
    stack = Stack(workdir, {name: f"sqlite:///{workdir}/{name}.sqlite3" for name in ("onboarding", "payments", "accounts")})
    for name in ("broker", "bank_sandbox", "payments", "payments_relay"):
        stack.start(name)
    print(json.dumps({name: process.pid for name, process in stack.processes.items()}), flush=True)
    while True:
        time.sleep(1)
    """
)


def live_processes_in_groups(groups: set[int]) -> list[str]:
    """Processes (not zombies) whose process group is one of ``groups``, as ``pid command``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing paren.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) in groups and state != "Z":
            found.append(f"{entry.name} {stat[stat.index('(') : stat.rindex(')') + 1]}")
    return found


def read_line(process: subprocess.Popen, timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the interrupted run did not report its processes in time"
    return process.stdout.readline().decode()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_an_interrupted_run_leaves_no_process_behind(sig, tmp_path):
    run = start_child(
        [sys.executable, "-c", TEST_RUN, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        groups = set(json.loads(read_line(run, 60)).values())
        assert len(groups) == 4
        # Let gunicorn fork its workers (the grandchildren must go too).
        time.sleep(3)
        assert live_processes_in_groups(groups), "the stack's processes should be running"

        os.kill(run.pid, sig)
        run.wait(10)

        deadline = time.monotonic() + 10
        while (left := live_processes_in_groups(groups)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"still running after the run was interrupted by {sig.name}: {left}"
    finally:
        for group in groups if "groups" in locals() else ():
            kill_group(group)
        kill_group(run.pid)
        run.wait()


def test_the_stack_stops_what_others_depend_on_last(tmp_path):
    stack = Stack(tmp_path, dict.fromkeys(("onboarding", "payments", "accounts"), "sqlite://"))
    stack.processes = dict.fromkeys(stack.commands)  # the running processes, by name only
    order = stack.stop_order()
    assert order[-2:] == [["bank_sandbox", "m2t_sandbox", "sms_sandbox"], ["broker"]]
    assert {"payments", "payments_relay", "accounts_consumer", "payments_worker"} <= set(order[0])
