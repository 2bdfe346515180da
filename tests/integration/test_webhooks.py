"""Marketplace webhooks: endpoints through the payments API, events recorded as the lead's code records
them, and deliveries to real HTTP receivers on free local ports (healthy, failing, hanging, trickling
and dead ones), checked the way a marketplace developer would check them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from services.payments.adapters.orm import IdempotencyKey, WebhookDelivery, WebhookEndpoint, WebhookEvent
from services.payments.adapters.webhook_sender import HttpWebhookSender
from services.payments.domain.webhooks import HostNotResolved
from services.payments.service_layer.backlogs import WorkerBacklogsCollector
from services.payments.service_layer.webhook_dispatcher import WebhookDispatcher, deliver_due_webhooks
from services.payments.service_layer.webhook_events import WEBHOOK_EVENT_TYPES, record_webhook_event
from shared.errors import PROBLEM_CONTENT_TYPE
from tests.http_support import verify_hirfa_signature, wait_until
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.support import collected, free_port

pytestmark = pytest.mark.integration

ENDPOINTS = "/v1/webhook-endpoints"
DELIVERIES = "/v1/webhook-deliveries"
SHORT_TIMEOUT = 0.5
# Long enough that "served while a dead endpoint was being tried" and "served after it" are far apart.
SLOW_TIMEOUT = 3.0


# --- receivers -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class WebhookReceiver:
    """A threaded HTTP server on a free local port that records every request.

    ``replies`` scripts the status of the first requests (200 after them); ``delay`` makes it hang
    that long before answering (it may be changed while the receiver runs: an endpoint that dies).
    """

    def __init__(self, *, replies: tuple[int, ...] = (), delay: float = 0.0, path: str = "/hooks") -> None:
        self.path = path
        self.replies = list(replies)
        self.delay = delay
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.replies.pop(0) if receiver.replies else 200
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                            status,
                        )
                    )
                if receiver.delay:
                    receiver._release.wait(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


class TricklingEndpoint:
    """Answers a byte every 0.1 s for ``LASTS`` seconds: each read is quick, the answer slow to come."""

    LASTS = 3.0

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks"

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                try:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    until = time.monotonic() + self.LASTS
                    while not self._stop.wait(0.1) and time.monotonic() < until:
                        connection.sendall(b"a")
                    connection.sendall(b"\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def start(self) -> TricklingEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()


@pytest.fixture
def receivers() -> Iterator[Any]:
    started: list[Any] = []

    def start(**options: Any) -> WebhookReceiver:
        receiver = WebhookReceiver(**options).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


class RunningDispatcher:
    """A webhook dispatcher on its own thread, as the payments worker runs it."""

    def __init__(self, context: Any, settings: Any) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=WebhookDispatcher(context.uow_factory, settings).run, args=(self._stop,), daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = SLOW_TIMEOUT * 3) -> float:
        """What SIGTERM does to the worker; returns how long the dispatcher took to stop."""
        started = time.monotonic()
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the dispatcher did not stop"
        return time.monotonic() - started


@pytest.fixture
def dispatcher(context) -> Iterator[Any]:
    started: list[RunningDispatcher] = []

    def start(settings: Any) -> RunningDispatcher:
        running = RunningDispatcher(context, settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def context(payments_app):
    return payments_app.extensions["hirfa"]


@pytest.fixture
def client(payments_app):
    return payments_app.test_client()


def use_settings(context, **changes):
    """The app's webhook settings with ``changes``, for a dispatcher or a pass the test runs itself."""
    return dataclasses.replace(context.webhooks, **changes)


