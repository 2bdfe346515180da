"""``hirfa accounts …``."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from services.accounts.bootstrap import bootstrap
from services.accounts.config import AccountsConfig, load_config
from services.accounts.context import AccountsContext
from services.accounts.domain.ports import SettlementSource, StatementSource
from services.accounts.service_layer.bank_transfers import return_waiting_payout_funds, sync_payouts
from services.accounts.service_layer.commission_payouts import run_commission_payout_schedules
from services.accounts.service_layer.completeness import LedgerGapsCollector, check_completeness
from services.accounts.service_layer.money_events import make_money_handlers, release_due_holds
from services.accounts.service_layer.parked_events import (
    ParkedEventsCollector,
    make_after_batch,
    post_all_parked_events,
)
from services.accounts.service_layer.payout_schedules import run_payout_schedules
from services.accounts.service_layer.projections import make_handlers
from services.accounts.service_layer.recon_cases import close_approved_write_offs
from services.accounts.service_layer.recon_fetch import fetch_days_now, fetch_due_days
from services.accounts.service_layer.reconciliation import RunRequest, import_file
from shared.auth.keys import SigningKeyStore
from shared.config import Process
from shared.logging import configure_logging
from shared.runtime import run_duty, service_cli, serving_probes, stop_on_signals
from shared.tracing import configure_tracing


def _handlers(config: AccountsConfig):
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
    cap, create the automatic payouts that are due (artisans' and marketplaces' commission), submit
    payouts the bank never accepted, poll those it left unanswered; fetch and reconcile each day's
    settlement files and bank statements once the day is over; every ACCOUNTS_COMPLETENESS_CHECK_SECONDS,
    check that every payment that succeeded reached the ledger (a case for each that did not)."""
    config = load_config(process=Process.WORKER)
    configure_logging("accounts-worker", config.log_level, config.log_json)
    configure_tracing("accounts-worker", config)
    context = bootstrap(config)
    settings = context.payouts
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.accounts.worker")
    uow_factory = context.uow_factory
    handlers = _handlers(config)
    duties: list[tuple[str, Callable[[], int | dict[str, int] | None]]] = [
        ("pending funds released", lambda: release_due_holds(uow_factory)),
        ("parked money events posted", lambda: post_all_parked_events(uow_factory, handlers)),
        ("failed payouts' funds returned", lambda: return_waiting_payout_funds(uow_factory)),
        ("automatic payouts created", lambda: run_payout_schedules(uow_factory, settings)),
        ("commission payouts created", lambda: run_commission_payout_schedules(uow_factory, settings)),
        ("payouts synced with the bank", lambda: sync_payouts(uow_factory, settings)),
        ("approved write-offs closed", lambda: close_approved_write_offs(uow_factory)),
        (
            "reconciliation files fetched",
            lambda: fetch_due_days(uow_factory, context.reconciliation, *_reconciliation_sources(context)),
        ),
        (
            "ledger completeness checked",
            _every(config.completeness_check_seconds, lambda: _check_completeness(context)),
        ),
    ]
    if once:
        _run_passes(duties, stop, log, once=True)
        return
    with serving_probes(
        context,
        "accounts-worker",
        broker=False,
        # The completeness check's open gaps (as accounts' API shows them) and the parked events.
        collectors=[LedgerGapsCollector(uow_factory), ParkedEventsCollector(uow_factory)],
        idle_seconds=config.worker_interval_seconds,
    ) as heartbeat:
        _run_passes(
            duties, stop, log, once=False, heartbeat=heartbeat.beat, interval=config.worker_interval_seconds
        )


def _run_passes(
    duties: list[tuple[str, Callable[[], int | dict[str, int] | None]]],
    stop: threading.Event,
    log: logging.Logger,
    *,
    once: bool,
    heartbeat: Callable[[], None] = lambda: None,
    interval: float = 0.0,
) -> None:
    while True:
        # Each duty on its own: one failing (the bank is down, say) must not hold up the others.
        for done, duty in duties:
            if stop.is_set():
                return  # a stop request ends the pass: the next start picks up where it left off
            heartbeat()
            run_duty(log, done, duty)
        if once or stop.wait(interval):
            return


