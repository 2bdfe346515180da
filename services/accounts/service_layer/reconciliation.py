"""Reconciliation runs: a received file is kept, staged, matched against the ledger in SQL, posted.

A run is one file (one per SHA-256: the same file again returns the same run and changes nothing),
done in one transaction, so a file that turns out malformed half-way imports nothing:

1. The file goes to the file store (streamed, kept read-only under its hash).
2. In one transaction (a malformed file imports nothing), its lines are staged and matched: a
   settlement file's through a temporary staging table, copied in bulk when the file is plain,
   then written into ``recon_items`` with their states by one INSERT … SELECT
   (``settlement_staging``); a statement's (small) rows into ``recon_items`` without a state.
3. Set-based SQL statements give every row its state (``domain/reconciliation.py``'s
   ``MATCH_RULES``: exact reference, amounts, one-to-many batch sums, date windows, a tolerance),
   and add a row for what the ledger has and the file should have had (``missing_at_gateway``,
   ``missing_in_bank``). No statement runs once per line.
4. What a matched line proves is posted, one entry per line, idempotent: a settlement (Dr bank
   net, Dr gateway_fees fee, Cr gateway_receivable gross, or the inverse; set-based, a chunk of
   lines in a few statements, ``settlement_posting``), a returned payout, a reserve top-up, a bank
   fee (``posting.post_once``, each). A settlement file's entries are posted a chunk per
   transaction after the staging transaction commits (the run is ``posting`` meanwhile, and its
   progress counts them); a run a crash left ``posting`` is finished by the same file again or by
   the worker (``finish_unfinished_runs``), each line still posting once.
5. Cases a run explains heal (resolved with the run's id), every new break opens a case, a statement
   is checked against the ledger's balance, and ``accounts.reconciliation.run_completed`` is sent.

Memory stays flat: lines are read, staged and posted a chunk at a time.

The balance rule after a statement (``balance_mismatch``). The bank's closing balance for day D
must equal the ledger's ``bank:{code}`` as the bank sees it at the end of D, that is, the sum of
the account's lines whose money had moved at the bank by then:

- a settlement entry counts once the bank has credited its batch on a statement of day ≤ D (before
  that its money is in transit from the acquirer);
- an entry a statement line posted (a returned payout, a reserve top-up, a bank fee) counts from
  that line's value date, whenever the run posted it;
- every other entry (a payout paid) counts if it was posted before the end of D (UTC).

So expected = ledger balance − Σ net of settlement lines posted to the bank whose batch is not yet
credited by D − Σ lines of other entries posted after D's end − Σ lines statement lines of later
days posted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import ArtisanOwner, JournalEntry, LedgerAccount, Payout
from services.accounts.adapters.reconciliation_orm import ReconCase, ReconFile, ReconItem, ReconRun
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import bank as bank_account
from services.accounts.domain.payouts import PayoutStatus, payee_account
from services.accounts.domain.ports import FileStore
from services.accounts.domain.postings import Posting
from services.accounts.domain.reconciliation import (
    BREAK_STATES,
    OPEN_CASE_STATES,
    FeeSchedule,
    ItemKind,
    ItemSource,
    ItemState,
    Source,
    bank_fee_lines,
    fee_schedule,
    reserve_top_up_lines,
    returned_payout_lines,
    rule,
    statement_line_kind,
)
from services.accounts.domain.settlement_records import SettlementLine
from services.accounts.service_layer import recon_cases, settlement_staging
from services.accounts.service_layer.payout_steps import payout_event
from services.accounts.service_layer.posting import post_once, record_case
from services.accounts.service_layer.recon_readers import (
    UnreadableFile,
    guarded,
    read_settlement_lines,
    read_statements,
)
from services.accounts.service_layer.settlement_posting import execute_sql, post_settlements
from shared.auth.principal import Principal
from shared.bank_statements.model import Statement
from shared.db import UnitOfWork, is_postgres, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.events import make_event
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

CHUNK = 5_000
POSTED_STATES = (ItemState.MATCHED, ItemState.FEE_MISMATCH)
Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class ReconciliationSettings:
    """What runs need, wired once by the composition root."""

    file_store: FileStore
    currency: str
    default_bank_code: str  # where settlements arrive and statements come from unless configured
    settlement_banks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fee_schedules: Mapping[str, FeeSchedule] = dataclasses.field(default_factory=dict)
    tolerance: int = 0
    gateways: tuple[str, ...] = ("m2t",)
    statement_banks: tuple[str, ...] = ()
    statement_format: str = "camt053"
    first_day: dt.date | None = None
    # The readers (replaced by tests' fakes): a settlement CSV stream → lines, statement bytes → statements.
    read_settlement: Callable[[BinaryIO], Iterable[SettlementLine]] = read_settlement_lines
    read_statements: Callable[[bytes, str | None], list[Statement]] = read_statements
    chunk_size: int = CHUNK  # lines staged per INSERT
    # Settled lines posted per transaction (set-based: the statements are as many for 1 or 50,000).
    posting_chunk_size: int = 50_000
    # Writing a case off proposes an adjustment (``adjustments.propose_adjustment``); None until wired.
    propose_adjustment: Callable[..., Any] | None = None

    def settlement_bank(self, gateway: str) -> str:
        return self.settlement_banks.get(gateway, self.default_bank_code)

    @property
    def banks(self) -> frozenset[str]:
        """Every bank reconciliation knows: where settlements arrive, whose statements come, and
        the payout bank. A run for any other bank is refused."""
        return frozenset({self.default_bank_code, *self.settlement_banks.values(), *self.statement_banks})


@dataclasses.dataclass(frozen=True)
class RunRequest:
    source: str  # gateway_settlement | bank_statement
    name: str
    gateway: str | None = None
    bank_code: str | None = None
    format: str | None = None  # mt940 | camt053 (statements; sniffed if absent)
    day: dt.date | None = None  # the day the file is about, when the caller knows it (a fetch)


def _day_end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)


# --- runs -------------------------------------------------------------------------------------------


def import_file(
    uow_factory: Callable[[], UnitOfWork],
    settings: ReconciliationSettings,
    stream: BinaryIO,
    request: RunRequest,
    actor: str,
    progress: Progress | None = None,
    *,
    finish: bool = True,
) -> tuple[ReconRun, bool]:
    """Keep the file and run it; ``(run, created)``. The same file again: its run, ``created``
    False (a run a crash left unfinished is finished first). ``finish=False`` leaves a settlement
    run ``posting`` once its lines are staged and matched, for ``finish_run`` (or the worker's
    ``finish_unfinished_runs``) to post and complete."""
    if request.source not in tuple(Source):
        raise ValidationFailed("`source` is gateway_settlement or bank_statement.", param="source")
    if request.source == Source.GATEWAY_SETTLEMENT and not request.gateway:
        raise ValidationFailed("A settlement file needs its `gateway`.", param="gateway")
    if request.bank_code is not None and request.bank_code not in settings.banks:
        banks = ", ".join(sorted(settings.banks))
        raise ValidationFailed(f"`bank_code` is one of the configured banks ({banks}).", param="bank_code")
    stored = settings.file_store.put(stream)
    existing = _run_of_file(uow_factory, stored.sha256)
    if existing is not None:
        if existing.status != "completed" and finish:
            return finish_run(uow_factory, settings, existing.id, progress), False
        return existing, False
    try:
        with uow_factory() as uow:
            session = uow.session
            assert session is not None
            file = ReconFile(
                id=new_id("rf"),
                sha256=stored.sha256,
                source=request.source,
                name=request.name[:255],
                size=stored.size,
                received_at=utcnow(),
            )
            run = ReconRun(
                id=new_id("rr"),
                file_id=file.id,
                source=request.source,
                gateway=request.gateway,
                bank_code=request.bank_code,
                format=request.format,
                day=request.day,
                status="running",
                lines_total=0,
                lines_done=0,
                counts={},
                requested_by=actor,
                created_at=utcnow(),
            )
            session.add_all([file, run])
            session.flush()
            with settings.file_store.open(stored.sha256) as kept:
                if request.source == Source.GATEWAY_SETTLEMENT:
                    # Staged and matched in this transaction (a malformed file imports nothing);
                    # posted a chunk per transaction by ``finish_run``.
                    _stage_and_match_settlement(uow, settings, run, kept, progress)
                    run.status = "posting"
                else:
                    # A day's statement is small: the whole run is one transaction.
                    _run_statement(uow, settings, run, kept, progress)
                    _complete(uow, run)
            uow.commit()
            run_id = run.id
    except IntegrityError:
        # The same file, received twice at once: the other request's run stands.
        existing = _run_of_file(uow_factory, stored.sha256)
        if existing is None:
            raise
        return existing, False
    if run.status == "completed" or not finish:
        return run, True
    return finish_run(uow_factory, settings, run_id, progress), True


def finish_run(
    uow_factory: Callable[[], UnitOfWork],
    settings: ReconciliationSettings,
    run_id: str,
    progress: Progress | None = None,
) -> ReconRun:
    """Post a settlement run's matched lines, a chunk per transaction, then complete it: heal the
    cases it explains, add what the ledger has and the file lacks, open cases, send the news.

    Safe to call again (a crash half-way, or two callers): each line posts once under its posting
    key, and the run is completed once."""
    while _post_settlement_chunk(uow_factory, run_id, settings.posting_chunk_size, progress):
        pass
    with uow_factory() as uow:
        session = uow.session
        assert session is not None
        run = session.get(ReconRun, run_id, with_for_update=True)
        assert run is not None
        if run.status == "completed":
            return run
        # The statistics taken after staging knew no states: without fresh ones the planner
        # believes no line is matched and loops over a large run's lines once per ledger movement.
        _analyze(session)
        _heal(uow, run, ItemState.MISSING_AT_GATEWAY)
        _missing_at_gateway(uow, run)
        _complete(uow, run)
        uow.commit()
        return run


def finish_unfinished_runs(uow_factory: Callable[[], UnitOfWork], settings: ReconciliationSettings) -> int:
    """Finish the runs a crash (or a stop) left ``posting``; how many. A run that fails to finish
    is logged and tried again next time: it never keeps the others (nor the day's fetch) waiting."""
    with uow_factory() as uow:
        assert uow.session is not None
        run_ids = list(uow.session.scalars(sa.select(ReconRun.id).where(ReconRun.status == "posting")))
    finished = 0
    for run_id in run_ids:
        try:
            finish_run(uow_factory, settings, run_id)
        except Exception:
            log.exception("finishing reconciliation run %s failed: tried again next pass", run_id)
            continue
        finished += 1
    return finished


def _run_of_file(uow_factory: Callable[[], UnitOfWork], sha256: str) -> ReconRun | None:
    with uow_factory() as uow:
        assert uow.session is not None
        return uow.session.scalar(
            sa.select(ReconRun)
            .join(ReconFile, ReconFile.id == ReconRun.file_id)
            .where(ReconFile.sha256 == sha256)
        )


def _stage(
    session: Session, rows: Iterable[dict[str, Any]], chunk_size: int, progress: Progress | None
) -> int:
    """Insert ``rows`` into ``recon_items`` a chunk at a time (multi-row INSERTs); how many."""
    table = ReconItem.__table__
    chunk: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            session.execute(sa.insert(table), chunk)
            total += len(chunk)
            if progress:
                progress(len(chunk))
            chunk = []
    if chunk:
        session.execute(sa.insert(table), chunk)
        total += len(chunk)
        if progress:
            progress(len(chunk))
    return total


def _item_row(run: ReconRun, **values: Any) -> dict[str, Any]:
    row = {
        "run_id": run.id,
        "line_number": None,
        "reference": "",
        "batch_reference": None,
        "gateway": None,
        "bank_code": None,
        "fee": None,
        "net": None,
        "expected_amount": None,
        "expected_fee": None,
        "card_scheme": None,
        "card_region": None,
        "transaction_type": None,
        "bank_reference": None,
        "description": None,
        "state": None,
        "ledger_entry_id": None,
        "posted_entry_id": None,
        "case_id": None,
        "healed_by_run_id": None,
    }
    row.update(values)
    return row


def _analyze(session: Session) -> None:
    """Fresh statistics after staging (PostgreSQL), so the planner joins a large run by hashing
    instead of looping over rows it believes are few."""
    if is_postgres(session):
        session.execute(sa.text("ANALYZE recon_items"))


# --- settlement files ---------------------------------------------------------------------------------


def _stage_and_match_settlement(
    uow: UnitOfWork,
    settings: ReconciliationSettings,
    run: ReconRun,
    stream: BinaryIO,
    progress: Progress | None,
) -> None:
    """Every line of the file into ``recon_items`` with its state (``settlement_staging``)."""
    session = uow.session
    assert session is not None
    gateway = run.gateway or ""
    run.bank_code = run.bank_code or settings.settlement_bank(gateway)
    counts = settlement_staging.stage_and_match(
        session,
        run,
        stream,
        read_lines=guarded(settings.read_settlement, stream),
        # The CSV reader's files may be copied in bulk; another reader's (a test's) are read by it.
        read_plain=settings.read_settlement is read_settlement_lines,
        schedule=fee_schedule(settings.fee_schedules, gateway),
        currency=settings.currency,
        tolerance=settings.tolerance,
        chunk_size=settings.chunk_size,
        progress=progress,
    )
    run.format = run.format or "csv"
    # Lines that post nothing are done already; the others as they are posted.
    run.lines_done = sum(count for state, count in counts.items() if state not in POSTED_STATES)


def _missing_at_gateway(uow: UnitOfWork, run: ReconRun) -> None:
    """Ledger captures and refunds of the gateway, on or before the file's day (within the rule's
    window), that no settlement file has settled: one ``missing_at_gateway`` item each."""
    session = uow.session
    assert session is not None
    gateway = run.gateway or ""
    params = {"run": run.id, "receivable": f"gateway_receivable:{gateway}", "lost_dispute": "dispute:%:lost"}
    if run.day is not None:
        window = rule("ledger_settled_by_gateway")
        execute_sql(
            session,
            f"""INSERT INTO recon_items (run_id, source, kind, object_id, reference, dedup_key, gateway,
                    bank_code, currency, amount, value_date, state, ledger_entry_id)
                SELECT :run, 'ledger', x.kind, x.object_id, x.object_id,
                       'ledger:' || CAST(:gateway AS VARCHAR(20)) || ':' || x.kind || ':' || x.object_id,
                       CAST(:gateway AS VARCHAR(20)), CAST(:bank AS VARCHAR(3)),
                       x.currency, x.amount, :day, 'missing_at_gateway', x.entry_id
                FROM ({settlement_staging.GATEWAY_LEDGER}) x
                WHERE x.kind IN ('capture', 'refund') AND x.posted_at < :until AND x.posted_at >= :since
                  AND NOT EXISTS (SELECT 1 FROM recon_items s WHERE s.object_id = x.object_id AND s.kind = x.kind
                        AND s.source = 'settlement' AND s.ledger_entry_id = x.entry_id
                        AND s.state IN ('matched', 'fee_mismatch', 'amount_mismatch'))
                  AND NOT EXISTS (SELECT 1 FROM recon_items m WHERE m.source = 'ledger'
                        AND m.ledger_entry_id = x.entry_id AND m.state = 'missing_at_gateway')""",
            **params,
            gateway=gateway,
            bank=run.bank_code,
            day=run.day,
            until=_day_end(run.day),
            since=_day_end(run.day) - dt.timedelta(days=window.date_window_days),
        )


def _post_settlement_chunk(
    uow_factory: Callable[[], UnitOfWork], run_id: str, size: int, progress: Progress | None
) -> bool:
    """Post the next chunk of the run's matched lines not posted yet, in one transaction: one
    settlement entry per line, set-based (``settlement_posting``). False when none is left.

    A chunk per transaction: every entry moves the same three accounts, and a transaction's size
    (its locks, PostgreSQL's row versions, the memory of a statement) should not grow with the file."""
    with uow_factory() as uow:
        session = uow.session
        assert session is not None
        run = session.get(ReconRun, run_id, with_for_update=True)  # one poster of a run at a time
        assert run is not None
        if run.status != "posting":
            return False
        lines = post_settlements(uow, run, size)
        if not lines:
            return False
        run.lines_done = (run.lines_done or 0) + lines
        uow.commit()
    if progress:
        progress(lines)
    return True


def _posted_entry_id(session: Session, key: str) -> str | None:
    return session.scalar(sa.select(JournalEntry.id).where(JournalEntry.posting_key == key))


def _heal(uow: UnitOfWork, run: ReconRun, state: ItemState) -> None:
    """Ledger items (``missing_*``) this run's lines explain become matched; their cases resolve."""
    session = uow.session
    assert session is not None
    if state == ItemState.MISSING_AT_GATEWAY:
        # Found through the object: a settlement line's item is indexed by it, not by its entry.
        explained = """EXISTS (SELECT 1 FROM recon_items s WHERE s.object_id = recon_items.object_id
                        AND s.run_id = :run AND s.ledger_entry_id = recon_items.ledger_entry_id
                        AND s.state IN ('matched', 'fee_mismatch'))"""
    else:
        explained = """EXISTS (SELECT 1 FROM recon_items s WHERE s.run_id = :run AND s.kind = 'payout'
                        AND s.object_id = recon_items.object_id AND s.state = 'matched')"""
    healed = session.execute(
        sa.text(
            f"SELECT id, case_id FROM recon_items WHERE source = 'ledger' AND state = :state AND {explained}"
        ),
        {"run": run.id, "state": str(state)},
    ).all()
    if not healed:
        return
    for item_id, case_id in healed:
        session.execute(
            sa.update(ReconItem)
            .where(ReconItem.id == item_id)
            .values(state=ItemState.MATCHED, healed_by_run_id=run.id)
            .execution_options(synchronize_session=False)
        )
        if case_id:
            recon_cases.heal_case(uow, case_id, run.id)


# --- bank statements -----------------------------------------------------------------------------------


def _statement_rows(run: ReconRun, statement: Statement, first_line: int) -> Iterator[dict[str, Any]]:
    for number, entry in enumerate(statement.entries, start=first_line):
        kind = statement_line_kind(entry.amount, entry.transaction_type, entry.reference, known_batch=False)
        if kind == ItemKind.RESERVE_TOP_UP:
            object_id = entry.reference.split("-", 1)[1]
        elif kind == ItemKind.BANK_FEE:
            object_id = entry.bank_reference or f"{statement.statement_id}:{number}"
        else:
            object_id = entry.reference
        identity = (
            entry.bank_reference
            or f"{entry.value_date}:{entry.reference}:{entry.amount}:{entry.transaction_type}"
        )
        yield _item_row(
            run,
            source=ItemSource.STATEMENT,
            kind=kind,
            line_number=number,
            object_id=object_id[:140],
            reference=entry.reference[:140],
            dedup_key=f"statement:{statement.bank_code}:{identity}"[:300],
            bank_code=statement.bank_code,
            currency=statement.currency,
            amount=entry.amount,
            value_date=entry.value_date,
            transaction_type=entry.transaction_type[:8],
            bank_reference=entry.bank_reference[:64] or None,
            description=(entry.description or entry.counterparty_name)[:200] or None,
        )


def _run_statement(
    uow: UnitOfWork,
    settings: ReconciliationSettings,
    run: ReconRun,
    stream: BinaryIO,
    progress: Progress | None,
) -> None:
    session = uow.session
    assert session is not None
    # A day's statement is small: read whole, unlike a settlement file.
    data = stream.read()
    if run.format is None:
        from services.accounts.service_layer.recon_readers import sniff_statement_format

        run.format = sniff_statement_format(data[:4096])
    statements = settings.read_statements(data, run.format)
    if not statements:
        raise UnreadableFile("The file holds no statement.", errors=[{"line": 1, "reason": "no statement"}])
    banks = {statement.bank_code for statement in statements}
    if len(banks) != 1 or (run.bank_code and run.bank_code not in banks):
        raise UnreadableFile(
            "A statement run is for one bank's client-funds account.",
            errors=[{"reason": f"statements for {sorted(banks)}, expected {run.bank_code or 'one bank'}"}],
        )
    if not banks <= settings.banks:
        raise UnreadableFile(
            "The statement is for a bank reconciliation is not set up for.",
            errors=[{"reason": f"statements for {sorted(banks)}, configured banks {sorted(settings.banks)}"}],
        )
    run.bank_code = banks.pop()
    last = max(statements, key=lambda s: (s.closing.date, s.sequence_number))
    run.day, run.closing_balance, run.currency = last.closing.date, last.closing.amount, last.currency
    staged, line = 0, 1
    for statement in statements:
        staged += _stage(session, _statement_rows(run, statement, line), settings.chunk_size, progress)
        line += len(statement.entries)
    run.lines_total = run.lines_done = staged
    _analyze(session)
    _match_statement(uow, settings, run)


def _match_statement(uow: UnitOfWork, settings: ReconciliationSettings, run: ReconRun) -> None:
    session = uow.session
    assert session is not None and run.day is not None
    bank_code = run.bank_code
    tolerance = rule("payout_debit", settings.tolerance).tolerance
    execute_sql(
        session,
        """UPDATE recon_items SET state = 'duplicate'
           WHERE run_id = :run AND EXISTS (
             SELECT 1 FROM recon_items o WHERE o.dedup_key = recon_items.dedup_key AND o.source = 'statement' AND (
               (o.run_id = :run AND o.id < recon_items.id) OR (o.run_id <> :run AND o.state <> 'duplicate')))""",
        run=run.id,
    )
    # A movement whose reference is a batch the acquirer settled into this bank: a credit, or a
    # debit when the batch's refunds and chargebacks outweigh its captures.
    execute_sql(
        session,
        """UPDATE recon_items SET kind = 'batch'
           WHERE run_id = :run AND state IS NULL AND kind = 'other' AND EXISTS (
             SELECT 1 FROM recon_items s WHERE s.source = 'settlement' AND s.batch_reference = recon_items.reference
               AND s.bank_code = :bank)""",
        run=run.id,
        bank=bank_code,
    )
    # One-to-many: the credit against Σ net of the batch's settled lines.
    execute_sql(
        session,
        """UPDATE recon_items SET expected_amount = b.total
           FROM (SELECT batch_reference, SUM(net) AS total FROM recon_items
                 WHERE source = 'settlement' AND bank_code = :bank AND state IN ('matched', 'fee_mismatch')
                   AND batch_reference IN (SELECT reference FROM recon_items WHERE run_id = :run AND kind = 'batch')
                 GROUP BY batch_reference) b
           WHERE recon_items.run_id = :run AND recon_items.state IS NULL AND recon_items.kind = 'batch'
             AND recon_items.reference = b.batch_reference""",
        run=run.id,
        bank=bank_code,
    )
    # A payout's debit against the ledger's paid payout from this bank.
    execute_sql(
        session,
        """UPDATE recon_items SET expected_amount = -p.amount, ledger_entry_id = e.id
           FROM payouts p JOIN journal_entries e ON e.posting_key = 'payout:' || p.id || '\\:paid'
           WHERE recon_items.run_id = :run AND recon_items.state IS NULL AND recon_items.kind = 'payout'
             AND p.id = recon_items.object_id AND p.source_bank_code = :bank AND p.status IN ('paid', 'returned')""",
        run=run.id,
        bank=bank_code,
    )
    execute_sql(
        session,
        """UPDATE recon_items SET state = CASE
             WHEN kind = 'payout' AND expected_amount IS NULL THEN 'missing_in_ledger'
             WHEN kind = 'other' AND amount > 0 THEN 'unidentified'
             WHEN kind = 'other' THEN 'missing_in_ledger'
             WHEN currency <> :currency THEN 'amount_mismatch'
             WHEN ABS(amount - COALESCE(expected_amount, 0)) > :tolerance THEN 'amount_mismatch'
             ELSE 'matched' END
           WHERE run_id = :run AND state IS NULL AND kind IN ('payout', 'batch', 'other')""",
        run=run.id,
        currency=settings.currency,
        tolerance=tolerance,
    )
    _post_statement_lines(uow, settings, run)
    _heal(uow, run, ItemState.MISSING_IN_BANK)
    window = rule("ledger_payout_debited")
    execute_sql(
        session,
        """INSERT INTO recon_items (run_id, source, kind, object_id, reference, dedup_key, bank_code, currency,
                amount, value_date, state, ledger_entry_id)
           SELECT :run, 'ledger', 'payout', p.id, p.id, 'ledger\\:payout\\:' || p.id, CAST(:bank AS VARCHAR(3)), p.currency, -p.amount,
                  :day, 'missing_in_bank', e.id
           FROM payouts p JOIN journal_entries e ON e.posting_key = 'payout:' || p.id || '\\:paid'
           WHERE p.source_bank_code = :bank AND p.status IN ('paid', 'returned') AND p.paid_at < :until
             AND NOT EXISTS (SELECT 1 FROM recon_items s WHERE s.source = 'statement' AND s.kind = 'payout'
                   AND s.object_id = p.id AND s.state IN ('matched', 'amount_mismatch'))
             AND NOT EXISTS (SELECT 1 FROM recon_items m WHERE m.source = 'ledger' AND m.kind = 'payout'
                   AND m.object_id = p.id AND m.state = 'missing_in_bank')""",
        run=run.id,
        bank=bank_code,
        day=run.day,
        until=_day_end(run.day) - dt.timedelta(days=window.date_window_days),
    )
    run.expected_balance = expected_bank_balance(session, bank_code or "", run.day, settings.currency)


def _post_statement_lines(uow: UnitOfWork, settings: ReconciliationSettings, run: ReconRun) -> None:
    """Returned payouts, reserve top-ups and bank fees: few lines a day, each posted on its own."""
    session = uow.session
    assert session is not None
    bank_code = run.bank_code or ""
    tolerance = settings.tolerance
    lines = session.scalars(
        sa.select(ReconItem)
        .where(
            ReconItem.run_id == run.id,
            ReconItem.state.is_(None),
            ReconItem.kind.in_([ItemKind.RETURNED_PAYOUT, ItemKind.RESERVE_TOP_UP, ItemKind.BANK_FEE]),
        )
        .order_by(ReconItem.id)
    ).all()
    for item in lines:
        if item.currency != settings.currency:
            item.state = ItemState.AMOUNT_MISMATCH
        elif item.kind == ItemKind.RETURNED_PAYOUT:
            _returned_payout(uow, item, bank_code, tolerance)
        elif item.kind == ItemKind.RESERVE_TOP_UP:
            known = session.scalar(
                sa.select(sa.literal(True)).where(
                    sa.or_(
                        sa.exists().where(ArtisanOwner.marketplace_id == item.object_id),
                        sa.exists().where(
                            LedgerAccount.owner_type == "marketplace",
                            LedgerAccount.owner_id == item.object_id,
                        ),
                    )
                )
            )
            if not known:
                item.state = ItemState.UNIDENTIFIED
                continue
            _post_line(
                uow,
                item,
                _posting(
                    item,
                    "reserve",
                    f"Reserve top-up by marketplace {item.object_id}",
                    reserve_top_up_lines(
                        bank_code=bank_code, marketplace_id=item.object_id, amount=item.amount
                    ),
                ),
            )
        else:
            _post_line(
                uow,
                item,
                _posting(
                    item,
                    "bank_fee",
                    f"Bank fee {item.bank_reference or item.object_id} at bank {bank_code}",
                    bank_fee_lines(bank_code=bank_code, amount=-item.amount),
                ),
            )


def _posting(item: ReconItem, what: str, description: str, lines: Any, **posting: Any) -> Posting:
    key = posting.pop("posting_key", None) or f"statement:{item.bank_code}:{what}:{item.dedup_key}"[:120]
    return Posting(
        cause=posting.pop("cause", "bank_statement"),
        cause_id=item.object_id[:64],
        posting_key=key,
        description=description,
        currency=item.currency,
        lines=lines,
        **posting,
    )


def _post_line(uow: UnitOfWork, item: ReconItem, posting: Posting) -> None:
    session = uow.session
    assert session is not None
    entry = post_once(uow, posting)
    item.posted_entry_id = entry.id if entry is not None else _posted_entry_id(session, posting.posting_key)
    item.ledger_entry_id = item.posted_entry_id
    item.state = ItemState.MATCHED


def _returned_payout(uow: UnitOfWork, item: ReconItem, bank_code: str, tolerance: int) -> None:
    """The payout came back: Dr bank / Cr the payee's account (the artisan's available balance, a
    marketplace's commission), the payout ``returned``, and the news (``accounts.payout.returned``,
    or ``accounts.commission_payout.returned``)."""
    session = uow.session
    assert session is not None
    payout = session.get(Payout, item.object_id, with_for_update=True)
    if payout is None or payout.source_bank_code != bank_code:
        item.state = ItemState.MISSING_IN_LEDGER
        return
    if payout.status == PayoutStatus.RETURNED:
        item.state = ItemState.DUPLICATE
        return
    if payout.status != PayoutStatus.PAID or abs(payout.amount - item.amount) > tolerance:
        item.expected_amount = payout.amount
        item.state = ItemState.AMOUNT_MISMATCH
        return
    posting = _posting(
        item,
        "returned",
        f"Payout {payout.id} returned by the beneficiary's bank",
        returned_payout_lines(
            bank_code=bank_code, payee=payee_account(payout.payee_type, payout.payee_id), amount=payout.amount
        ),
        cause="payout",
        posting_key=f"payout:{payout.id}:returned",
        artisan_id=payout.artisan_id or None,
    )
    try:
        with session.begin_nested():
            _post_line(uow, item, posting)
    except BalanceRuleViolation as violation:
        # The artisan's cap fell below their balance while the money was away (a KYC downgrade):
        # the ledger refuses the credit. The money is at the bank and not in the ledger: the line
        # stays a break (its case opens), the refusal is kept for an operator, and the payout
        # stays paid until a person settles it.
        log.warning(
            "returned payout not posted: the ledger refused it",
            extra={"payout_id": payout.id, "rule": violation.rule},
        )
        record_case(uow, posting, violation)
        item.posted_entry_id = item.ledger_entry_id = None
        item.state = ItemState.MISSING_IN_LEDGER
        return
    now = utcnow()
    payout.status = PayoutStatus.RETURNED
    payout.updated_at = now
    uow.add_event(
        payout_event(
            "accounts.payout.returned",
            payout,
            entry_id=item.posted_entry_id,
            returned_at=now.isoformat(),
            statement_value_date=item.value_date.isoformat(),
        )
    )


def expected_bank_balance(session: Session, bank_code: str, day: dt.date, currency: str) -> int:
    """``bank:{code}`` as the bank sees it at the end of ``day`` (the module's docstring says how)."""
    account_id = session.scalar(
        sa.select(LedgerAccount.id).where(
            LedgerAccount.owner_type == bank_account(bank_code).owner_type,
            LedgerAccount.kind == bank_account(bank_code).kind,
            LedgerAccount.currency == currency,
        )
    )
    if account_id is None:
        return 0
    params = {"account": account_id, "bank": bank_code, "day": day, "until": _day_end(day)}
    # Settlement entries count once their batch is credited on a statement of day ≤ D.
    settled = """SELECT COALESCE(SUM(l.amount), 0) FROM journal_lines l
        JOIN recon_items s ON s.posted_entry_id = l.entry_id AND s.source = 'settlement'
        WHERE l.account_id = :account AND EXISTS (SELECT 1 FROM recon_items b WHERE b.source = 'statement'
              AND b.kind = 'batch' AND b.bank_code = :bank AND b.reference = s.batch_reference
              AND b.state <> 'duplicate' AND b.value_date <= :day)"""
    # Entries statement lines posted count from the line's value date.
    from_statements = """SELECT COALESCE(SUM(l.amount), 0) FROM journal_lines l
        JOIN recon_items s ON s.posted_entry_id = l.entry_id AND s.source = 'statement'
        WHERE l.account_id = :account AND s.value_date <= :day"""
    # Every other entry, by when it was posted.
    others = """SELECT COALESCE(SUM(l.amount), 0) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
        WHERE l.account_id = :account AND e.posted_at < :until
          AND NOT EXISTS (SELECT 1 FROM recon_items s WHERE s.posted_entry_id = l.entry_id)"""
    return sum(
        int(execute_sql(session, sql, **params).scalar_one()) for sql in (settled, from_statements, others)
    )


# --- completing a run -----------------------------------------------------------------------------------


def _complete(uow: UnitOfWork, run: ReconRun) -> None:
    session = uow.session
    assert session is not None
    if run.source == Source.BANK_STATEMENT and run.closing_balance is not None:
        difference = (run.closing_balance or 0) - (run.expected_balance or 0)
        if difference != 0:
            recon_cases.open_balance_case(uow, run, difference)
    recon_cases.open_cases_for_breaks(uow, run)
    counts = dict(
        session.execute(
            sa.select(ReconItem.state, sa.func.count())
            .where(ReconItem.run_id == run.id)
            .group_by(ReconItem.state)
        ).all()
    )
    run.counts = {str(state): int(counts.get(state, 0)) for state in ItemState}
    run.status = "completed"
    run.completed_at = utcnow()
    uow.add_event(
        make_event(
            "accounts.reconciliation.run_completed",
            subject=run.id,
            data={
                "run_id": run.id,
                "source": run.source,
                "gateway": run.gateway,
                "bank_code": run.bank_code,
                "format": run.format,
                "day": run.day.isoformat() if run.day else None,
                "lines": run.lines_total,
                "counts": run.counts,
                "breaks": sum(run.counts[str(state)] for state in BREAK_STATES),
                "closing_balance": run.closing_balance,
                "expected_balance": run.expected_balance,
                "completed_at": run.completed_at.isoformat(),
            },
        )
    )
    log.info("reconciliation run completed", extra={"run_id": run.id, "counts": run.counts})


# --- reading runs and items ---------------------------------------------------------------------------


def list_runs(uow: UnitOfWork, principal: Principal, *, limit: int, starting_after: str | None) -> Page:
    with uow:
        query = sa.select(ReconRun)
        bank = recon_cases.visible_bank(principal)
        if bank is not None:
            query = query.where(ReconRun.bank_code == bank)
        return paginate(uow.session, query, ReconRun.id, limit=limit, starting_after=starting_after)  # type: ignore[arg-type]


def get_run(uow: UnitOfWork, run_id: str, principal: Principal) -> dict[str, Any]:
    with uow:
        session = uow.session
        assert session is not None
        run = session.get(ReconRun, run_id)
        bank = recon_cases.visible_bank(principal)
        if run is None or (bank is not None and run.bank_code != bank):
            raise NotFound(f"No reconciliation run {run_id}.")
        file = session.get(ReconFile, run.file_id)
        return run_view(run, file)


def run_view(run: ReconRun, file: ReconFile | None = None) -> dict[str, Any]:
    total = run.lines_total or 0
    return {
        "id": run.id,
        "source": run.source,
        "gateway": run.gateway,
        "bank_code": run.bank_code,
        "format": run.format,
        "day": run.day,
        "status": run.status,
        "counts": run.counts or {},
        "progress": {
            "lines_total": total,
            "lines_done": run.lines_done or 0,
            "percent": 100
            if run.status == "completed"
            else (100 * (run.lines_done or 0) // total if total else 0),
        },
        "closing_balance": run.closing_balance,
        "expected_balance": run.expected_balance,
        "currency": run.currency,
        "file": None
        if file is None
        else {
            "id": file.id,
            "sha256": file.sha256,
            "name": file.name,
            "size": file.size,
            "received_at": file.received_at,
        },
        "requested_by": run.requested_by,
        "created_at": run.created_at,
        "completed_at": run.completed_at,
    }


def item_view(item: ReconItem) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "run_id": item.run_id,
        "source": item.source,
        "kind": item.kind,
        "state": item.state,
        "object_id": item.object_id,
        "reference": item.reference,
        "batch_reference": item.batch_reference,
        "line_number": item.line_number,
        "gateway": item.gateway,
        "bank_code": item.bank_code,
        "amount": item.amount,
        "fee": item.fee,
        "net": item.net,
        "expected_amount": item.expected_amount,
        "expected_fee": item.expected_fee,
        "currency": item.currency,
        "value_date": item.value_date,
        "transaction_type": item.transaction_type,
        "bank_reference": item.bank_reference,
        "ledger_entry_id": item.ledger_entry_id,
        "posted_entry_id": item.posted_entry_id,
        "case_id": item.case_id,
        "healed_by_run_id": item.healed_by_run_id,
    }


def three_way(uow: UnitOfWork, object_id: str, principal: Principal) -> dict[str, Any]:
    """A payment's, refund's or payout's three legs, each with the record that proves it."""
    with uow:
        session = uow.session
        assert session is not None
        entries = session.scalars(
            sa.select(JournalEntry).where(JournalEntry.cause_id == object_id).order_by(JournalEntry.posted_at)
        ).all()
        items = session.scalars(
            sa.select(ReconItem).where(ReconItem.object_id == object_id).order_by(ReconItem.id)
        ).all()
        settlement = [item for item in items if item.source == ItemSource.SETTLEMENT]
        batches = {item.batch_reference for item in settlement if item.batch_reference}
        bank_items = [item for item in items if item.source == ItemSource.STATEMENT]
        if batches:
            bank_items += session.scalars(
                sa.select(ReconItem)
                .where(ReconItem.source == ItemSource.STATEMENT, ReconItem.kind == ItemKind.BATCH)
                .where(ReconItem.reference.in_(batches))
                .order_by(ReconItem.id)
            ).all()
        # What the ledger has and no file does, and any line of this object in a break state: a fee
        # mismatch is posted (the acquirer's leg is there) but its case still waits for a person.
        breaks = [item for item in items if item.source == ItemSource.LEDGER or item.state in BREAK_STATES]
        closed_cases = _closed_case_ids(session, breaks)
        bank = recon_cases.visible_bank(principal)
        if bank is not None and not any(
            item.bank_code == bank for item in (*settlement, *bank_items, *breaks)
        ):
            raise NotFound(f"Nothing reconciled about {object_id}.")
        if not entries and not items:
            raise NotFound(f"Nothing reconciled about {object_id}.")
        is_payout = object_id.startswith("po_")
        ledger_leg = [
            {"entry_id": e.id, "cause": e.cause, "posting_key": e.posting_key, "posted_at": e.posted_at}
            for e in entries
        ]
        acquirer_ok = is_payout or any(i.state in POSTED_STATES for i in settlement)
        bank_ok = any(i.state == ItemState.MATCHED for i in bank_items)
        # As "not fully matched after N days" (unmatched_items): a break whose case a person
        # closed (resolved, written off) is explained.
        open_breaks = [i for i in breaks if i.state != ItemState.MATCHED and i.case_id not in closed_cases]
        return {
            "object_id": object_id,
            "legs": {
                "ledger": ledger_leg,
                "acquirer": [item_view(i) for i in settlement],
                "bank": [item_view(i) for i in bank_items],
            },
            "breaks": [item_view(i) for i in breaks],
            "fully_matched": bool(ledger_leg) and acquirer_ok and bank_ok and not open_breaks,
        }


def _closed_case_ids(session: Session, items: Iterable[ReconItem]) -> set[str]:
    """The cases of ``items`` a person closed (resolved or written off)."""
    case_ids = {item.case_id for item in items if item.case_id}
    if not case_ids:
        return set()
    return set(
        session.scalars(
            sa.select(ReconCase.id).where(
                ReconCase.id.in_(case_ids), ReconCase.state.not_in([str(s) for s in OPEN_CASE_STATES])
            )
        )
    )


def unmatched_items(
    uow: UnitOfWork,
    principal: Principal,
    *,
    after_days: int,
    limit: int,
    starting_after: str | None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Items in a break state (not healed, their case still open) whose day is at least
    ``after_days`` days ago."""
    today = today or utcnow().date()
    with uow:
        session = uow.session
        assert session is not None
        query = (
            sa.select(ReconItem)
            .outerjoin(ReconCase, ReconCase.id == ReconItem.case_id)
            .where(
                ReconItem.state.in_([str(state) for state in BREAK_STATES]),
                ReconItem.value_date <= today - dt.timedelta(days=after_days),
                # A break a person closed (resolved, written off) is explained: left out.
                sa.or_(ReconCase.id.is_(None), ReconCase.state.in_([str(s) for s in OPEN_CASE_STATES])),
            )
        )
        bank = recon_cases.visible_bank(principal)
        if bank is not None:
            query = query.where(ReconItem.bank_code == bank)
        if starting_after:
            if not recon_cases.ITEM_ID.fullmatch(starting_after):
                raise ValidationFailed("Not a cursor of this list.", param="starting_after")
            query = query.where(ReconItem.id > int(starting_after))
        rows = list(session.scalars(query.order_by(ReconItem.id).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = rows[:limit]
        return {
            "data": [item_view(item) for item in rows],
            "has_more": has_more,
            "next_cursor": str(rows[-1].id) if has_more and rows else None,
        }