def assert_problem(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    problem = response.get_json()
    assert problem["code"] == code, problem
    if param is not None:
        assert problem["param"] == param
    return problem


def create_endpoint(
    client,
    marketplace_headers,
    url: str,
    event_types=("*",),
    client_id: str = MARKETPLACE,
    key: str | None = None,
) -> dict:
    response = client.post(
        ENDPOINTS,
        json={"url": url, "event_types": list(event_types)},
        headers=marketplace_headers(key or str(uuid.uuid4()), client_id=client_id),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def record(
    context,
    object_id: str,
    event_type: str = "payment.succeeded",
    *,
    marketplace_id: str = MARKETPLACE,
    snapshot: dict | None = None,
) -> None:
    """What the payments code does inside the transaction of a change."""
    with context.uow_factory() as uow:
        record_webhook_event(
            uow.session,
            marketplace_id=marketplace_id,
            event_type=event_type,
            object_type=event_type.split(".")[0],
            object_id=object_id,
            snapshot=snapshot or {"id": object_id, "object": event_type.split(".")[0], "status": "x"},
        )
        uow.commit()


def deliveries(client, marketplace_headers, client_id: str = MARKETPLACE, **filters) -> list[dict]:
    response = client.get(
        DELIVERIES, headers=marketplace_headers(client_id=client_id), query_string={"limit": 100, **filters}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


def delivery(client, marketplace_headers, delivery_id: str) -> dict:
    response = client.get(f"{DELIVERIES}/{delivery_id}", headers=marketplace_headers())
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def failing_since(context, endpoint_id: str) -> dt.datetime | None:
    with context.session_factory() as session:
        return session.get(WebhookEndpoint, endpoint_id).failing_since


def leases_held(context) -> int:
    with context.session_factory() as session:
        return sum(
            session.scalar(sa.select(sa.func.count()).where(model.leased_until.is_not(None)))
            for model in (WebhookDelivery, WebhookEndpoint)
        )


# --- endpoints -----------------------------------------------------------------------------------


def test_an_endpoint_is_created_listed_and_deleted_and_its_secret_shown_once(
    client, context, marketplace_headers
):
    key = str(uuid.uuid4())
    body = {
        "url": "https://shop.example.ma/hooks?token=abc",
        "event_types": ["payment.succeeded", "refund.created"],
        "description": "orders",
    }
    response = client.post(ENDPOINTS, json=body, headers=marketplace_headers(key))
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(bytes.fromhex(secret.removeprefix("whsec_"))) == 32
    assert created["id"].startswith("we_") and response.headers["Location"] == f"{ENDPOINTS}/{created['id']}"
    assert created["status"] == "enabled" and created["event_types"] == [
        "payment.succeeded",
        "refund.created",
    ]

    # The same Idempotency-Key replays the answer, secret included; a new one makes a new endpoint.
    replay = client.post(ENDPOINTS, json=body, headers=marketplace_headers(key))
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == created
    assert_problem(
        client.post(ENDPOINTS, json={**body, "description": "x"}, headers=marketplace_headers(key)),
        409,
        "idempotency_key_reuse",
    )

    # Never again in a read, and never in clear in the database (neither the row nor the saved answer).
    listed = client.get(ENDPOINTS, headers=marketplace_headers()).get_json()
    shown = client.get(f"{ENDPOINTS}/{created['id']}", headers=marketplace_headers())
    assert [item["id"] for item in listed["data"]] == [created["id"]]
    for answer in (json.dumps(listed), shown.get_data(as_text=True)):
        assert secret not in answer and "secret" not in answer
    assert shown.get_json() == {k: v for k, v in created.items() if k != "secret"}
    with context.session_factory() as session:
        endpoint = session.get(WebhookEndpoint, created["id"])
        saved_answers = " ".join(
            row.response_body or "" for row in session.scalars(sa.select(IdempotencyKey))
        )
        assert endpoint.secret_key_id and secret.encode() not in endpoint.secret_ciphertext
        assert created["id"] in saved_answers and secret not in saved_answers

    # A pending delivery at the time of the DELETE is canceled; the delivery stays readable.
    record(context, "pay_deleted_endpoint")
    [pending] = deliveries(client, marketplace_headers, endpoint_id=created["id"])
    deleted = client.delete(f"{ENDPOINTS}/{created['id']}", headers=marketplace_headers())
    assert deleted.status_code == 200 and deleted.get_json()["status"] == "disabled"
    assert deleted.get_json()["disabled_at"] is not None
    assert client.delete(f"{ENDPOINTS}/{created['id']}", headers=marketplace_headers()).status_code == 200
    assert client.get(ENDPOINTS, headers=marketplace_headers()).get_json()["data"] == []
    disabled = client.get(ENDPOINTS, headers=marketplace_headers(), query_string={"status": "disabled"})
    assert [item["id"] for item in disabled.get_json()["data"]] == [created["id"]]
    assert delivery(client, marketplace_headers, pending["id"])["status"] == "canceled"
    assert deliver_due_webhooks(context.uow_factory, context.webhooks) == 0
    record(context, "pay_deleted_endpoint", "payment.failed")
    assert len(deliveries(client, marketplace_headers)) == 1  # nothing new for a disabled endpoint


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://shop.example.ma/hooks", "invalid_webhook_url"),
        ("/hooks", "invalid_webhook_url"),
        ("https://", "invalid_webhook_url"),
        ("https://user:pass@shop.example.ma/hooks", "invalid_webhook_url"),
        ("https://shop.example.ma:99999/hooks", "invalid_webhook_url"),
        ("https://shop.example.ma/ho oks", "invalid_webhook_url"),
        ("https://[::1/hooks", "invalid_webhook_url"),
        ("https://sûk.example.ma/hooks", "invalid_webhook_url"),
    ],
)
def test_a_webhook_url_must_be_absolute_http(client, marketplace_headers, url, code):
    response = client.post(
        ENDPOINTS, json={"url": url, "event_types": ["*"]}, headers=marketplace_headers("k")
    )
    assert_problem(response, 422, code, param="url")


def test_unknown_event_types_are_listed_and_production_wants_public_https(
    client, context, marketplace_headers, make_payments_app
):
    response = client.post(
        ENDPOINTS,
        json={
            "url": "https://shop.example.ma/h",
            "event_types": ["payment.succeeded", "payment.paid", "refund.*"],
        },
        headers=marketplace_headers("k1"),
    )
    problem = assert_problem(response, 422, "unknown_event_types", param="event_types")
    assert problem["unknown_event_types"] == ["payment.paid", "refund.*"]
    assert set(problem["allowed_event_types"]) == {*WEBHOOK_EVENT_TYPES, "*"}
    assert_problem(
        client.post(
            ENDPOINTS, json={"url": "https://a.ma/h", "event_types": []}, headers=marketplace_headers("k2")
        ),
        422,
        "validation_error",
    )
    assert_problem(
        client.post(ENDPOINTS, json={"event_types": ["*"]}, headers=marketplace_headers("k3")),
        422,
        "validation_error",
    )
    assert_problem(
        client.post(
            ENDPOINTS, json={"url": "https://a.ma/h", "event_types": ["*"]}, headers=marketplace_headers()
        ),
        400,
        "idempotency_key_missing",
    )
    # "*" already means every type.
    everything = create_endpoint(client, marketplace_headers, "https://a.ma/h", ["payment.failed", "*"])
    assert everything["event_types"] == ["*"]

    # The same service built with production's rules for endpoint URLs.
    strict = use_settings(context, require_https=True, allow_private_hosts=False)
    client = make_payments_app(webhooks=strict).test_client()
    for url, code in (
        ("http://shop.example.ma/h", "insecure_webhook_url"),
        ("https://127.0.0.1/h", "webhook_url_not_public"),
        ("https://10.1.2.3/h", "webhook_url_not_public"),
        ("https://localhost/h", "webhook_url_not_public"),
    ):
        response = client.post(
            ENDPOINTS, json={"url": url, "event_types": ["*"]}, headers=marketplace_headers(str(uuid.uuid4()))
        )
        assert_problem(response, 422, code, param="url")
    create_endpoint(client, marketplace_headers, "https://shop.example.ma/h")


def test_a_marketplace_sees_only_its_own_endpoints_and_deliveries(
    client, context, issue_token, marketplace_headers
):
    mine = create_endpoint(client, marketplace_headers, "https://mine.example.ma/h")
    theirs = create_endpoint(
        client, marketplace_headers, "https://theirs.example.ma/h", client_id=OTHER_MARKETPLACE
    )
    record(context, "pay_isolation", marketplace_id=OTHER_MARKETPLACE)
    [their_delivery] = deliveries(client, marketplace_headers, client_id=OTHER_MARKETPLACE)

    assert [e["id"] for e in client.get(ENDPOINTS, headers=marketplace_headers()).get_json()["data"]] == [
        mine["id"]
    ]
    assert deliveries(client, marketplace_headers) == []
    for response in (
        client.get(f"{ENDPOINTS}/{theirs['id']}", headers=marketplace_headers()),
        client.delete(f"{ENDPOINTS}/{theirs['id']}", headers=marketplace_headers()),
        client.get(f"{DELIVERIES}/{their_delivery['id']}", headers=marketplace_headers()),
        client.post(f"{DELIVERIES}/{their_delivery['id']}/retry", headers=marketplace_headers("r1")),
        client.get(DELIVERIES, headers=marketplace_headers(), query_string={"endpoint_id": theirs["id"]}),
        client.get(f"{ENDPOINTS}/we_nothing", headers=marketplace_headers()),
    ):
        assert_problem(response, 404, "resource_not_found")
    assert (
        client.get(
            f"{ENDPOINTS}/{theirs['id']}", headers=marketplace_headers(client_id=OTHER_MARKETPLACE)
        ).get_json()["status"]
        == "enabled"
    )

    # The scope is a marketplace's; a token without it is refused.
    payments_only = {"Authorization": "Bearer " + issue_token(scopes={"payments:read"})}
    assert_problem(client.get(ENDPOINTS, headers=payments_only), 403, "insufficient_scope")


# --- events --------------------------------------------------------------------------------------


def test_events_get_per_object_sequences_and_deliveries_for_subscribed_endpoints_only(
    client, context, marketplace_headers
):
    succeeded_only = create_endpoint(
        client, marketplace_headers, "https://a.example.ma/h", ["payment.succeeded"]
    )
    everything = create_endpoint(client, marketplace_headers, "https://b.example.ma/h", ["*"])
    refunds = create_endpoint(client, marketplace_headers, "https://c.example.ma/h", ["refund.created"])
    deleted = create_endpoint(client, marketplace_headers, "https://d.example.ma/h", ["*"])
    client.delete(f"{ENDPOINTS}/{deleted['id']}", headers=marketplace_headers())
    other = create_endpoint(
        client, marketplace_headers, "https://e.example.ma/h", ["*"], client_id=OTHER_MARKETPLACE
    )

    record(context, "pay_A", "payment.processing")
    record(context, "pay_B", "payment.processing")
    record(
        context, "pay_A", "payment.succeeded", snapshot={"id": "pay_A", "status": "succeeded", "amount": 5000}
    )
    record(context, "re_A", "refund.created")
    record(context, "pay_A", "payment.canceled")
    record(context, "pay_nobody", "payment.processing", marketplace_id="cli_no_endpoints")

    with context.session_factory() as session:
        events = session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id)).all()
    sequences = {(e.object_id, e.type): e.sequence for e in events}
    assert sequences == {
        ("pay_A", "payment.processing"): 1,
        ("pay_B", "payment.processing"): 1,
        ("pay_A", "payment.succeeded"): 2,
        ("re_A", "refund.created"): 1,
        ("pay_A", "payment.canceled"): 3,
        ("pay_nobody", "payment.processing"): 1,
    }
    succeeded = next(e for e in events if e.type == "payment.succeeded")
    assert json.loads(succeeded.body)["data"]["object"] == {
        "id": "pay_A",
        "status": "succeeded",
        "amount": 5000,
    }

    def types_for(endpoint: dict) -> list[str]:
        return [d["event_type"] for d in deliveries(client, marketplace_headers, endpoint_id=endpoint["id"])]

    assert types_for(succeeded_only) == ["payment.succeeded"]
    assert types_for(everything) == [
        "payment.processing",
        "payment.processing",
        "payment.succeeded",
        "refund.created",
        "payment.canceled",
    ]
    assert types_for(refunds) == ["refund.created"]
    assert types_for(deleted) == []
    assert deliveries(client, marketplace_headers, client_id=OTHER_MARKETPLACE) == []
    assert {d["status"] for d in deliveries(client, marketplace_headers)} == {"pending"}
    assert [
        d["event_type"] for d in deliveries(client, marketplace_headers, event_type="refund.created")
    ] == ["refund.created", "refund.created"]
    assert other["id"]

    with pytest.raises(ValueError):
        record(context, "pay_A", "payment.paid")


