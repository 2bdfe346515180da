"""The real processes, started from deploy/Procfile, driven over HTTP."""

from __future__ import annotations

import signal
import uuid

import pytest
import requests
from openapi_spec_validator import validate

from shared.events.consumer import FAULT_EXIT_CODE
from tests.e2e.stack import Stack
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e


def register(stack: Stack, token: str) -> str:
    response = requests.post(
        f"{stack.urls['onboarding']}/v1/artisans",
        json=artisan_body(),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def balance(stack: Stack, token: str, artisan_id: str) -> requests.Response:
    return requests.get(
        f"{stack.urls['accounts']}/v1/artisans/{artisan_id}/balance",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_first_slice_over_http(stack):
    token = stack.token()
    artisan_id = register(stack, token)
    response = wait_until(
        lambda: (r := balance(stack, token, artisan_id)).status_code == 200 and r, timeout=30
    )
    assert response.json()["pending"] == {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"}
    assert response.json()["available"] == {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"}
    payee = wait_until(
        lambda: (
            (
                r := requests.get(
                    f"{stack.urls['payments']}/v1/payees/{artisan_id}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
            ).status_code
            == 200
            and r
        ),
        timeout=30,
    )
    assert payee.json()["kyc_tier"] == 0
    assert payee.headers["X-Request-Id"]


def test_openapi_documents_are_valid(stack):
    for name, url in stack.urls.items():
        document = requests.get(f"{url}/openapi.json", timeout=5).json()
        validate(document)
        assert document["openapi"].startswith("3."), name
        assert requests.get(f"{url}/docs", timeout=5).status_code == 200


def test_consumer_crash_between_commits_has_no_double_effect(stack):
    """The consumer dies after its database commit, before committing the offset."""
    token = stack.token()
    stack.stop("accounts_consumer")
    crashing = stack.start("accounts_consumer", ACCOUNTS_FAULT_INJECTION="crash_after_db_commit")
    artisan_id = register(stack, token)
    assert crashing.wait(60) == FAULT_EXIT_CODE
    assert balance(stack, token, artisan_id).status_code == 200  # the effect was committed

    stack.start("accounts_consumer")
    wait_until(
        lambda: "event already applied; skipped" in stack.log("accounts_consumer"),
        timeout=60,
        message="redelivery skipped by the inbox",
    )
    # A second artisan still flows, and the first has exactly its two accounts.
    second = register(stack, token)
    wait_until(lambda: balance(stack, token, second).status_code == 200, timeout=30)
    assert set(balance(stack, token, artisan_id).json()) == {
        "object",
        "artisan_id",
        "pending",
        "available",
        "kyc_tier",
        "cap",
    }


def test_broker_outage_loses_nothing(stack):
    token = stack.token()
    assert stack.stop("broker") is not None
    wait_until(
        lambda: requests.get(f"{stack.urls['onboarding']}/readyz", timeout=2).status_code == 503,
        timeout=10,
        message="readiness reports the broker down",
    )
    artisan_id = register(stack, token)  # the API keeps working; the event waits in the outbox
    assert balance(stack, token, artisan_id).status_code == 404

    stack.start("broker")
    # The embedded broker keeps topics and group offsets in memory: the restarted one has lost
    # them. Nobody restarts anything: the relays publish again what it lost, and the running
    # consumers go back to read the topics made anew.
    wait_until(
        lambda: balance(stack, token, artisan_id).status_code == 200,
        timeout=90,
        message="event delivered after the broker returned",
    )
    stack.wait_ready(30)


def test_every_process_stops_cleanly_on_sigterm(stack):
    for name in ("payments_consumer", "onboarding_relay", "payments"):
        stack.wait_started(name)
        assert stack.stop(name, signal.SIGTERM) == 0, stack.log(name)[-1500:]
