"""The gateway contract's harnesses: one per ``PaymentGateway`` implementation.

A harness gives the contract tests the gateway and what differs between implementations: how a card
token is made, how the buyer answers 3-D Secure, how to wait for a wallet's answer or its expiry, for
a refund to settle, how disputes are opened and closed, and where the signed callbacks come from.

- ``fake``: ``FakeGateway``; everything is a test hook, instant; callbacks are the events the fake
  recorded, signed by it.
- ``m2t``: ``M2TGateway`` over HTTP against the real M2T sandbox app, served from a thread on a free
  port with short delays; the buyer's browser is ``requests`` on the 3-D Secure page; callbacks are
  the sandbox's real deliveries, caught by a local HTTP receiver.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.m2t.app import create_app as create_m2t_sandbox
from sandbox.m2t.app import stop_background_work
from sandbox.m2t.config import SandboxM2TConfig
from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.gateways.m2t import SIGNATURE_HEADER as M2T_SIGNATURE_HEADER
from services.payments.adapters.gateways.m2t import M2TGateway
from services.payments.domain.gateway import (
    GatewayDispute,
    GatewayRefund,
    GatewayTransaction,
    PaymentGateway,
    RefundStatus,
    TokeniseRequest,
    TransactionStatus,
)
from shared.signatures import sign
from tests.support import wait_until

M2T_API_KEY = "contract-m2t-api-key"
M2T_CALLBACK_SECRET = "contract-m2t-callback-secret"
FAKE_CALLBACK_SECRET = "contract-fake-callback-secret"

# The sandbox's timing, short enough for a suite of a few seconds.
CALLBACK_DELAY = 0.1
WALLET_APPROVAL_DELAY = 0.3
WALLET_EXPIRY = 1  # whole seconds
SLOW_RESPONSE = 2.0
CLIENT_TIMEOUT = 0.75  # below SLOW_RESPONSE: the timeout card times out
WAIT = 5.0  # the longest a test waits for the sandbox to do something


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = WAIT, interval: float = 0.02, what: str = "condition"
) -> Any:
    return wait_until(predicate, timeout, interval, what)


class LocalServer:
    """A WSGI app served from a background thread on a free local port."""

    def __init__(self, app) -> None:
        self._server = make_server("127.0.0.1", 0, app=app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class CallbackReceiver:
    """Catches the sandbox's callbacks: every delivery, raw body and headers, answered 200."""

    PATH = "/v1/gateways/m2t/callbacks"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[tuple[dict[str, str], bytes, dict[str, Any]]] = []
        self._server = LocalServer(self._app)
        self.url = self._server.url + self.PATH

    def _app(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        with self._lock:
            self.deliveries.append((dict(request.headers), raw, parsed))
        return Response(status=200)(environ, start_response)

    def find(self, event_type: str, **match: Any) -> tuple[dict[str, str], bytes] | None:
        with self._lock:
            for headers, raw, parsed in self.deliveries:
                data = parsed.get("data") or {}
                if parsed.get("type") == event_type and all(data.get(k) == v for k, v in match.items()):
                    return headers, raw
        return None

    def stop(self) -> None:
        self._server.stop()


class GatewayHarness:
    """What the contract tests need beyond ``PaymentGateway``; see the module docstring."""

    name: str
    gateway: PaymentGateway
    callback_url = "https://hirfa.test/v1/gateways/callbacks"
    return_url = "https://hirfa.test/payments/return"

    def unretried(self) -> PaymentGateway:
        """The gateway without retries (a retry with the same key could cure a timeout)."""
        raise NotImplementedError

    def card_token(self, number: str) -> str:
        return self.gateway.tokenise(
            TokeniseRequest(card_number=number, exp_month=12, exp_year=2030, cvc="123")
        ).token

    def buyer_answers_three_ds(self, transaction: GatewayTransaction, outcome: str) -> None:
        raise NotImplementedError

    def wallet_answered(self, transaction: GatewayTransaction) -> GatewayTransaction:
        """Wait for the wallet buyer's answer (as the phone's test rule says); the final transaction."""
        raise NotImplementedError

    def wallet_expired(self, transaction: GatewayTransaction) -> GatewayTransaction:
        raise NotImplementedError

    def refund_settled(self, refund: GatewayRefund) -> GatewayRefund:
        raise NotImplementedError

    def open_dispute(
        self, transaction: GatewayTransaction, *, amount: int | None = None, reason: str | None = None
    ) -> GatewayDispute:
        raise NotImplementedError

    def close_dispute(self, dispute: GatewayDispute, outcome: str) -> GatewayDispute:
        raise NotImplementedError

    def callback(self, event_type: str, **match: Any) -> tuple[dict[str, str], bytes]:
        """The signed callback ``event_type`` whose ``data`` has the fields ``match`` (headers, raw body)."""
        raise NotImplementedError

    def sign(self, raw_body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Headers signing ``raw_body`` as the gateway does (for replayed or re-stamped bodies)."""
        raise NotImplementedError

    def charges(self, reference: str) -> int:
        """Transactions the gateway holds for our ``reference``."""
        raise NotImplementedError


class FakeHarness(GatewayHarness):
    name = "fake"

    def __init__(self) -> None:
        self.fake = FakeGateway(callback_secret=FAKE_CALLBACK_SECRET)
        self.gateway = self.fake

    def unretried(self) -> PaymentGateway:
        return self.fake

    def buyer_answers_three_ds(self, transaction, outcome):
        self.fake.complete_challenge(transaction.gateway_reference, outcome)

    def wallet_answered(self, transaction):
        return self.fake.answer_wallet(transaction.gateway_reference)

    def wallet_expired(self, transaction):
        return self.fake.expire(transaction.gateway_reference)

    def refund_settled(self, refund):
        return self.fake.settle_refund(refund.gateway_reference)

    def open_dispute(self, transaction, *, amount=None, reason=None):
        return self.fake.open_dispute(
            transaction.gateway_reference, amount=amount, reason=reason or "fraudulent"
        )

    def close_dispute(self, dispute, outcome):
        return self.fake.close_dispute(dispute.gateway_reference, outcome)

    def callback(self, event_type, **match):
        for event in self.fake.events:
            data = event["data"]
            if event["type"] == event_type and all(data.get(k) == v for k, v in match.items()):
                raw = json.dumps(event).encode("utf-8")
                return self.fake.sign(raw), raw
        raise AssertionError(f"the fake recorded no {event_type} callback with {match}")

    def sign(self, raw_body, timestamp=None):
        return self.fake.sign(raw_body, timestamp)

    def charges(self, reference):
        return self.fake.charge_count(reference)


class M2TSandboxHarness(GatewayHarness):
    name = "m2t"

    def __init__(self, sandbox_url: str, receiver: CallbackReceiver) -> None:
        self.sandbox_url = sandbox_url
        self.receiver = receiver
        self.callback_url = receiver.url
        self.gateway = self._gateway(retries=1)
        self._control = self.gateway.client

    def _gateway(self, *, retries: int) -> M2TGateway:
        return M2TGateway(
            self.sandbox_url,
            api_key=M2T_API_KEY,
            callback_secret=M2T_CALLBACK_SECRET,
            timeout=CLIENT_TIMEOUT,
            retries=retries,
            retry_backoff_seconds=0.05,
            allow_tokenise=True,
        )

    def unretried(self) -> PaymentGateway:
        return self._gateway(retries=0)

    def buyer_answers_three_ds(self, transaction, outcome):
        url = transaction.next_action.redirect_url
        page = requests.get(url, timeout=5)
        assert page.status_code == 200 and 'value="authenticate"' in page.text
        answer = requests.post(url, data={"outcome": outcome}, allow_redirects=False, timeout=5)
        assert answer.status_code == 303 and answer.headers["Location"] == self.return_url

    def wallet_answered(self, transaction):
        return wait_for(
            lambda: _final(self.gateway.transaction(transaction.gateway_reference)),
            what="the wallet's answer",
        )

    def wallet_expired(self, transaction):
        return wait_for(
            lambda: _final(self.gateway.transaction(transaction.gateway_reference)),
            timeout=WALLET_EXPIRY + WAIT,
            what="the wallet request's expiry",
        )

    def refund_settled(self, refund):
        def settled():
            current = self.gateway.refund_status(refund.gateway_reference)
            return current if current.status is not RefundStatus.PENDING else None

        return wait_for(settled, what="the refund to settle")

    def open_dispute(self, transaction, *, amount=None, reason=None):
        payload = self._control.sandbox_open_dispute(
            transaction.gateway_reference, amount=amount, reason=reason
        )
        return self.gateway.dispute(payload["id"])

    def close_dispute(self, dispute, outcome):
        self._control.sandbox_close_dispute(dispute.gateway_reference, outcome)
        return self.gateway.dispute(dispute.gateway_reference)

    def callback(self, event_type, **match):
        return wait_for(
            lambda: self.receiver.find(event_type, **match),
            what=f"the sandbox's {event_type} callback with {match}",
        )

    def sign(self, raw_body, timestamp=None):
        return {M2T_SIGNATURE_HEADER: sign(M2T_CALLBACK_SECRET, raw_body, timestamp)}

    def charges(self, reference):
        return len(self._control.list_transactions(reference)["data"])


def _final(transaction: GatewayTransaction) -> GatewayTransaction | None:
    return transaction if transaction.status is not TransactionStatus.ACTION_REQUIRED else None


@pytest.fixture(scope="session")
def m2t_sandbox():
    """The M2T sandbox app on a free port, with short delays, and a receiver for its callbacks."""
    config = SandboxM2TConfig(
        api_key=M2T_API_KEY,
        callback_secret=M2T_CALLBACK_SECRET,
        callback_delay_seconds=CALLBACK_DELAY,
        wallet_approval_delay_seconds=WALLET_APPROVAL_DELAY,
        wallet_expiry_seconds=WALLET_EXPIRY,
        slow_response_seconds=SLOW_RESPONSE,
        callback_retries=2,
        callback_backoff_seconds=0.05,
        callback_timeout_seconds=2.0,
    )
    app = create_m2t_sandbox(config)
    server = LocalServer(app)
    receiver = CallbackReceiver()
    try:
        yield server.url, receiver
    finally:
        stop_background_work(app)
        server.stop()
        receiver.stop()


@pytest.fixture(params=["fake", "m2t"])
def gateway_harness(request) -> GatewayHarness:
    if request.param == "fake":
        return FakeHarness()
    url, receiver = request.getfixturevalue("m2t_sandbox")
    return M2TSandboxHarness(url, receiver)


def new_reference(prefix: str = "pay") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"