def test_concurrent_changes_of_one_object_get_distinct_consecutive_sequences(context):
    writers = 8
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def change() -> None:
        try:
            start.wait()
            record(context, "pay_contended", "payment.processing")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=change) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    with context.session_factory() as session:
        numbers = session.scalars(
            sa.select(WebhookEvent.sequence).where(WebhookEvent.object_id == "pay_contended")
        )
        assert sorted(numbers) == list(range(1, writers + 1))


# --- deliveries ----------------------------------------------------------------------------------


def test_a_delivery_is_signed_so_a_consumer_verifies_it_with_the_standard_library(
    client, context, marketplace_headers, receivers
):
    receiver = receivers()
    endpoint = create_endpoint(client, marketplace_headers, receiver.url, ["payment.succeeded"])
    snapshot = {
        "id": "pay_signed",
        "object": "payment",
        "status": "succeeded",
        "amount": {"amount": 12000, "currency": "MAD"},
        "description": "Tajine en terre cuite — فخار",
    }
    record(context, "pay_signed", "payment.processing")
    record(context, "pay_signed", "payment.succeeded", snapshot=snapshot)

    assert deliver_due_webhooks(context.uow_factory, context.webhooks) == 1
    [request] = receiver.requests
    secret = endpoint["secret"]
    headers = request.headers
    assert verify_hirfa_signature(secret, headers["hirfa-signature"], request.body)
    assert not verify_hirfa_signature(
        secret, headers["hirfa-signature"], request.body.replace(b"12000", b"12001")
    )
    assert not verify_hirfa_signature("whsec_" + "0" * 64, headers["hirfa-signature"], request.body)
    stamp = int(headers["hirfa-signature"].split(",")[0].removeprefix("t="))
    assert abs(stamp - time.time()) < 60

    event = request.event
    assert set(event) == {"id", "type", "created", "sequence", "data"}
    assert event["id"].startswith("evt_") and event["type"] == "payment.succeeded" and event["sequence"] == 2
    assert event["data"] == {"object": snapshot}
    assert event["created"].endswith("Z") and abs(
        when(event["created"]) - dt.datetime.now(dt.UTC)
    ) < dt.timedelta(minutes=1)
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith(
        "Hirfa-Webhooks/"
    )
    [sent] = deliveries(client, marketplace_headers)
    assert headers["hirfa-event-id"] == event["id"] == sent["event_id"]
    assert headers["hirfa-delivery-id"] == sent["id"]
    assert request.path == "/hooks"

    shown = delivery(client, marketplace_headers, sent["id"])
    assert shown["status"] == "delivered" and shown["attempt_count"] == 1 and shown["last_status_code"] == 200
    assert shown["next_attempt_at"] is None and shown["delivered_at"] is not None
    [attempt] = shown["attempts"]
    assert attempt["status_code"] == 200 and attempt["trigger"] == "automatic" and attempt["error"] is None
    assert deliver_due_webhooks(context.uow_factory, context.webhooks) == 0  # nothing twice


