"""Relays, consumers and workers, started from the Procfile as `make run` starts them, answer
/metrics, /healthz and /readyz on their own port: what they have done and have still to do, and
whether what they need answers."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.stack import wait_for_ready
from tests.e2e.stack import Stack
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e

PROCESSES = ("onboarding_relay", "payments_consumer", "payments_worker")


@pytest.fixture(scope="module")
def stack(databases, tmp_path_factory):
    urls = {name: databases.create(f"probes_{name}") for name in ("onboarding", "payments", "accounts")}
    stack = Stack(tmp_path_factory.mktemp("probes"), urls)
    stack.init()
    for name in ("broker", "onboarding", *PROCESSES):
        stack.start(name)
    try:
        assert wait_for_ready({"onboarding": stack.urls["onboarding"]}, 60) == []
        yield stack
    finally:
        stack.stop_all()


def metrics(stack: Stack, process: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{stack.probe_urls[process]}/metrics", timeout=5)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def probe(stack: Stack, process: str, path: str) -> requests.Response:
    return requests.get(f"{stack.probe_urls[process]}{path}", timeout=5)


def answers(stack: Stack, process: str, path: str) -> bool:
    """Whether ``process`` answers 200 on ``path``; a port not open yet (still starting) is no."""
    try:
        return probe(stack, process, path).status_code == 200
    except requests.ConnectionError:
        return False


def register(stack: Stack) -> str:
    response = requests.post(
        f"{stack.urls['onboarding']}/v1/artisans",
        json=artisan_body(),
        headers={"Authorization": f"Bearer {stack.token()}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def consumer_lag(stack: Stack) -> dict[str, float]:
    return {
        dict(labels)["partition"]: sample
        for (name, labels), sample in metrics(stack, "payments_consumer").items()
        if name == "hirfa_consumer_lag_messages" and dict(labels)["topic"] == "onboarding.events"
    }


def test_each_process_shows_its_work_and_is_live_and_ready(stack):
    for name in PROCESSES:
        wait_until(lambda name=name: answers(stack, name, "/readyz"), 60, message=f"{name} ready")
        assert probe(stack, name, "/healthz").json() == {"status": "ok", "process": name.replace("_", "-")}
    assert probe(stack, "onboarding_relay", "/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    # A worker needs no broker: only its database is checked.
    assert probe(stack, "payments_worker", "/readyz").json()["checks"] == {"database": "ok"}

    register(stack)
    register(stack)

    # The relay published both events and has nothing left to publish.
    wait_until(
        lambda: (
            (
                value(
                    metrics(stack, "onboarding_relay"),
                    "hirfa_relay_published_events_total",
                    topic="onboarding.events",
                )
                or 0
            )
            >= 2
        ),
        60,
        message="the relay's published events",
    )
    relay = metrics(stack, "onboarding_relay")
    assert value(relay, "hirfa_outbox_backlog") == 0
    assert value(relay, "hirfa_outbox_oldest_unpublished_seconds") == 0

    # The payments consumer read them: each partition of onboarding.events it reads shows its lag, 0.
    lag = wait_until(
        lambda: (found := consumer_lag(stack)) and len(found) == 3 and not any(found.values()) and found,
        # The consumer's first group join takes a while on the embedded broker.
        90,
        message="the consumer's lag on every partition",
    )
    assert sorted(lag) == ["0", "1", "2"]
    assert value(metrics(stack, "payments_consumer"), "hirfa_loop_seconds_since_last_turn", loop="main") < 10

    # The worker: its queues (empty) and when each of its duties last succeeded.
    worker = metrics(stack, "payments_worker")
    assert value(worker, "hirfa_webhook_deliveries_pending") == 0
    assert value(worker, "hirfa_payments_recovery_backlog", kind="payment") == 0
    assert value(worker, "hirfa_payments_recovery_backlog", kind="refund") == 0
    for duty in ("payments recovered from the gateway", "webhook deliveries dispatched"):
        assert value(worker, "hirfa_worker_duty_last_success_timestamp_seconds", duty=duty) > 0, duty


def test_without_the_broker_the_relay_is_not_ready_but_live_and_its_outbox_shows_what_waits(stack):
    stack.stop("broker")
    try:
        register(stack)  # the API still takes it: the event waits in the outbox
        wait_until(
            lambda: value(metrics(stack, "onboarding_relay"), "hirfa_outbox_backlog") == 1,
            30,
            message="the event waiting in the outbox",
        )
        wait_until(
            lambda: value(metrics(stack, "onboarding_relay"), "hirfa_outbox_oldest_unpublished_seconds") > 1,
            30,
            message="the waiting event's age",
        )
        not_ready = probe(stack, "onboarding_relay", "/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"database": "ok", "broker": "unavailable"}
        assert probe(stack, "onboarding_relay", "/healthz").status_code == 200  # a restart would not help
    finally:
        stack.start("broker")
    wait_until(
        lambda: value(metrics(stack, "onboarding_relay"), "hirfa_outbox_backlog") == 0,
        60,
        message="the outbox drained once the broker is back",
    )
    assert probe(stack, "onboarding_relay", "/readyz").status_code == 200


def pids_counting(directory: Path) -> set[str]:
    """The processes that have counted something in the multiprocess metrics directory."""
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}


def test_an_api_with_several_workers_counts_every_workers_requests_on_metrics(stack, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    stack.start("payments", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    url = stack.urls["payments"]

    def healthz() -> bool:
        try:
            return (
                requests.get(f"{url}/healthz", headers={"Connection": "close"}, timeout=5).status_code == 200
            )
        except requests.RequestException:  # still starting, or too busy to answer in time
            return False

    try:
        served = int(bool(wait_until(healthz, 60, message="payments started")))
        # Until both workers have served some (the second may still be starting on a busy
        # machine): a scrape answered by either must then count them all.
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:
            while len(pids_counting(directory)) < 2 and time.monotonic() < deadline:
                served += sum(pool.map(lambda _: healthz(), range(16)))
        assert len(pids_counting(directory)) == 2, "one worker took every request"
        for _ in range(6):
            counted = value(
                {
                    (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                    for family in text_string_to_metric_families(
                        requests.get(f"{url}/metrics", timeout=30).text
                    )
                    for sample in family.samples
                },
                "hirfa_http_requests_total",
                endpoint="/healthz",
                method="GET",
                status="200",
            )
            assert counted == served
    finally:
        assert stack.stop("payments") == 0


def test_sigterm_stops_each_process_and_its_probes_promptly(stack):
    codes, unclean = stack.stop_many(list(PROCESSES), signal.SIGTERM, timeout=10)
    assert unclean == []
    assert codes == dict.fromkeys(PROCESSES, 0)
    for name in PROCESSES:
        with socket.socket() as client:
            assert client.connect_ex(("127.0.0.1", stack.probe_ports[name])) != 0, name
