"""The probe server of relays, consumers and workers (shared/probes.py): /metrics, /healthz and
/readyz on a port of its own, started and stopped with the process's work, on loopback only."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import pytest
import requests
import sqlalchemy as sa
from kafka.structs import TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from sqlalchemy.orm import sessionmaker

from shared.config import ConfigError, ServiceConfig
from shared.context import Models, ServiceContext
from shared.events.consumer import EventConsumer
from shared.probes import Heartbeat, ProbeServer, process_registry, readiness
from shared.runtime import run_duty, serving_probes
from tests.support import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def probe_server(heartbeat=None, ready_checks=None, registry=None, port=0) -> ProbeServer:
    return ProbeServer(
        "127.0.0.1",
        port,
        registry=registry or CollectorRegistry(),
        heartbeat=heartbeat or Heartbeat(60),
        ready_checks=ready_checks or {},
        process="payments-relay",
    )


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# -- the server's life --------------------------------------------------------------------------


def test_a_server_on_port_0_takes_a_free_port_and_answers_the_three_paths():
    registry = CollectorRegistry()
    Counter("hirfa_test_things_total", "Things", registry=registry).inc(3)
    with probe_server(registry=registry, ready_checks={"database": lambda: True}) as server:
        assert server.port > 0
        health = requests.get(f"{server.url}/healthz", timeout=2)
        ready = requests.get(f"{server.url}/readyz", timeout=2)
        metrics = requests.get(f"{server.url}/metrics", timeout=2)
        missing = requests.get(f"{server.url}/other", timeout=2)
        posted = requests.post(f"{server.url}/healthz", timeout=2)

    assert (health.status_code, health.json()) == (200, {"status": "ok", "process": "payments-relay"})
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert "hirfa_test_things_total 3.0" in metrics.text
    assert (missing.status_code, posted.status_code) == (404, 405)


def test_stop_is_prompt_closes_the_port_and_a_new_server_can_take_it_at_once():
    server = probe_server().start()
    port = server.port
    requests.get(f"{server.url}/healthz", timeout=2)  # a connection served leaves TIME_WAIT behind

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    assert refused(port)
    server.stop()  # a second stop is harmless

    with probe_server(port=port) as again:  # a restarted process binds its port again
        assert requests.get(f"{again.url}/healthz", timeout=2).status_code == 200


def test_a_client_that_connects_and_says_nothing_does_not_hold_up_the_stop():
    server = probe_server().start()
    with socket.create_connection(("127.0.0.1", server.port)):
        time.sleep(0.2)  # its request thread is waiting for a request line
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0


def test_a_port_in_use_is_refused_at_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            probe_server(port=taken.getsockname()[1]).start()


# -- readiness and liveness ---------------------------------------------------------------------


def test_readiness_names_what_does_not_answer_and_a_check_that_raises_is_unavailable():
    def database_away() -> bool:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    assert readiness({"database": lambda: True, "broker": lambda: True}) == (
        True,
        {"database": "ok", "broker": "ok"},
    )
    checks = {"database": database_away, "broker": lambda: False}
    assert readiness(checks) == (False, {"database": "unavailable", "broker": "unavailable"})
    with probe_server(ready_checks=checks) as server:
        answer = requests.get(f"{server.url}/readyz", timeout=2)
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "process": "payments-relay",
        "checks": {"database": "unavailable", "broker": "unavailable"},
    }


def test_a_loop_silent_past_its_allowance_fails_liveness_until_it_turns_again():
    clock = Clock()
    heartbeat = Heartbeat(30, loops=("recovery", "webhooks"), clock=clock)
    beat_webhooks = heartbeat.beater("webhooks")
    with probe_server(heartbeat=heartbeat) as server:
        clock.now += 25
        beat_webhooks()
        assert requests.get(f"{server.url}/healthz", timeout=2).status_code == 200

        clock.now += 10  # recovery has been silent 35 s, webhooks 10 s
        stalled = requests.get(f"{server.url}/healthz", timeout=2)
        assert stalled.status_code == 503
        assert stalled.json()["loops"] == ["recovery"]

        heartbeat.beat("recovery")
        assert requests.get(f"{server.url}/healthz", timeout=2).status_code == 200
    with pytest.raises(KeyError):
        heartbeat.beater("payouts")


def test_the_heartbeat_shows_on_metrics_beside_the_default_registry():
    clock = Clock()
    heartbeat = Heartbeat(30, clock=clock)
    clock.now += 12
    text = "\n".join(
        f"{sample.name}{sample.labels} {sample.value}"
        for family in process_registry([heartbeat]).collect()
        for sample in family.samples
    )
    assert "hirfa_loop_seconds_since_last_turn{'loop': 'main'} 12.0" in text
    # The process's own metrics (its CPU and memory, counters kept by the code) are there too.
    assert "process_cpu_seconds_total" in text or "python_info" in text


# -- serving_probes: the processes' side ------------------------------------------------------


def context_with(**settings) -> ServiceContext:
    engine = sa.create_engine("sqlite://")
    config = ServiceConfig.from_env("payments", environ={}, database_url="sqlite://", **settings)
    return ServiceContext(
        config=config,
        engine=engine,
        session_factory=sessionmaker(engine),
        models=Models(outbox=None, inbox=None, idempotency_key=None, broker_topic=None),
        uow_factory=lambda: None,
    )


def test_the_probes_serve_while_the_block_runs_and_are_gone_after_it():
    port = free_port()
    context = context_with(probe_port=port)
    with serving_probes(context, "payments-worker", broker=False, idle_seconds=2) as heartbeat:
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/healthz", timeout=2).json()["process"] == "payments-worker"
        assert requests.get(f"{url}/readyz", timeout=2).json()["checks"] == {"database": "ok"}
        assert heartbeat.stall_seconds == context.config.probe_stall_seconds + 2
    assert refused(port)


def test_without_a_probe_port_nothing_listens_and_the_loops_still_get_a_heartbeat():
    context = context_with()
    assert context.config.probe_port is None
    before = {thread.name for thread in threading.enumerate()}
    with serving_probes(context, "payments-worker", broker=False) as heartbeat:
        heartbeat.beat()
        assert "probe-server" not in {thread.name for thread in threading.enumerate()} - before


def test_two_processes_given_one_port_the_second_stops_at_start_naming_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        context = context_with(probe_port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="PAYMENTS_PROBE_PORT"):
            with serving_probes(context, "payments-relay", broker=True):
                pass


def test_the_probe_settings_are_read_from_the_environment():
    def config(**environ: str) -> ServiceConfig:
        return ServiceConfig.from_env("payments", environ={"PAYMENTS_DATABASE_URL": "sqlite://", **environ})

    assert config().probe_port is None
    assert config(PROBE_PORT="").probe_port is None
    assert config(PROBE_PORT="0").probe_port == 0
    assert config(PROBE_PORT="9100", PAYMENTS_PROBE_PORT="8102").probe_port == 8102
    with pytest.raises(ConfigError, match="PROBE_PORT"):
        config(PROBE_PORT="70000")
    with pytest.raises(ConfigError, match="PROBE_PORT"):
        config(PROBE_PORT="ninety")
    with pytest.raises(ConfigError, match="PROBE_STALL_SECONDS"):
        config(PROBE_STALL_SECONDS="0")


# -- what the loops record -----------------------------------------------------------------------


def test_a_duty_records_its_last_success_and_counts_its_failures():
    import logging

    def sample(name: str, duty: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"duty": duty})

    duty = "test duty that fails once"
    failures_before = sample("hirfa_worker_duty_failures_total", duty) or 0.0

    def fail() -> int:
        raise RuntimeError("the bank is down")

    run_duty(logging.getLogger("test"), duty, fail)
    assert sample("hirfa_worker_duty_failures_total", duty) == failures_before + 1
    assert sample("hirfa_worker_duty_last_success_timestamp_seconds", duty) is None
    run_duty(logging.getLogger("test"), duty, lambda: None)  # not due this pass: it did not run
    assert sample("hirfa_worker_duty_last_success_timestamp_seconds", duty) is None

    started = time.time()
    run_duty(logging.getLogger("test"), duty, lambda: 0)
    assert sample("hirfa_worker_duty_last_success_timestamp_seconds", duty) >= int(started)
    assert sample("hirfa_worker_duty_failures_total", duty) == failures_before + 1


class AssignedPartitions:
    """The client calls the consumer makes to show its lag, over a script of assignments: each
    poll moves to the next step and records the lag gauge as the previous step left it."""

    def __init__(self, steps: list[dict[TopicPartition, tuple[int | None, int]]], stop: threading.Event):
        self.steps = steps
        self.step = -1
        self.stop = stop
        self.seen: list[dict[tuple[str, str], float]] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        if self.step >= 0:
            self.seen.append(lag_samples())
        self.step += 1
        if self.step == len(self.steps):
            self.stop.set()
        return {}

    def current(self) -> dict[TopicPartition, tuple[int | None, int]]:
        return self.steps[min(self.step, len(self.steps) - 1)]

    def assignment(self) -> set[TopicPartition]:
        return set(self.current())

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.current()[tp][0]

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.current()[tp][1]

    def close(self) -> None:
        pass


def lag_samples() -> dict[tuple[str, str], float]:
    return {
        (sample.labels["topic"], sample.labels["partition"]): sample.value
        for family in REGISTRY.collect()
        if family.name == "hirfa_consumer_lag_messages"
        for sample in family.samples
        if sample.labels["consumer"] == "hirfa-lag-test"
    }


def test_the_consumer_shows_each_assigned_partitions_lag_and_forgets_a_revoked_one():
    a, b = TopicPartition("onboarding.events", 0), TopicPartition("onboarding.events", 1)
    stop = threading.Event()
    client = AssignedPartitions(
        [
            {a: (10, 4), b: (None, 0)},  # b's end is not known yet: not shown
            {a: (12, 12), b: (7, 2)},
            {b: (9, 9)},  # a went to another member of the group
        ],
        stop,
    )
    consumer = EventConsumer(
        name="hirfa-lag-test",
        handlers={},
        uow_factory=lambda: None,
        inbox_model=None,
        consumer_factory=lambda: client,
        producer_factory=lambda: SimpleNamespace(close=lambda **_: None),
        dead_letter_topic="payments.dead-letter",
    )
    beats: list[float] = []
    consumer.run(stop, heartbeat=lambda: beats.append(time.monotonic()))

    assert client.seen == [
        {("onboarding.events", "0"): 6.0},
        {("onboarding.events", "0"): 0.0, ("onboarding.events", "1"): 5.0},
        {("onboarding.events", "1"): 0.0},
    ]
    assert lag_samples() == {}  # the client closed when the consumer stopped: no stale lag
    assert len(beats) == 4  # a turn per poll