def test_failed_attempts_are_retried_later_and_later_until_a_2xx(
    client, context, marketplace_headers, receivers
):
    receiver = receivers(replies=(500, 503))
    create_endpoint(client, marketplace_headers, receiver.url)
    record(context, "pay_retried")
    settings = context.webhooks
    [pending] = deliveries(client, marketplace_headers)

    assert deliver_due_webhooks(context.uow_factory, settings) == 1
    first = delivery(client, marketplace_headers, pending["id"])
    assert first["status"] == "pending" and first["last_status_code"] == 500
    first_wait = when(first["next_attempt_at"]) - when(first["last_attempt_at"])
    assert dt.timedelta(seconds=24) <= first_wait <= dt.timedelta(seconds=36)  # 30 s ± jitter

    # Not due yet: nothing is sent.
    early = when(first["next_attempt_at"]) - dt.timedelta(seconds=1)
    assert deliver_due_webhooks(context.uow_factory, settings, now=early) == 0
    assert deliver_due_webhooks(context.uow_factory, settings, now=when(first["next_attempt_at"])) == 1
    second = delivery(client, marketplace_headers, pending["id"])
    assert second["status"] == "pending" and second["last_status_code"] == 503
    second_wait = when(second["next_attempt_at"]) - when(second["last_attempt_at"])
    assert second_wait > first_wait and dt.timedelta(seconds=48) <= second_wait <= dt.timedelta(seconds=72)

    assert deliver_due_webhooks(context.uow_factory, settings, now=when(second["next_attempt_at"])) == 1
    done = delivery(client, marketplace_headers, pending["id"])
    assert done["status"] == "delivered" and done["next_attempt_at"] is None
    assert [(a["number"], a["status_code"]) for a in done["attempts"]] == [(1, 500), (2, 503), (3, 200)]
    assert [r.answered for r in receiver.requests] == [500, 503, 200]
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert deliveries(client, marketplace_headers, status="delivered")[0]["id"] == pending["id"]


