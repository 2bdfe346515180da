"""The CSV statement writer, read back with Python's csv module."""

from __future__ import annotations

import csv
import datetime as dt
import io

from shared.bank_statements import Balance, Statement, StatementEntry
from shared.bank_statements.csv_format import HEADER, write_csv

DAY = dt.date(2026, 11, 3)


def statement(*entries: StatementEntry, opening: int = 10_000) -> Statement:
    return Statement(
        statement_id="H261103ABCDEF01",
        sequence_number=3,
        account="bank:145",
        bank_code="145",
        currency="MAD",
        opening=Balance(DAY - dt.timedelta(days=1), opening),
        closing=Balance(DAY, opening + sum(entry.amount for entry in entries)),
        entries=entries,
    )


def entry(
    amount: int, reference: str = "po_01JD0000000000000000000000", description: str = "x"
) -> StatementEntry:
    return StatementEntry(
        value_date=DAY,
        booking_date=DAY,
        amount=amount,
        transaction_type="NTRF",
        reference=reference,
        bank_reference="je_01JD0000000000000000000000",
        description=description,
    )


def rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == HEADER
    return list(reader)


def test_rows_carry_centimes_decimals_and_the_running_balance():
    opening, *lines, closing = rows(write_csv(statement(entry(-1_205), entry(7), entry(250_000))))

    assert (opening["row"], opening["booking_date"], opening["running_balance"]) == (
        "opening",
        "2026-11-02",
        "10000",
    )
    assert [
        (r["amount"], r["amount_decimal"], r["running_balance"], r["running_balance_decimal"]) for r in lines
    ] == [
        ("-1205", "-12.05", "8795", "87.95"),
        ("7", "0.07", "8802", "88.02"),
        ("250000", "2500.00", "258802", "2588.02"),
    ]
    assert (closing["row"], closing["booking_date"], closing["running_balance"]) == (
        "closing",
        "2026-11-03",
        "258802",
    )
    assert all(r["entry_id"] == "je_01JD0000000000000000000000" for r in lines)


def test_a_negative_balance_and_an_empty_day():
    opening, closing = rows(write_csv(statement(opening=-50)))
    assert (opening["running_balance_decimal"], closing["running_balance_decimal"]) == ("-0.50", "-0.50")


def test_text_a_spreadsheet_would_run_is_written_as_text():
    [_, line, _] = rows(
        write_csv(statement(entry(100, reference="=HYPERLINK(1)", description='@SUM(1), "quoted"')))
    )
    assert line["reference"] == "'=HYPERLINK(1)"
    assert line["description"] == '\'@SUM(1), "quoted"'
    assert line["amount"] == "100"  # numbers stay numbers
