"""A settlement file is staged in bulk when it is plain (copied as it is, its values checked in SQL),
and the acquirer's CSV reader stays the reference for what it says: a file the bulk path takes gives
the items the reader reads from it, a file it refuses gets the reader's refusal (line, column,
reason), and anything the bulk path cannot vouch for (quotes, padded values, blank lines, another
time format, …) is read by the reader line by line. On SQLite every file is read by the reader."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from services.accounts.adapters.reconciliation_orm import ReconFile, ReconItem
from services.accounts.adapters.settlement_files import COLUMNS, read_settlement_csv
from services.accounts.service_layer import reconciliation, settlement_staging
from services.accounts.service_layer.recon_readers import UnreadableFile, problems_of
from shared.db import utcnow
from tests.ledger_support import LedgerDriver
from tests.recon_support import domestic_fee, items_of, paid_payments, refunded

GATEWAY = "m2t"


@pytest.fixture
def context(accounts_app):
    return accounts_app.extensions["hirfa"]


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def read_by_reader(monkeypatch) -> list[bool]:
    """Whether the last file was read line by line by the reader (else copied in bulk)."""
    used: list[bool] = [False]
    stage_lines = settlement_staging._stage_lines

    def spied(*args, **kwargs):
        used[0] = True
        return stage_lines(*args, **kwargs)

    monkeypatch.setattr(settlement_staging, "_stage_lines", spied)
    return used


def bulk(context) -> bool:
    """Whether a plain file is copied in bulk on this database."""
    return context.engine.dialect.name == "postgresql"


def line(**values: str | int) -> dict[str, str]:
    stamp = int(utcnow().timestamp())
    row = {
        "settlement_date": utcnow().date().isoformat(),
        "batch_reference": "M2T-B1",
        "type": "capture",
        "transaction_id": "m2t_tx",
        "reference": "",
        "refund_id": "",
        "refund_reference": "",
        "currency": "MAD",
        "gross_amount": "10000",
        "fee_amount": str(domestic_fee(10_000)),
        "net_amount": str(10_000 - domestic_fee(10_000)),
        "card_scheme": "cmi",
        "card_region": "domestic",
        "occurred_at": str(stamp),
    }
    row.update({key: str(value) for key, value in values.items()})
    return row


def capture(payment_id: str, gross: int, fee: int | None = None, **values: str | int) -> dict[str, str]:
    fee = domestic_fee(gross) if fee is None else fee
    return line(
        reference=payment_id,
        transaction_id="tx_" + payment_id[-8:],
        gross_amount=gross,
        fee_amount=fee,
        net_amount=gross - fee,
        **values,
    )


def csv_file(rows: list[dict[str, str]], *, columns=COLUMNS, end: str = "\r\n", bom: bool = False) -> bytes:
    lines = [",".join(columns)] + [",".join(row.get(column, "x") for column in columns) for row in rows]
    return ("\ufeff" if bom else "").encode() + (end.join(lines) + end).encode()


def reconcile(context, data: bytes):
    return reconciliation.import_file(
        context.uow_factory,
        context.reconciliation,
        io.BytesIO(data),
        reconciliation.RunRequest(source="gateway_settlement", name="settlement.csv", gateway=GATEWAY),
        "cli_test_operator",
    )


def as_read(data: bytes) -> list[tuple]:
    """What the reader reads from ``data``, as the items keep it."""
    return [
        (
            line.line_number,
            line.type,
            line.refund_reference if line.type == "refund" else line.reference,
            line.reference,
            line.batch_reference,
            line.gross_amount,
            line.fee_amount,
            line.net_amount,
            line.card_scheme,
            line.card_region,
            line.settlement_date,
            line.transaction_id,
        )
        for line in read_settlement_csv(io.BytesIO(data))
    ]


def as_staged(context, run_id: str) -> list[tuple]:
    return [
        (
            item.line_number,
            item.kind,
            item.object_id,
            item.reference,
            item.batch_reference,
            item.amount,
            item.fee,
            item.net,
            item.card_scheme,
            item.card_region,
            item.value_date,
            item.description,
        )
        for item in items_of(context, run_id)
    ]


def count(context, model) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


# Each: how the file is written, and whether a plain file's bulk path takes it (else the reader).
LAYOUTS = {
    "CRLF, as M2T writes it": ({}, True),
    "LF, a byte order mark, blank lines ending the file": (
        {"end": "\n", "bom": True, "trailing": "\n\n"},
        True,
    ),
    "CR line ends": ({"end": "\r"}, True),
    "columns in another order, and one Hirfa does not read": ({"columns": "reordered"}, True),
    "amounts with leading zeros": ({"zeros": True}, True),
    "quoted values": ({"quoted": True}, False),
    "a value padded with a space": ({"padded": True}, False),
    "a blank line between two lines": ({"blank": True}, False),
    "an ISO 8601 time": ({"iso": True}, False),
    "two kinds of line ends": ({"mixed": True}, False),
}


def written(rows: list[dict[str, str]], layout: dict) -> bytes:
    rows = [dict(row) for row in rows]
    columns = COLUMNS
    if layout.get("columns") == "reordered":
        columns = ("comment", *reversed(COLUMNS))
        for row in rows:
            row["comment"] = "settled"
    if layout.get("zeros"):
        for row in rows:
            row["fee_amount"] = "0" + row["fee_amount"]
    if layout.get("quoted"):
        rows[0] = {key: f'"{value}"' for key, value in rows[0].items()}
    if layout.get("padded"):
        rows[1]["gross_amount"] = " " + rows[1]["gross_amount"]
    if layout.get("iso"):
        rows[2]["occurred_at"] = "2026-12-06T10:00:00+01:00"
    data = csv_file(rows, columns=columns, end=layout.get("end", "\r\n"), bom=layout.get("bom", False))
    if layout.get("trailing"):
        data += layout["trailing"].encode()
    if layout.get("blank"):
        first_end = data.index(b"\r\n", data.index(b"\r\n") + 2)
        data = data[:first_end] + b"\r\n" + data[first_end:]
    if layout.get("mixed"):
        data = data.replace(b"\r\n", b"\n", 2)
    return data


@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_a_file_reads_the_same_in_bulk_as_line_by_line_and_every_rule_holds(
    context, ledger, read_by_reader, layout_name
):
    layout, plain = LAYOUTS[layout_name]
    artisan = ledger.artisan_at_tier(3)
    first, second, third = paid_payments(ledger, artisan, 10_000, 25_000, 7_000)
    refund = refunded(ledger, artisan, first, 4_000)
    rows = [
        capture(first, 10_000),
        capture(second, 25_000, fee=900),  # above the schedule
        line(
            type="refund",
            reference=first,
            refund_id="m2t_re_1",
            refund_reference=refund,
            gross_amount=-4_000,
            fee_amount=0,
            net_amount=-4_000,
        ),
        capture(third, 7_500),  # the ledger captured 7,000
        capture("pay_NOT_IN_THE_LEDGER", 3_000),
        capture(first, 10_000),  # the same line again
        line(transaction_id="m2t_foreign_1"),  # no reference: a transaction Hirfa never made
        line(transaction_id="m2t_foreign_2"),
    ]
    data = written(rows, layout)

    run, created = reconcile(context, data)

    assert created and run.status == "completed"
    assert read_by_reader[0] is not (plain and bulk(context))
    assert as_staged(context, run.id) == as_read(data)
    assert [item.state for item in items_of(context, run.id)] == [
        "matched",
        "fee_mismatch",
        "matched",
        "amount_mismatch",
        "missing_in_ledger",
        "duplicate",
        "missing_in_ledger",
        "missing_in_ledger",
    ]
    # The same file again changes nothing; its lines in another file are duplicates once settled.
    same, created = reconcile(context, data)
    assert same.id == run.id and not created and count(context, ReconItem) == 8
    later, _ = reconcile(context, data.replace(b"M2T-B1", b"M2T-B2"))
    assert [item.state for item in items_of(context, later.id)] == [
        "duplicate",
        "duplicate",
        "duplicate",
        "amount_mismatch",
        "missing_in_ledger",
        "duplicate",
        "missing_in_ledger",
        "missing_in_ledger",
    ]


GOOD = line(reference="pay_1", transaction_id="m2t_tx_1")
GOOD_REFUND = line(
    type="refund",
    reference="pay_1",
    refund_id="m2t_re_1",
    refund_reference="re_1",
    gross_amount=-2_500,
    fee_amount=0,
    net_amount=-2_500,
)


@pytest.mark.parametrize(
    "bad",
    [
        {"gross_amount": "100.00"},
        {"fee_amount": "3OO"},
        {"net_amount": "9701"},
        {"type": "payout"},
        {"settlement_date": "2026-13-06"},
        {"settlement_date": "06/12/2026"},
        {"settlement_date": "2026-2-06"},
        {"currency": "mad"},
        {"card_scheme": "amex"},
        {"card_region": "abroad"},
        {"occurred_at": "yesterday"},
        {"occurred_at": "-1"},
        {"occurred_at": "999999999999999"},
        {"occurred_at": "1234567890123456"},
        {"batch_reference": ""},
        {"transaction_id": ""},
        {"gross_amount": "-10000", "net_amount": "-10300"},
        {"gross_amount": "+10000"},
        {"gross_amount": "0x2710"},
        {"gross_amount": "10_000"},
        {"gross_amount": "0000000000000010000", "net_amount": "0000000000000009700"},
        {"gross_amount": "1000000000000000", "net_amount": "999999999999700"},
        {"gross_amount": "-", "net_amount": "-"},
        {"gross_amount": ""},
        {"type": "refund", "gross_amount": "-2500", "fee_amount": "0", "net_amount": "-2500"},
        {"fee_amount": "-1", "net_amount": "10001"},
        "a short line",
        "a long line",
    ],
    ids=str,
)
def test_a_malformed_file_gets_the_readers_refusal_and_imports_nothing(context, bad):
    if bad == "a short line":
        data = csv_file([GOOD_REFUND]) + b"2026-12-06,M2T-B1,capture\r\n"
    elif bad == "a long line":
        data = csv_file([GOOD_REFUND]) + (",".join(GOOD.values()) + ",extra\r\n").encode()
    else:
        data = csv_file([GOOD_REFUND, {**GOOD, **bad}])
    with pytest.raises(Exception) as by_reader:
        list(read_settlement_csv(io.BytesIO(data)))

    with pytest.raises(UnreadableFile) as refused:
        reconcile(context, data)

    assert refused.value.errors == problems_of(by_reader.value)
    assert refused.value.errors[0].get("line") in (None, 2)
    assert count(context, ReconItem) == 0 and count(context, ReconFile) == 0


def test_a_file_of_the_header_alone_is_an_empty_run(context, read_by_reader):
    for data in (",".join(COLUMNS).encode(), (",".join(COLUMNS) + "\r\n\r\n").encode()):
        run, created = reconcile(context, data)
        assert created and run.status == "completed" and run.lines_total == 0
        assert read_by_reader[0] is not bulk(context)