def test_the_workers_metrics_show_the_webhook_queue_and_how_long_its_oldest_has_been_due(
    client, context, marketplace_headers, receivers
):
    metrics = WorkerBacklogsCollector(context.uow_factory, context.payments)

    def queue() -> tuple[float, float, float]:
        shown = collected(metrics)
        return tuple(
            shown[(name, ())]
            for name in (
                "hirfa_webhook_deliveries_pending",
                "hirfa_webhook_deliveries_due",
                "hirfa_webhook_oldest_due_seconds",
            )
        )

    assert queue() == (0, 0, 0)
    receiver = receivers(replies=(500,))
    create_endpoint(client, marketplace_headers, receiver.url)
    record(context, "pay_queued")
    with context.uow_factory() as uow:  # due two minutes ago: the worker has not kept up
        uow.session.execute(
            sa.update(WebhookDelivery).values(
                next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
            )
        )
        uow.commit()
    pending, due, oldest = queue()
    assert (pending, due) == (1, 1) and 120 <= oldest < 180

    assert deliver_due_webhooks(context.uow_factory, context.webhooks) == 1  # answered 500
    assert queue() == (1, 0, 0)  # waiting for its retry, not due yet
    [retrying] = deliveries(client, marketplace_headers)
    deliver_due_webhooks(context.uow_factory, context.webhooks, now=when(retrying["next_attempt_at"]))
    assert queue() == (0, 0, 0)


def test_a_delivery_fails_for_good_once_the_event_is_too_old_and_can_be_retried_by_hand(
    client, context, marketplace_headers, receivers
):
    receiver = receivers(replies=(500,) * 4)
    create_endpoint(client, marketplace_headers, receiver.url)
    record(context, "pay_given_up")
    settings = context.webhooks
    [pending] = deliveries(client, marketplace_headers)
    created = when(pending["created_at"])

    assert deliver_due_webhooks(context.uow_factory, settings) == 1
    # Still inside the 72 hours: another attempt is scheduled.
    assert deliver_due_webhooks(context.uow_factory, settings, now=created + dt.timedelta(hours=71)) == 1
    assert delivery(client, marketplace_headers, pending["id"])["status"] == "pending"
    # Past them: the failed attempt is the last one.
    assert (
        deliver_due_webhooks(context.uow_factory, settings, now=created + dt.timedelta(hours=72, minutes=1))
        == 1
    )
    failed = delivery(client, marketplace_headers, pending["id"])
    assert (
        failed["status"] == "failed" and failed["next_attempt_at"] is None and failed["failed_at"] is not None
    )
    assert failed["attempt_count"] == 3
    assert deliver_due_webhooks(context.uow_factory, settings, now=created + dt.timedelta(hours=90)) == 0
    assert len(receiver.requests) == 3

    # A manual retry sends it now; a failure of it changes nothing, a success makes it delivered.
    key = str(uuid.uuid4())
    retried = client.post(f"{DELIVERIES}/{pending['id']}/retry", headers=marketplace_headers(key))
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json()["status"] == "failed" and retried.get_json()["last_status_code"] == 500
    retried = client.post(
        f"{DELIVERIES}/{pending['id']}/retry", headers=marketplace_headers(str(uuid.uuid4()))
    )
    body = retried.get_json()
    assert body["status"] == "delivered" and body["last_status_code"] == 200 and body["attempt_count"] == 5
    assert [a["trigger"] for a in body["attempts"]] == ["automatic"] * 3 + ["manual"] * 2
    assert len(receiver.requests) == 5
    # Replayed by its Idempotency-Key: the first answer, and nothing sent.
    replay = client.post(f"{DELIVERIES}/{pending['id']}/retry", headers=marketplace_headers(key))
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json()["attempt_count"] == 4
    assert len(receiver.requests) == 5


def test_a_delivered_delivery_can_be_replayed_but_not_to_a_deleted_endpoint(
    client, context, marketplace_headers, receivers
):
    receiver = receivers()
    endpoint = create_endpoint(client, marketplace_headers, receiver.url)
    record(context, "pay_replayed")
    deliver_due_webhooks(context.uow_factory, context.webhooks)
    [sent] = deliveries(client, marketplace_headers)
    replayed = client.post(f"{DELIVERIES}/{sent['id']}/retry", headers=marketplace_headers("again"))
    assert replayed.status_code == 200 and replayed.get_json()["attempt_count"] == 2
    first, second = receiver.requests
    assert (
        first.body == second.body
        and first.headers["hirfa-delivery-id"] == second.headers["hirfa-delivery-id"]
    )
    assert verify_hirfa_signature(endpoint["secret"], second.headers["hirfa-signature"], second.body)

    # While a worker is sending it, a manual retry waits its turn.
    with context.uow_factory() as uow:
        uow.session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id == sent["id"])
            .values(leased_until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), lease_token="worker")
        )
        uow.commit()
    busy = client.post(f"{DELIVERIES}/{sent['id']}/retry", headers=marketplace_headers("busy"))
    assert_problem(busy, 409, "webhook_delivery_in_progress")
    assert int(busy.headers["Retry-After"]) >= 1

    client.delete(f"{ENDPOINTS}/{endpoint['id']}", headers=marketplace_headers())
    assert_problem(
        client.post(f"{DELIVERIES}/{sent['id']}/retry", headers=marketplace_headers("gone")),
        409,
        "webhook_endpoint_disabled",
    )
    assert len(receiver.requests) == 2


