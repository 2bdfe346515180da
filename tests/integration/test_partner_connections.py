"""Calls to a partner (the M2T gateway, a bank) reuse open connections: a call does not pay for a
new TCP connection, and threads calling at once keep theirs open for the next calls too.

Against a real HTTP/1.1 server on a free port that counts the connections it accepts.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.payments.adapters.gateways.m2t.client import M2TClient
from shared.partners import PartnerHttpClient


class _Counting(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, together: int = 1) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.lock = threading.Lock()
        # Each answer waits until ``together`` requests are in hand: that many calls in flight at once.
        self.together = threading.Barrier(together, timeout=5)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self) -> None:
        super().setup()
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.connections += 1  # type: ignore[attr-defined]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.together.wait()  # type: ignore[attr-defined]
        body = json.dumps({"id": "m2t_tx_1", "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *_args) -> None:
        pass


@contextlib.contextmanager
def serving(together: int = 1) -> Iterator[_Counting]:
    served = _Counting(together)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()


@pytest.fixture
def server() -> Iterator[_Counting]:
    with serving() as served:
        yield served


def url(server: _Counting) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_calls_one_after_another_use_one_connection(server):
    client = M2TClient(url(server), api_key="k", timeout=5)
    for number in range(20):
        client.get_transaction(f"m2t_tx_{number}")
    assert server.connections == 1, server.connections


def test_sixteen_threads_calling_at_once_keep_their_connections_for_the_next_calls():
    with serving(together=16) as server, ThreadPoolExecutor(16) as pool:
        client = PartnerHttpClient(url(server), api_key="k", timeout=10)

        def calls(_):
            for _ in range(10):
                client.call("POST", "/v1/transactions", {"amount": 100}, idempotent=False)

        list(pool.map(calls, range(16)))
    # One connection per thread at most, each kept for its ten calls (requests' default pool would
    # keep 10 and close the others' after every call).
    assert server.connections <= 16, server.connections
