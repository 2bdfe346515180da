"""``hirfa accounts …``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import click

from services.accounts.bootstrap import bootstrap
from services.accounts.config import load_config
from services.accounts.service_layer.bank_transfers import return_waiting_payout_funds, sync_payouts
from services.accounts.service_layer.money_events import make_money_handlers, release_due_holds
from services.accounts.service_layer.parked_events import make_after_batch, post_all_parked_events
from services.accounts.service_layer.payout_schedules import run_payout_schedules
from services.accounts.service_layer.projections import make_handlers
from shared.auth.keys import SigningKeyStore
from shared.logging import configure_logging
from shared.runtime import run_duty, service_cli, stop_on_signals


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
    # Every batch gives its artisans' parked money events another try (parked_events.py).
    after_batch=make_after_batch,
)


@cli.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit.")
def worker(once: bool) -> None:
    """Scheduled ledger jobs: release pending funds whose hold period is over, post parked money
    events that now can be, return failed payouts' funds that were waiting for room under the
    cap, create the automatic payouts that are due, submit payouts the bank
    never accepted, poll those it left unanswered."""
    config = load_config()
    configure_logging("accounts-worker", config.log_level, config.log_json)
    context = bootstrap(config)
    settings = context.payouts
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.accounts.worker")
    uow_factory = context.uow_factory
    handlers = _handlers()
    duties: list[tuple[str, Callable[[], int | dict[str, int]]]] = [
        ("pending funds released", lambda: release_due_holds(uow_factory)),
        ("parked money events posted", lambda: post_all_parked_events(uow_factory, handlers)),
        ("failed payouts' funds returned", lambda: return_waiting_payout_funds(uow_factory)),
        ("automatic payouts created", lambda: run_payout_schedules(uow_factory, settings)),
        ("payouts synced with the bank", lambda: sync_payouts(uow_factory, settings)),
    ]
    while True:
        # Each duty on its own: one failing (the bank is down, say) must not hold up the others.
        for done, duty in duties:
            if stop.is_set():
                return  # a stop request ends the pass: the next start picks up where it left off
            run_duty(log, done, duty)
        if once or stop.wait(context.config.worker_interval_seconds):
            return


@cli.group(
    "statement-keys", help="The keys that sign income statements (published at /.well-known/jwks.json)."
)
def statement_keys() -> None:
    pass


@statement_keys.command("rotate")
def rotate_statement_key() -> None:
    """Add a statement signing key in ACCOUNTS_STATEMENT_KEYS_DIR; it signs from now on. Older keys
    stay published (statements they signed still verify) until their files are deleted."""
    kid = SigningKeyStore(load_config().statement_keys_directory).generate()
    click.echo(f"new statement signing key: {kid}")
