"""Building what reconciliation reads (settlement lines, bank statements) and the ledger it matches:
payments, refunds and paid payouts, for the reconciliation tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import sqlalchemy as sa

from services.accounts.adapters.orm import Payout
from services.accounts.adapters.reconciliation_orm import ReconCase, ReconItem, ReconRun
from services.accounts.domain.payouts import PayoutStatus, PayoutStep
from services.accounts.domain.reconciliation import DEFAULT_FEE_SCHEDULE
from services.accounts.domain.settlement_records import SettlementLine
from services.accounts.service_layer import reconciliation
from services.accounts.service_layer.money_events import release_due_holds
from services.accounts.service_layer.payout_steps import step_posting
from services.accounts.service_layer.posting import post
from shared.bank_statements.model import Balance, Statement, StatementEntry
from shared.db import utcnow
from shared.ids import new_id
from tests.ledger_support import LedgerDriver, payment_succeeded, refund_succeeded

BANK = "145"
GATEWAY = "m2t"


def domestic_fee(gross: int) -> int:
    return DEFAULT_FEE_SCHEDULE["card:domestic"].of(gross)


def capture(
    payment_id: str,
    gross: int,
    *,
    fee: int | None = None,
    batch: str = "B1",
    day: dt.date | None = None,
    line_number: int = 1,
) -> SettlementLine:
    fee = domestic_fee(gross) if fee is None else fee
    return SettlementLine(
        line_number=line_number,
        settlement_date=day or utcnow().date(),
        batch_reference=batch,
        type="capture",
        transaction_id="tx_" + payment_id[-8:],
        reference=payment_id,
        refund_id="",
        refund_reference="",
        currency="MAD",
        gross_amount=gross,
        fee_amount=fee,
        net_amount=gross - fee,
        card_scheme="cmi",
        card_region="domestic",
        occurred_at=utcnow(),
    )


def refund_line(payment_id: str, refund_id: str, amount: int, *, batch: str = "B1") -> SettlementLine:
    return dataclasses.replace(
        capture(payment_id, 1, batch=batch),
        type="refund",
        refund_id="rf_" + refund_id[-8:],
        refund_reference=refund_id,
        gross_amount=-amount,
        fee_amount=0,
        net_amount=-amount,
    )


def numbered(lines: list[SettlementLine]) -> list[SettlementLine]:
    return [dataclasses.replace(line, line_number=n) for n, line in enumerate(lines, start=1)]


class FakeReaders:
    """Stands in for the file formats' readers: each file's bytes name what it holds."""

    def __init__(self) -> None:
        self.files: dict[bytes, object] = {}

    def settlement_file(self, lines: list[SettlementLine], tag: str = "") -> bytes:
        data = f"settlement {new_id('f')} {tag}".encode()
        self.files[data] = numbered(lines)
        return data

    def statement_file(self, statements: list[Statement]) -> bytes:
        data = f"statement {new_id('f')}".encode()
        self.files[data] = statements
        return data

    def read_settlement(self, stream):
        held = self.files[stream.read()]
        if isinstance(held, Exception):
            raise held
        yield from held  # type: ignore[misc]

    def read_statements(self, data: bytes, format: str | None):
        return list(self.files[data])  # type: ignore[call-overload]


def settings_with(context, readers: FakeReaders, **changes) -> reconciliation.ReconciliationSettings:
    changes = {
        "read_settlement": readers.read_settlement,
        "read_statements": readers.read_statements,
        **changes,
    }
    settings = dataclasses.replace(context.reconciliation, **changes)
    context.reconciliation = settings
    return settings


def run_settlement(context, data: bytes, *, day: dt.date | None = None, actor: str = "cli_test_operator"):
    return reconciliation.import_file(
        context.uow_factory,
        context.reconciliation,
        io.BytesIO(data),
        reconciliation.RunRequest(
            source="gateway_settlement", name="settlement.csv", gateway=GATEWAY, day=day
        ),
        actor,
    )


def run_statement(context, data: bytes, actor: str = "cli_test_operator"):
    return reconciliation.import_file(
        context.uow_factory,
        context.reconciliation,
        io.BytesIO(data),
        reconciliation.RunRequest(source="bank_statement", name="statement.xml", format="camt053"),
        actor,
    )


def statement(
    entries: list[StatementEntry], *, closing: int, opening: int = 0, day: dt.date | None = None
) -> Statement:
    day = day or utcnow().date()
    return Statement(
        statement_id=new_id("st"),
        sequence_number=1,
        account="MA64145780000000001234567890",
        bank_code=BANK,
        currency="MAD",
        opening=Balance(day - dt.timedelta(days=1), opening),
        closing=Balance(day, closing),
        entries=tuple(entries),
    )


def entry(
    amount: int, reference: str, type_: str = "NTRF", *, bank_reference: str = "", day: dt.date | None = None
):
    day = day or utcnow().date()
    return StatementEntry(
        value_date=day,
        booking_date=day,
        amount=amount,
        transaction_type=type_,
        reference=reference,
        bank_reference=bank_reference or new_id("bk")[-16:],
    )


def paid_payments(ledger: LedgerDriver, artisan_id: str, *amounts: int) -> list[str]:
    ids = []
    for amount in amounts:
        payment_id = new_id("pay")
        assert ledger.deliver(payment_succeeded(artisan_id, amount, amount // 10, payment_id=payment_id))
        ids.append(payment_id)
    return ids


def refunded(ledger: LedgerDriver, artisan_id: str, payment_id: str, amount: int) -> str:
    refund_id = new_id("re")
    assert ledger.deliver(refund_succeeded(artisan_id, payment_id, amount, 0, refund_id=refund_id))
    return refund_id


def paid_payout(ledger: LedgerDriver, artisan_id: str, amount: int) -> Payout:
    """A payout the bank has paid from the client funds at ``BANK`` (its entries posted), funded by
    a payment released to the artisan's available balance."""
    assert ledger.deliver(payment_succeeded(artisan_id, amount, 0))
    release_due_holds(ledger.context.uow_factory, now=utcnow() + dt.timedelta(days=30))
    now = utcnow()
    with ledger.context.uow_factory() as uow:
        payout = Payout(
            id=new_id("po"),
            artisan_id=artisan_id,
            amount=amount,
            currency="MAD",
            status=PayoutStatus.PAID,
            bank_account_id=new_id("ba"),
            rib="007780000000123456789012",
            holder_name="Test Artisan",
            bank_code="007",
            partner_bank="banque_populaire",
            source_bank_code=BANK,
            source="api",
            requested_by="cli_test_operator",
            created_at=now,
            updated_at=now,
            paid_at=now,
        )
        uow.session.add(payout)
        uow.session.flush()
        post(uow, step_posting(payout, PayoutStep.CREATED))
        post(uow, step_posting(payout, PayoutStep.PAID))
        uow.commit()
        return payout


def items_of(context, run_id: str) -> list[ReconItem]:
    with context.session_factory() as session:
        return list(
            session.scalars(sa.select(ReconItem).where(ReconItem.run_id == run_id).order_by(ReconItem.id))
        )


def states_of(context, run_id: str) -> dict[str, str]:
    """object id -> state, for the run's items."""
    return {item.object_id: item.state for item in items_of(context, run_id)}


def cases(context, **where) -> list[ReconCase]:
    with context.session_factory() as session:
        query = sa.select(ReconCase).filter_by(**where).order_by(ReconCase.id)
        return list(session.scalars(query))


def run_row(context, run_id: str) -> ReconRun:
    with context.session_factory() as session:
        run = session.get(ReconRun, run_id)
        assert run is not None
        return run
