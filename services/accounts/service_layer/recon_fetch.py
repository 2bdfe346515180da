"""Fetching each day's files once the day is over: every gateway's settlement file, then every
configured bank's statement, each run like an upload (``reconciliation.import_file``).

A day is fetched once: ``recon_fetched_days`` remembers it with its run. The worker fetches every
day after the last one fetched (the first time: ``ReconciliationSettings.first_day``, else
yesterday) up to yesterday (UTC), oldest first, settlement files before statements so a
statement's batch credits find the lines they pay. A party whose fetch fails (its server down, a
malformed file) stops there for this pass and is tried again at the next, from the same day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from services.accounts.adapters.reconciliation_orm import ReconFetchedDay
from services.accounts.domain.ports import SettlementSource, StatementSource
from services.accounts.domain.reconciliation import Source
from services.accounts.service_layer.reconciliation import (
    ReconciliationSettings,
    RunRequest,
    finish_unfinished_runs,
    import_file,
)
from shared.db import UnitOfWork, utcnow

log = logging.getLogger(__name__)

SYSTEM = "accounts-worker"
MAX_DAYS_PER_PASS = 31  # a worker that was down a long time catches up a month per pass


@dataclasses.dataclass(frozen=True)
class Fetched:
    source: str
    party: str  # the gateway, or the bank code
    day: dt.date
    run_id: str
    created: bool


def _days_due(
    uow_factory: Callable[[], UnitOfWork], source: str, party: str, first_day: dt.date | None, today: dt.date
) -> list[dt.date]:
    with uow_factory() as uow:
        assert uow.session is not None
        last = uow.session.scalar(
            sa.select(sa.func.max(ReconFetchedDay.day)).where(
                ReconFetchedDay.source == source, ReconFetchedDay.party == party
            )
        )
    start = last + dt.timedelta(days=1) if last else (first_day or today - dt.timedelta(days=1))
    days = []
    day = start
    while day < today and len(days) < MAX_DAYS_PER_PASS:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def fetch_day(
    uow_factory: Callable[[], UnitOfWork],
    settings: ReconciliationSettings,
    source: str,
    party: str,
    day: dt.date,
    fetch: Callable[[], bytes],
) -> Fetched:
    """Fetch one day's file of one party, run it, and remember the day as fetched."""
    data = fetch()
    if source == Source.GATEWAY_SETTLEMENT:
        request = RunRequest(source=source, name=f"{party}-settlement-{day}.csv", gateway=party, day=day)
    else:
        fmt = settings.statement_format
        request = RunRequest(
            source=source, name=f"{party}-statement-{day}.{fmt}", bank_code=party, format=fmt
        )
    run, created = import_file(uow_factory, settings, io.BytesIO(data), request, SYSTEM)
    with uow_factory() as uow:
        assert uow.session is not None
        if uow.session.get(ReconFetchedDay, (source, party, day)) is None:
            uow.session.add(
                ReconFetchedDay(source=source, party=party, day=day, run_id=run.id, fetched_at=utcnow())
            )
            uow.commit()
    return Fetched(source, party, day, run.id, created)


def _fetchers(
    settings: ReconciliationSettings,
    settlement_sources: Mapping[str, SettlementSource],
    statement_source: StatementSource | None,
) -> list[tuple[str, str, Callable[[dt.date], bytes]]]:
    """(source, party, fetch(day)) for every gateway and bank there is a source for."""
    fetchers: list[tuple[str, str, Callable[[dt.date], bytes]]] = []
    for gateway in settings.gateways:
        settlement = settlement_sources.get(gateway)
        if settlement is None:
            log.warning("no settlement source for gateway %s: its files are not fetched", gateway)
            continue
        fetchers.append(
            (
                Source.GATEWAY_SETTLEMENT,
                gateway,
                lambda day, s=settlement: s.fetch_settlement(day.isoformat()),
            )
        )
    if statement_source is not None:
        for bank_code in settings.statement_banks:
            fetchers.append(
                (
                    Source.BANK_STATEMENT,
                    bank_code,
                    lambda day, b=bank_code, s=statement_source: s.fetch_statement(
                        b, day.isoformat(), settings.statement_format
                    ),
                )
            )
    return fetchers


def fetch_due_days(
    uow_factory: Callable[[], UnitOfWork],
    settings: ReconciliationSettings,
    settlement_sources: Mapping[str, SettlementSource],
    statement_source: StatementSource | None,
    *,
    today: dt.date | None = None,
) -> int:
    """Finish the runs a crash left unfinished, then fetch and run every day that is over and not
    fetched yet; how many runs were finished or run."""
    today = today or utcnow().date()
    done = finish_unfinished_runs(uow_factory, settings)
    for source, party, fetch in _fetchers(settings, settlement_sources, statement_source):
        for day in _days_due(uow_factory, source, party, settings.first_day, today):
            try:
                fetch_day(uow_factory, settings, source, party, day, lambda d=day, f=fetch: f(d))
            except Exception:
                log.exception("fetching %s of %s for %s failed: tried again next pass", source, party, day)
                break
            done += 1
    return done


def fetch_days_now(
    uow_factory: Callable[[], UnitOfWork],
    settings: ReconciliationSettings,
    settlement_sources: Mapping[str, SettlementSource],
    statement_source: StatementSource | None,
    day: dt.date,
) -> list[Fetched]:
    """Fetch ``day``'s files of every party now, fetched before or not (the same file again
    changes nothing)."""
    return [
        fetch_day(uow_factory, settings, source, party, day, lambda f=fetch: f(day))
        for source, party, fetch in _fetchers(settings, settlement_sources, statement_source)
    ]