def test_slow_dead_and_trickling_endpoints_do_not_hold_up_a_healthy_one(
    client, context, marketplace_headers, receivers
):
    # Twice the short timeout: on a busy machine three healthy deliveries still fit well within it,
    # and the hanging endpoint (3 s) and the trickling one (3 s) still outlast it.
    timeout = SHORT_TIMEOUT * 2
    settings = use_settings(context, timeout_seconds=timeout)
    healthy = receivers()
    hanging = receivers(delay=SHORT_TIMEOUT * 6)
    trickling = TricklingEndpoint().start()
    dead_url = f"http://127.0.0.1:{free_port()}/hooks"
    try:
        ids = {
            name: create_endpoint(client, marketplace_headers, url)["id"]
            for name, url in (
                ("hanging", hanging.url),
                ("trickling", trickling.url),
                ("dead", dead_url),
                ("healthy", healthy.url),
            )
        }
        for n in range(3):
            record(context, f"pay_busy_{n}")

        started = time.monotonic()
        attempts = deliver_due_webhooks(context.uow_factory, settings)
        elapsed = time.monotonic() - started
    finally:
        trickling.stop()

    # One timeout for the whole round, not one per stuck delivery; the healthy endpoint got all of its
    # deliveries while the others were still timing out.
    assert elapsed < timeout * 2.5, elapsed
    assert len(healthy.requests) == 3 and healthy.requests[-1].at - started < timeout
    assert attempts == 3 + 1 + 1 + 1  # a failing endpoint gets one attempt per round

    def state(name: str) -> list[tuple[str, int, str | None]]:
        found = deliveries(client, marketplace_headers, endpoint_id=ids[name])
        return [(d["status"], d["attempt_count"], d["last_error"]) for d in found]

    assert state("healthy") == [("delivered", 1, None)] * 3
    assert state("hanging") == [("pending", 1, "timeout"), ("pending", 0, None), ("pending", 0, None)]
    assert state("trickling") == [("pending", 1, "timeout"), ("pending", 0, None), ("pending", 0, None)]
    assert state("dead") == [("pending", 1, "connection_refused"), ("pending", 0, None), ("pending", 0, None)]
    [timed_out] = delivery(
        client,
        marketplace_headers,
        deliveries(client, marketplace_headers, endpoint_id=ids["hanging"])[0]["id"],
    )["attempts"]
    assert timeout * 1000 * 0.9 <= timed_out["duration_ms"] < timeout * 1000 * 1.8


def test_endpoints_in_trouble_only_ever_hold_their_own_threads(
    client, context, marketplace_headers, dispatcher, receivers
):
    # More dead endpoints than healthy threads: in rounds, or in one pool, they would take them all.
    settings = use_settings(
        context,
        timeout_seconds=SLOW_TIMEOUT,
        concurrency=2,
        troubled_concurrency=2,
        rest_after_failure_seconds=0.2,
    )
    dead = [receivers(replies=(500,)) for _ in range(10)]
    healthy = receivers()
    dead_ids = [
        create_endpoint(client, marketplace_headers, receiver.url, ["payment.failed"])["id"]
        for receiver in dead
    ]
    healthy_id = create_endpoint(client, marketplace_headers, healthy.url, ["payment.succeeded"])["id"]
    record(context, "pay_answered_500", "payment.failed")
    assert deliver_due_webhooks(context.uow_factory, settings) == 10
    assert all(failing_since(context, endpoint_id) is not None for endpoint_id in dead_ids)
    assert failing_since(context, healthy_id) is None

    # Now they accept the connection and never answer within the timeout.
    for receiver in dead:
        receiver.delay = SLOW_TIMEOUT * 10
    running = dispatcher(settings)
    record(context, "pay_never_answered", "payment.failed")
    wait_until(lambda: sum(len(receiver.requests) for receiver in dead) == 10 + 2)
    recorded = time.monotonic()
    record(context, "pay_healthy", "payment.succeeded")
    wait_until(lambda: len(healthy.requests) == 1, timeout=SLOW_TIMEOUT)

    assert healthy.requests[0].at - recorded < SLOW_TIMEOUT / 2
    # Meanwhile the dead endpoints held the troubled threads only: two attempts, waiting out their timeout.
    assert sum(len(receiver.requests) for receiver in dead) == 10 + 2
    # Recorded once the answer is in, just after the receiver saw the request.
    wait_until(
        lambda: (
            [d["status"] for d in deliveries(client, marketplace_headers, endpoint_id=healthy_id)]
            == ["delivered"]
        )
    )

    # Stopped (SIGTERM), the worker starts nothing more, lets the two attempts end and records them.
    assert running.stop() < SLOW_TIMEOUT * 1.5
    timed_out = [
        d
        for d in deliveries(client, marketplace_headers, event_type="payment.failed")
        if d["last_error"] == "timeout"
    ]
    assert len(timed_out) == 2 and all(d["status"] == "pending" for d in timed_out)
    assert sum(len(receiver.requests) for receiver in dead) == 10 + 2
    assert leases_held(context) == 0


