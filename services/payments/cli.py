"""``hirfa payments …``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import click

from services.payments.bootstrap import bootstrap
from services.payments.config import load_config
from services.payments.service_layer.backlogs import WorkerBacklogsCollector
from services.payments.service_layer.projections import HANDLERS
from services.payments.service_layer.recovery import recover_waiting
from services.payments.service_layer.webhook_dispatcher import WebhookDispatcher, deliver_due_webhooks
from shared.config import Process
from shared.logging import configure_logging
from shared.runtime import duty_failed, duty_succeeded, run_duty, service_cli, serving_probes, stop_on_signals
from shared.tracing import configure_tracing

cli = service_cli(
    "payments",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    handlers=lambda config: HANDLERS,
    subscribes_to=["onboarding.events", "accounts.events"],
)


# The webhook dispatcher's name on /metrics (its last successful look for due deliveries).
WEBHOOK_DISPATCH = "webhook deliveries dispatched"


@cli.command("worker")
@click.option("--once", is_flag=True, help="One pass of each duty, then exit.")
def worker(once: bool) -> None:
    """Background duties: settle payments and refunds left waiting on the gateway (lost callbacks,
    timeouts) by polling it, and deliver marketplace webhooks with their retries."""
    config = load_config(process=Process.WORKER)
    configure_logging("payments-worker", config.log_level, config.log_json)
    configure_tracing("payments-worker", config)
    context = bootstrap(config)
    settings = context.payments
    hooks = context.webhooks
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.payments.worker")
    uow_factory = context.uow_factory
    recovered = "payments recovered from the gateway"

    def recover() -> dict[str, int]:
        return recover_waiting(uow_factory, settings)

    if once:
        run_duty(log, recovered, recover)
        run_duty(log, "webhook delivery attempts", lambda: deliver_due_webhooks(uow_factory, hooks))
        return
    with serving_probes(
        context,
        "payments-worker",
        broker=False,
        collectors=[WorkerBacklogsCollector(uow_factory, settings)],
        loops=("recovery", "webhooks"),
        idle_seconds=config.worker_interval_seconds,
    ) as heartbeat:
        beat_webhooks = heartbeat.beater("webhooks")

        def webhook_tick(dispatched: bool) -> None:
            beat_webhooks()
            (duty_succeeded if dispatched else duty_failed)(WEBHOOK_DISPATCH)

        # Each duty on its own thread: a slow gateway must not hold up webhook deliveries, nor the
        # reverse. Webhooks are dispatched continuously (a turn starts as soon as a thread is free),
        # not in rounds; on SIGTERM the dispatcher lets the attempts in flight end and be recorded.
        recovery = threading.Thread(
            target=_loop,
            args=(
                log,
                recovered,
                recover,
                stop,
                config.worker_interval_seconds,
                heartbeat.beater("recovery"),
            ),
            name="payments-worker-recovery",
            daemon=True,
        )
        webhooks = threading.Thread(
            target=WebhookDispatcher(uow_factory, hooks).run,
            args=(stop, webhook_tick),
            name="payments-worker-webhooks",
            daemon=True,
        )
        recovery.start()
        webhooks.start()
        stop.wait()
        webhooks.join()  # the attempts in flight end (each within the webhook timeout) and are recorded
        # A gateway poll still in flight is dropped: its transaction never commits, the next start
        # polls that payment again.
        recovery.join(timeout=1.0)


def _loop(
    log: logging.Logger,
    done: str,
    job: Callable[[], int | dict[str, int]],
    stop: threading.Event,
    interval: float,
    heartbeat: Callable[[], None],
) -> None:
    while True:
        heartbeat()
        run_duty(log, done, job)
        if stop.wait(interval):
            return
