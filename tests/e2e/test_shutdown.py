"""Every long-running process exits cleanly within 10 s of SIGTERM, whatever the broker does: it
died while they ran, it was down when they started, or it accepts connections and never answers."""

from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest
import requests

from tests.e2e.stack import Stack
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e

RELAYS = ("onboarding_relay", "payments_relay", "accounts_relay")
CONSUMERS = ("onboarding_consumer", "payments_consumer", "accounts_consumer")
WORKERS = ("onboarding_worker", "accounts_worker", "payments_worker")
LONG_RUNNING = (*RELAYS, *CONSUMERS, *WORKERS)
# What each logs once its SIGTERM handler is in place.
STARTED = {**dict.fromkeys(RELAYS, "outbox relay started"), **dict.fromkeys(CONSUMERS, "consumer started")}
SHUTDOWN_BUDGET_SECONDS = 10


def assert_all_stop_promptly(stack: Stack, situation: str) -> None:
    codes, unclean = stack.stop_many(list(LONG_RUNNING), signal.SIGTERM, timeout=SHUTDOWN_BUDGET_SECONDS)
    logs = {name: stack.log(name)[-1500:] for name in LONG_RUNNING if codes.get(name) != 0}
    assert unclean == [], f"{situation}: {unclean}\n{logs}"
    assert codes == dict.fromkeys(LONG_RUNNING, 0), f"{situation}: {codes}\n{logs}"


def start_all_and_wait_until_running(stack: Stack) -> None:
    seen = {name: stack.log(name).count(STARTED[name]) for name in STARTED}
    for name in LONG_RUNNING:
        stack.start(name)
    for name in STARTED:
        wait_until(
            lambda name=name: stack.log(name).count(STARTED[name]) > seen[name],
            timeout=60,
            message=f"{name} started",
        )
    for name in LONG_RUNNING:
        stack.wait_started(name, 10)


def register(stack: Stack, token: str) -> str:
    response = requests.post(
        f"{stack.urls['onboarding']}/v1/artisans",
        json=artisan_body(),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_shutdown_is_prompt_whatever_the_broker_does(stack):
    token = stack.token()
    for name in LONG_RUNNING:
        stack.wait_started(name)

    # The broker dies under running processes; the relay has an event it cannot publish.
    stack.stop("broker")
    artisan_id = register(stack, token)
    time.sleep(3)  # the relay is at its event, waiting on the dead broker
    assert_all_stop_promptly(stack, "broker died mid-run")

    # They start while the broker is down.
    start_all_and_wait_until_running(stack)
    assert_all_stop_promptly(stack, "broker down from the start")

    # The broker's port takes connections and never answers (the kernel completes the handshake
    # on a listening socket nobody accepts from).
    with socket.socket() as hanging:
        hanging.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hanging.bind(("127.0.0.1", stack.ports["broker"]))
        hanging.listen(64)
        start_all_and_wait_until_running(stack)
        assert_all_stop_promptly(stack, "broker hanging")

    # Nothing was lost meanwhile: with the broker back, the event still reaches accounts.
    stack.start("broker")
    for name in LONG_RUNNING:
        stack.start(name)
    wait_until(
        lambda: (
            requests.get(
                f"{stack.urls['accounts']}/v1/artisans/{artisan_id}/balance",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            ).status_code
            == 200
        ),
        timeout=90,
        message="the event delivered once the broker returned",
    )