def test_a_failure_moves_an_endpoint_to_the_troubled_threads_and_a_success_moves_it_back(
    client, context, marketplace_headers, dispatcher, receivers
):
    settings = use_settings(
        context,
        timeout_seconds=SLOW_TIMEOUT,
        concurrency=2,
        troubled_concurrency=1,
        rest_after_failure_seconds=0.2,
    )
    stuck = receivers(replies=(500,))
    flaky = receivers(replies=(500,))
    stuck_id = create_endpoint(client, marketplace_headers, stuck.url, ["payment.failed"])["id"]
    flaky_id = create_endpoint(client, marketplace_headers, flaky.url, ["payment.succeeded"])["id"]
    dispatcher(settings)

    # The stuck endpoint fails once, then hangs: from then on it holds the one troubled thread for a
    # timeout whenever it has something due.
    record(context, "pay_stuck_1", "payment.failed")
    wait_until(lambda: failing_since(context, stuck_id) is not None)
    stuck.delay = SLOW_TIMEOUT * 10
    record(context, "pay_stuck_2", "payment.failed")
    wait_until(lambda: len(stuck.requests) == 2)
    stuck_busy_from = stuck.requests[-1].at

    # Healthy, the flaky endpoint is served at once, although the troubled thread is taken…
    record(context, "pay_flaky_1")
    wait_until(lambda: failing_since(context, flaky_id) is not None, timeout=SLOW_TIMEOUT)
    assert flaky.requests[0].at - stuck_busy_from < SLOW_TIMEOUT / 2 and flaky.requests[0].answered == 500
    # …but failing, its next delivery waits for the troubled thread; delivered, it is healthy again.
    record(context, "pay_flaky_2")
    wait_until(lambda: len(flaky.requests) == 2, timeout=SLOW_TIMEOUT * 2)
    assert flaky.requests[1].at - stuck_busy_from >= SLOW_TIMEOUT * 0.9 and flaky.requests[1].answered == 200
    wait_until(lambda: failing_since(context, flaky_id) is None)

    # So while the stuck endpoint holds the troubled thread again, the flaky one is served at once.
    record(context, "pay_stuck_3", "payment.failed")
    wait_until(lambda: len(stuck.requests) == 3, timeout=SLOW_TIMEOUT * 2)
    recorded = time.monotonic()
    record(context, "pay_flaky_3")
    wait_until(lambda: len(flaky.requests) == 3, timeout=SLOW_TIMEOUT)
    assert flaky.requests[2].at - recorded < SLOW_TIMEOUT / 2
    assert failing_since(context, stuck_id) is not None
    wait_until(
        lambda: (
            [d["status"] for d in deliveries(client, marketplace_headers, endpoint_id=flaky_id)]
            == ["pending", "delivered", "delivered"]
        )
    )


