"""Real HTTP around the partner sandboxes: a callback receiver and a sandbox served on a free port; and
the README's webhook signature recipe, loaded from the README itself."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from sandbox.bank.app import create_app as create_bank
from sandbox.bank.app import stop_background_work as stop_bank
from sandbox.bank.config import SandboxBankConfig
from sandbox.m2t.app import create_app as create_m2t
from sandbox.m2t.app import stop_background_work as stop_m2t
from sandbox.m2t.config import SandboxM2TConfig

WAIT_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class CallbackReceiver:
    """A real HTTP server on a free local port that records every callback it is sent.

    ``replies`` scripts the status codes of the first requests (to exercise retries); 200 after that.
    """

    def __init__(self, path: str = "/callbacks") -> None:
        self.path = path
        self.deliveries: list[Delivery] = []
        self.replies: list[int] = []
        self.requests_seen = 0
        self._condition = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._condition:
                    receiver.requests_seen += 1
                    status = receiver.replies.pop(0) if receiver.replies else 200
                    if status == 200:
                        receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                    receiver._condition.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Delivery]:
        """Block until at least ``count`` callbacks arrived; fail the test at the deadline."""
        return self.wait_for_matching(lambda delivery: True, count, timeout)

    def wait_for_matching(
        self, matches: Callable[[Delivery], bool], count: int, timeout: float = WAIT_SECONDS
    ) -> list[Delivery]:
        """Block until at least ``count`` callbacks that ``matches`` arrived; return those."""

        def matching() -> list[Delivery]:
            return [delivery for delivery in self.deliveries if matches(delivery)]

        with self._condition:
            arrived = self._condition.wait_for(lambda: len(matching()) >= count, timeout=timeout)
            assert arrived, f"expected {count} callback(s) within {timeout}s, got {len(matching())}"
            return matching()


class ServedApp:
    """A Flask app behind a real threaded werkzeug server on a free local port."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(interval)


# --- what the README tells marketplace developers -----------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_python_block(defining: str) -> str:
    """The README's ```python block that defines ``defining`` (``def <name>``): exactly one must."""
    blocks = [
        block
        for block in _PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))
        if re.search(rf"^def {re.escape(defining)}\(", block, re.MULTILINE)
    ]
    assert len(blocks) == 1, (
        f"README.md should have one ```python block defining {defining}, has {len(blocks)}"
    )
    return blocks[0]


def _load_readme_recipe(name: str) -> Callable[..., Any]:
    """The function as the README gives it to marketplace developers, run as they would run it
    (standard library only): the tests check the recipe itself, not a copy that could drift."""
    namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
    exec(compile(readme_python_block(name), f"{README}:{name}", "exec"), namespace)
    return namespace[name]


# verify_hirfa_signature(secret, header, raw_body, tolerance=300) -> bool
verify_hirfa_signature = _load_readme_recipe("verify_hirfa_signature")


@contextlib.contextmanager
def served_counterparts(m2t_key: str, bank_key: str) -> Iterator[dict[str, Any]]:
    """The M2T sandbox and the bank sandbox, each served from a thread, the bank reading M2T's
    settlement files the same day (lag 0): what accounts' reconciliation fetches from."""
    m2t = create_m2t(
        SandboxM2TConfig(
            api_key=m2t_key, callback_secret="c", callback_delay_seconds=0.01, callback_retries=1
        )
    )
    m2t_served = ServedApp(m2t)
    m2t_served.start()
    bank = create_bank(
        SandboxBankConfig(
            api_key=bank_key,
            callback_secret="b",
            callback_delay_seconds=0.01,
            callback_retries=1,
            acquirer_url=m2t_served.url,
            acquirer_api_key=m2t_key,
            settlement_lag_days=0,
        )
    )
    bank_served = ServedApp(bank)
    bank_served.start()
    try:
        yield {"m2t": m2t, "m2t_url": m2t_served.url, "bank": bank, "bank_url": bank_served.url}
    finally:
        bank_served.stop()
        m2t_served.stop()
        stop_bank(bank)
        stop_m2t(m2t)
