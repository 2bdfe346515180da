"""A worker whose shutdown overruns its grace period still exits, and says so by its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from shared.runtime import SHUTDOWN_OVERRUN_EXIT_CODE
from tests.support import ROOT

STUCK_WORKER = textwrap.dedent(
    """
    import os, signal, threading
    from shared.runtime import stop_on_signals

    stop = stop_on_signals(grace_seconds=0.5)
    print("ready", flush=True)
    stop.wait()
    threading.Event().wait()  # a wait that ignores the stop request
    """
)

PROMPT_WORKER = STUCK_WORKER.replace("threading.Event().wait()", "pass")


def run_until_sigterm(code: str) -> tuple[int, float]:
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(10), time.monotonic() - started
    finally:
        process.kill()
        process.wait()


def test_a_shutdown_that_overruns_its_grace_ends_the_process():
    code, took = run_until_sigterm(STUCK_WORKER)
    assert code == SHUTDOWN_OVERRUN_EXIT_CODE
    assert took < 5


def test_a_prompt_shutdown_exits_cleanly():
    code, took = run_until_sigterm(PROMPT_WORKER)
    assert code == 0
    assert took < 5