def test_two_workers_never_send_the_same_attempt(client, context, marketplace_headers, receivers):
    settings = context.webhooks
    slow = [receivers(delay=0.1) for _ in range(3)]
    for receiver in slow:
        create_endpoint(client, marketplace_headers, receiver.url)
    for n in range(2):
        record(context, f"pay_raced_{n}")

    counts: list[int] = []
    workers = [
        threading.Thread(target=lambda: counts.append(deliver_due_webhooks(context.uow_factory, settings)))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    sent = [r.headers["hirfa-delivery-id"] for receiver in slow for r in receiver.requests]
    assert sorted(sent) == sorted(d["id"] for d in deliveries(client, marketplace_headers)) and len(sent) == 6
    assert sum(counts) == 6
    with context.session_factory() as session:
        assert (
            session.scalar(sa.select(sa.func.count()).where(WebhookDelivery.leased_until.is_not(None))) == 0
        )
        assert (
            session.scalar(sa.select(sa.func.count()).where(WebhookEndpoint.leased_until.is_not(None))) == 0
        )


def test_the_signing_secret_and_the_url_beyond_its_host_never_reach_the_logs(
    client, context, marketplace_headers, receivers, caplog
):
    caplog.set_level(logging.DEBUG)
    receiver = receivers(replies=(500,), path="/hooks/private-path-token")
    endpoint = create_endpoint(client, marketplace_headers, receiver.url + "?key=private-query-token")
    record(context, "pay_logged")
    settings = context.webhooks
    deliver_due_webhooks(context.uow_factory, settings)
    [pending] = deliveries(client, marketplace_headers)
    client.post(f"{DELIVERIES}/{pending['id']}/retry", headers=marketplace_headers("logged"))
    assert [r.answered for r in receiver.requests] == [500, 200]

    logged = "\n".join([caplog.text, *(repr(vars(record)) for record in caplog.records)])
    assert (
        "webhook delivery attempt" in logged and "'host': '127.0.0.1'" in logged
    )  # the test looks somewhere
    secret = endpoint["secret"]
    for leak in (secret, secret.removeprefix("whsec_"), "private-path-token", "private-query-token"):
        assert leak not in logged


def test_the_openapi_document_describes_the_webhook_api(client):
    document = client.get("/openapi.json").get_json()
    validate(document)
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/v1/webhook-endpoints"])
    assert {"get", "delete"} <= set(paths["/v1/webhook-endpoints/{endpoint_id}"])
    assert "post" in paths["/v1/webhook-deliveries/{delivery_id}/retry"]
    created = paths["/v1/webhook-endpoints"]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookEndpointCreated")
    assert {"422", "409"} <= set(created) and PROBLEM_CONTENT_TYPE in created["422"]["content"]
    assert "Hirfa-Signature" in paths["/v1/webhook-endpoints"]["post"]["description"]
    schemas = document["components"]["schemas"]
    # Only the creation answer has a secret.
    assert "secret" in schemas["WebhookEndpointCreated"]["properties"]
    assert "secret" not in schemas["WebhookEndpoint"]["properties"]
    assert "attempts" in schemas["WebhookDeliveryDetail"]["properties"]


# --- where webhooks may go: public addresses only, checked at registration and at every delivery ---


class FakeResolver:
    """A name service the test controls: ``answers`` maps names to addresses and may change while
    the test runs (a DNS rebinding); a name it does not know does not resolve."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = {name.replace("_", "."): addresses for name, addresses in answers.items()}
        self.asked: list[str] = []

    def resolve(self, host: str, port: int, timeout: float) -> list[Any]:
        assert 0 < timeout <= 5
        self.asked.append(host)
        if host not in self.answers:
            raise HostNotResolved("dns_error")
        return [ipaddress.ip_address(address) for address in self.answers[host]]


def post_endpoint(client, marketplace_headers, url: str):
    return client.post(
        ENDPOINTS, json={"url": url, "event_types": ["*"]}, headers=marketplace_headers(str(uuid.uuid4()))
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://2130706433:9/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.8/hooks",
        "http://0.0.0.0:9/",
    ],
)
def test_the_black_box_findings_are_refused_where_private_networks_are_not_allowed(
    context, marketplace_headers, make_payments_app, url
):
    settings = use_settings(context, allow_private_hosts=False, resolver=FakeResolver())
    client = make_payments_app(webhooks=settings).test_client()
    problem = assert_problem(post_endpoint(client, marketplace_headers, url), 422, "webhook_url_not_public")
    assert problem["param"] == "url" and "public" in problem["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
    ],
)
def test_cloud_metadata_is_refused_even_in_development(client, marketplace_headers, url):
    assert_problem(
        post_endpoint(client, marketplace_headers, url), 422, "webhook_url_not_public", param="url"
    )


def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(
    context, marketplace_headers, make_payments_app
):
    resolver = FakeResolver(
        public_shop_ma=["93.184.216.34", "2606:4700:4700::1111"],
        mixed_shop_ma=["93.184.216.34", "10.0.0.7"],
        mapped_shop_ma=["::ffff:127.0.0.1"],
        metadata_shop_ma=["169.254.169.254"],
        internal_shop_ma=["192.168.1.20"],
    )
    strict = use_settings(context, require_https=True, allow_private_hosts=False, resolver=resolver)
    client = make_payments_app(webhooks=strict).test_client()
    for name in ("mixed.shop.ma", "mapped.shop.ma", "metadata.shop.ma", "internal.shop.ma"):
        response = post_endpoint(client, marketplace_headers, f"https://{name}/hooks")
        assert_problem(response, 422, "webhook_url_not_public", param="url")
    created = create_endpoint(client, marketplace_headers, "https://public.shop.ma/hooks")
    assert created["url"] == "https://public.shop.ma/hooks"
    # Not resolvable yet: accepted, and judged at every delivery instead.
    create_endpoint(client, marketplace_headers, "https://not-yet.shop.ma/hooks")
    assert resolver.asked == [
        "mixed.shop.ma",
        "mapped.shop.ma",
        "metadata.shop.ma",
        "internal.shop.ma",
        "public.shop.ma",
        "not-yet.shop.ma",
    ]

    # Development's setting lets a private network in, never the metadata service.
    relaxed = use_settings(context, allow_private_hosts=True, resolver=resolver)
    client = make_payments_app(webhooks=relaxed).test_client()
    create_endpoint(client, marketplace_headers, "https://internal.shop.ma/hooks")
    response = post_endpoint(client, marketplace_headers, "https://metadata.shop.ma/hooks")
    assert_problem(response, 422, "webhook_url_not_public", param="url")


def test_a_name_re_pointed_at_a_private_address_after_registration_gets_no_request(
    context, marketplace_headers, make_payments_app, receivers
):
    receiver = receivers()
    port = receiver.url.split(":")[2].split("/")[0]
    resolver = FakeResolver(hooks_shop_ma=["93.184.216.34"])
    strict = use_settings(
        context,
        allow_private_hosts=False,
        resolver=resolver,
        sender=HttpWebhookSender(allow_private_networks=False, resolver=resolver),
    )
    client = make_payments_app(webhooks=strict).test_client()
    create_endpoint(client, marketplace_headers, f"http://hooks.shop.ma:{port}/hooks")
    record(context, "pay_rebound")

    resolver.answers["hooks.shop.ma"] = ["93.184.216.34", "127.0.0.1"]  # the rebinding
    assert deliver_due_webhooks(context.uow_factory, strict) == 1
    [pending] = deliveries(client, marketplace_headers)
    shown = delivery(client, marketplace_headers, pending["id"])
    assert shown["status"] == "pending" and shown["last_status_code"] is None
    assert shown["last_error"] == "address_not_allowed"
    [attempt] = shown["attempts"]
    assert attempt["error"] == "address_not_allowed" and attempt["status_code"] is None
    assert receiver.requests == []  # not sent

    # Development's setting would have let it through to the checked loopback address.
    relaxed = dataclasses.replace(
        strict, sender=HttpWebhookSender(allow_private_networks=True, resolver=resolver)
    )
    resolver.answers["hooks.shop.ma"] = ["127.0.0.1"]
    due = when(shown["next_attempt_at"])
    assert deliver_due_webhooks(context.uow_factory, relaxed, now=due) == 1
    assert delivery(client, marketplace_headers, pending["id"])["status"] == "delivered"


def test_a_delivery_connects_to_the_address_it_checked_with_the_name_as_host(
    context, client, marketplace_headers, receivers
):
    """The system resolver has never heard of ``hooks.shop.test``: the request can only have reached
    the receiver through the address the check was made on, not through a second lookup."""
    receiver = receivers()
    port = receiver.url.split(":")[2].split("/")[0]
    create_endpoint(client, marketplace_headers, f"http://hooks.shop.test:{port}/hooks")
    record(context, "pay_pinned")
    resolver = FakeResolver(hooks_shop_test=["127.0.0.1"])
    settings = use_settings(context, sender=HttpWebhookSender(allow_private_networks=True, resolver=resolver))
    assert deliver_due_webhooks(context.uow_factory, settings) == 1
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.shop.test:{port}"
    assert resolver.asked == ["hooks.shop.test"]

    record(context, "pay_unresolved")  # the app's own sender asks the system resolver
    assert deliver_due_webhooks(context.uow_factory, context.webhooks) == 1
    assert deliveries(client, marketplace_headers, status="pending")[0]["last_error"] == "dns_error"
