"""A statement as CSV, for people and spreadsheets: one row per booked entry, between a row with
the opening balance and one with the closing balance.

Columns (RFC 4180, comma-separated, a header row, ``\\r\\n`` line ends, UTF-8):

    row                  ``opening``, ``entry`` or ``closing``
    booking_date         ISO 8601 date (the balance's date on the opening and closing rows)
    value_date           ISO 8601 date (entries only)
    entry_id             the ledger's journal entry id (the statement entry's ``bank_reference``)
    reference            the holder's reference: what caused the movement (a payout id, …)
    transaction_type     SWIFT transaction type (``NTRF``, ``NMSC``, …)
    description          free text
    amount               signed integer minor units (centimes): + money in, - money out
    amount_decimal       the same amount in major units, as an exact decimal (``-12.50``)
    currency             ISO 4217
    running_balance      the balance after the row, integer minor units
    running_balance_decimal

Amounts are integers first (what a program should sum) and decimals beside them (what a person
reads); no float is involved. A cell a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) is written with a leading apostrophe, except the
numeric columns, which are always plain numbers.
"""

from __future__ import annotations

import csv
import io

from shared.bank_statements.model import Statement
from shared.money import Money

HEADER = (
    "row",
    "booking_date",
    "value_date",
    "entry_id",
    "reference",
    "transaction_type",
    "description",
    "amount",
    "amount_decimal",
    "currency",
    "running_balance",
    "running_balance_decimal",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """Free text as a spreadsheet will not execute it (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def write_csv(statement: Statement) -> str:
    """The statement as CSV text (see the module docstring for the columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    currency = statement.currency

    def decimal(amount: int) -> str:
        return Money(amount, currency).decimal_string()

    balance = statement.opening.amount
    writer.writerow(
        (
            "opening",
            statement.opening.date.isoformat(),
            "",
            "",
            "",
            "",
            "opening balance",
            "",
            "",
            currency,
            balance,
            decimal(balance),
        )
    )
    for entry in statement.entries:
        balance += entry.amount
        writer.writerow(
            (
                "entry",
                entry.booking_date.isoformat(),
                entry.value_date.isoformat(),
                _text(entry.bank_reference),
                _text(entry.reference),
                _text(entry.transaction_type),
                _text(entry.description),
                entry.amount,
                decimal(entry.amount),
                currency,
                balance,
                decimal(balance),
            )
        )
    # The closing row states the statement's closing balance; for a consistent statement it is the
    # last running balance.
    closing = statement.closing.amount
    writer.writerow(
        (
            "closing",
            statement.closing.date.isoformat(),
            "",
            "",
            "",
            "",
            "closing balance",
            "",
            "",
            currency,
            closing,
            decimal(closing),
        )
    )
    return out.getvalue()
