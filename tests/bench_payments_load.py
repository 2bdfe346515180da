"""The load ``tests/bench_payments.py`` sends, as a locust file: locust runs it headless in its own
process (locust patches the standard library with gevent on import, so nothing else imports this).

What each simulated client does is told by the environment:

- ``BENCH_SCENARIO``: ``bare`` (the bare endpoint's insert), ``create`` (``POST /v1/payments``) or
  ``create_confirm`` (a payment created, then confirmed with an approved card through the M2T
  sandbox; each pair is also recorded as one ``create+confirm`` sample, for its latency);
- ``BENCH_TOKEN``: the marketplace's access token; ``BENCH_ARTISANS``: the payees, comma-separated;
  ``BENCH_CARD_TOKEN``: the sandbox's token of an approved card;
- ``BENCH_RATE_PER_USER``: requests (or pairs) per second each client sends, 0 for as fast as the
  server answers.

A request that does not answer what it should (201 for a creation, ``succeeded`` for a
confirmation) is a failure: the bench reports failures beside the throughput.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid

import gevent
from locust import constant, constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

SCENARIO = os.environ.get("BENCH_SCENARIO", "create")
TOKEN = os.environ.get("BENCH_TOKEN", "")
ARTISANS = [artisan for artisan in os.environ.get("BENCH_ARTISANS", "").split(",") if artisan]
CARD_TOKEN = os.environ.get("BENCH_CARD_TOKEN", "")
RATE_PER_USER = float(os.environ.get("BENCH_RATE_PER_USER", "0"))


def payment_body() -> bytes:
    return json.dumps(
        {
            "artisan_id": random.choice(ARTISANS),
            "amount": 1_000,
            "currency": "MAD",
            "application_fee": 100,
            "payment_method_type": "card",
            "order_reference": f"ORD-{uuid.uuid4().hex[:12]}",
        }
    ).encode()


class Marketplace(FastHttpUser):
    wait_time = constant_throughput(RATE_PER_USER) if RATE_PER_USER > 0 else constant(0)

    def on_start(self) -> None:
        # Paced clients all started at once would send in lockstep, a burst of every client each
        # period: each starts at its own point of the period instead, as independent clients do.
        if RATE_PER_USER > 0:
            gevent.sleep(random.uniform(0, 1 / RATE_PER_USER))

    def headers(self, *, key: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return headers

    def create(self, path: str, name: str) -> str | None:
        with self.client.post(
            path, data=payment_body(), headers=self.headers(), name=name, catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return None
            return str(response.json()["id"])

    @task
    def act(self) -> None:
        if SCENARIO == "bare":
            self.create("/payments", "bare insert")
        elif SCENARIO == "create":
            self.create("/v1/payments", "create")
        else:
            self.create_and_confirm()

    def create_and_confirm(self) -> None:
        started = time.perf_counter()
        payment_id = self.create("/v1/payments", "create")
        if payment_id is None:
            return
        with self.client.post(
            f"/v1/payments/{payment_id}/confirm",
            data=json.dumps({"card_token": CARD_TOKEN}).encode(),
            headers=self.headers(key=False),
            name="confirm",
            catch_response=True,
        ) as response:
            succeeded = response.status_code == 200 and response.json().get("status") == "succeeded"
            if not succeeded:
                response.failure(f"{response.status_code}: {response.text[:200]}")
        self.environment.events.request.fire(
            request_type="PAIR",
            name="create+confirm",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if succeeded else RuntimeError("not succeeded"),
            context={},
        )