def _check_completeness(context: AccountsContext) -> dict[str, int]:
    return check_completeness(
        context.uow_factory, context.payments_view, grace=context.config.completeness_grace
    )


def _every(
    seconds: float, duty: Callable[[], int | dict[str, int]]
) -> Callable[[], int | dict[str, int] | None]:
    """``duty`` at most once every ``seconds`` (never when 0), however often the worker passes; a
    pass it is not due in is no run (None), so not its last success either."""
    due_at = 0.0

    def when_due() -> int | dict[str, int] | None:
        nonlocal due_at
        if not seconds or time.monotonic() < due_at:
            return None
        due_at = time.monotonic() + seconds  # a failing duty waits its interval too
        return duty()

    return when_due


@cli.group(
    "statement-keys", help="The keys that sign income statements (published at /.well-known/jwks.json)."
)
def statement_keys() -> None:
    pass


@statement_keys.command("rotate")
def rotate_statement_key() -> None:
    """Add a statement signing key in ACCOUNTS_STATEMENT_KEYS_DIR; it signs from now on. Older keys
    stay published (statements they signed still verify) until their files are deleted."""
    kid = SigningKeyStore(load_config(process=Process.COMMAND).statement_keys_directory).generate()
    click.echo(f"new statement signing key: {kid}")


def _reconciliation_sources(
    context: AccountsContext,
) -> tuple[Mapping[str, SettlementSource], StatementSource]:
    """The gateways' settlement sources and the banks' statement source the context wires."""
    return context.settlement_sources, context.statement_source


def _count_lines(path: Path) -> int:
    """Lines after the header, for the progress bar's length (one quick pass, constant memory)."""
    with path.open("rb") as stream:
        return max(sum(1 for _ in stream) - 1, 0)


@cli.command("reconcile")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source", type=click.Choice(["gateway_settlement", "bank_statement"]), help="What FILE is (with FILE)."
)
@click.option("--gateway", default="m2t", show_default=True, help="The acquirer of a settlement file.")
@click.option("--bank-code", default=None, help="The bank of a statement (default: the statement's).")
@click.option(
    "--format", "format_", type=click.Choice(["mt940", "camt053"]), help="A statement's format (sniffed)."
)
@click.option(
    "--fetch", is_flag=True, help="Fetch the day's files from every gateway and bank instead of FILE."
)
@click.option("--day", type=click.DateTime(formats=["%Y-%m-%d"]), help="With --fetch: the day (YYYY-MM-DD).")
def reconcile(
    file: Path | None,
    source: str | None,
    gateway: str,
    bank_code: str | None,
    format_: str | None,
    fetch: bool,
    day: dt.datetime | None,
) -> None:
    """Reconcile FILE (a settlement file or a bank statement) against the ledger, with a progress
    bar; or, with --fetch --day, fetch and reconcile that day's files now."""
    # Fetching calls M2T and the bank as the worker does, with its secrets; a FILE needs none.
    config = load_config(process=Process.WORKER if fetch else Process.COMMAND)
    configure_logging("accounts-reconcile", config.log_level, config.log_json)
    configure_tracing("accounts-reconcile", config)
    context = bootstrap(config)
    if fetch:
        if day is None or file is not None:
            raise click.UsageError("--fetch takes --day YYYY-MM-DD and no FILE")
        for fetched in fetch_days_now(
            context.uow_factory, context.reconciliation, *_reconciliation_sources(context), day.date()
        ):
            click.echo(f"{fetched.source} {fetched.party} {fetched.day}: run {fetched.run_id}")
        return
    if file is None or source is None:
        raise click.UsageError("give FILE and --source (or --fetch --day)")
    request = RunRequest(
        source=source,
        name=file.name,
        gateway=gateway if source == "gateway_settlement" else None,
        bank_code=bank_code,
        format=format_,
    )
    # A settlement file's lines are staged, then posted: the bar counts both.
    length = 2 * _count_lines(file) if source == "gateway_settlement" else None
    with (
        file.open("rb") as stream,
        click.progressbar(length=length, label="staging and posting lines") as bar,
    ):
        run, created = import_file(
            context.uow_factory, context.reconciliation, stream, request, "cli", progress=bar.update
        )
    click.echo(f"run {run.id} {'completed' if created else 'already ran for this file'}: {run.counts}")
