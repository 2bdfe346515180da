"""``hirfa accounts …``."""

from __future__ import annotations

from pathlib import Path

import click

from services.accounts.app import bootstrap
from services.accounts.config import load_config
from services.accounts.service_layer.money_events import make_money_handlers, release_due_holds
from services.accounts.service_layer.projections import make_handlers
from shared.runtime import service_cli


def _handlers():
    config = load_config()
    return {
        **make_handlers(config.ledger_currency),
        **make_money_handlers(config.ledger_currency, config.pending_hold),
    }


cli = service_cli(
    "accounts",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    handlers=_handlers,
    subscribes_to=["onboarding.events", "payments.events"],
)


@cli.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit.")
def worker(once: bool) -> None:
    """Scheduled ledger jobs: release pending funds whose hold period is over."""
    import logging

    from shared.runtime import stop_on_signals

    context = bootstrap()
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.accounts.worker")
    while True:
        try:
            released = release_due_holds(context.uow_factory)
            if released:
                log.info("pending funds released", extra={"holds": released})
        except Exception:  # noqa: BLE001 - a worker pass must never kill the worker
            log.exception("worker pass failed")
        if once or stop.wait(context.config.worker_interval_seconds):
            return
