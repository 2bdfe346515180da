"""Reading an acquirer's settlement CSV (the M2T sandbox's columns), one line at a time.

``read_settlement_csv`` wraps the byte stream in a text decoder and the ``csv`` module's reader,
both of which pull the file line by line: a 1,000,000-line file is read in constant memory. Each line
is checked and turned into a ``SettlementLine``; the first bad line raises
``MalformedFile`` naming the line and the column. The caller stages the lines in one transaction, so
a file refused half-way imports nothing.

Line numbers are ``SettlementLine.line_number``'s: 1 is the first line after the header (the header
is line 0).

Columns (any order; the header names them)::

    settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,
    currency,gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at

Amounts are signed integer centimes from Hirfa's side (a capture's gross positive, a refund's or a
chargeback's negative), ``net_amount = gross_amount - fee_amount``, ``occurred_at`` unix seconds
or an ISO 8601 time with its offset.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import IO

from services.accounts.domain.settlement_records import SETTLEMENT_LINE_TYPES, SettlementLine
from shared.bank_statements.model import MalformedFile

COLUMNS = (
    "settlement_date",
    "batch_reference",
    "type",
    "transaction_id",
    "reference",
    "refund_id",
    "refund_reference",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "card_scheme",
    "card_region",
    "occurred_at",
)
CARD_SCHEMES = ("visa", "mastercard", "cmi", "wallet")
CARD_REGIONS = ("domestic", "international")
_INTEGER = re.compile(r"^-?[0-9]{1,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _refuse(line: int, column: str | None, reason: str) -> MalformedFile:
    problem: dict[str, object] = {"line": line, "reason": reason}
    if column is not None:
        problem["column"] = column
    return MalformedFile("malformed settlement file", [problem])


def read_settlement_csv(stream: IO[bytes]) -> Iterator[SettlementLine]:
    """The settlement lines of ``stream``, in file order; ``MalformedFile`` at the first bad line."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise _refuse(0, None, "empty file: no header line") from None
        except (UnicodeDecodeError, csv.Error) as error:
            raise _refuse(0, None, f"unreadable header: {error}") from None
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise _refuse(0, missing[0], f"the header lacks the column(s) {', '.join(missing)}")
        position = {column: header.index(column) for column in COLUMNS}
        line_number = 0
        while True:
            line_number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as error:
                raise _refuse(line_number, None, f"unreadable line: {error}") from None
            if not row or row == [""]:
                continue  # a blank line (e.g. the file's last CRLF doubled) carries nothing
            if len(row) != len(header):
                column = header[len(row)] if len(row) < len(header) else None
                raise _refuse(line_number, column, f"{len(row)} fields where the header has {len(header)}")
            yield _line(line_number, {column: row[index].strip() for column, index in position.items()})
    finally:
        # The wrapper must not close the caller's stream when it is collected.
        text.detach()


def _line(number: int, values: dict[str, str]) -> SettlementLine:
    def integer(column: str) -> int:
        value = values[column]
        if not _INTEGER.match(value):
            raise _refuse(number, column, f"not an amount in integer centimes: {value!r}")
        return int(value)

    def required(column: str) -> str:
        if not values[column]:
            raise _refuse(number, column, "empty")
        return values[column]

    date_text = values["settlement_date"]
    try:
        if not _DATE.match(date_text):
            raise ValueError
        settlement_date = dt.date.fromisoformat(date_text)
    except ValueError:
        raise _refuse(number, "settlement_date", f"not a date YYYY-MM-DD: {date_text!r}") from None
    kind = values["type"]
    if kind not in SETTLEMENT_LINE_TYPES:
        raise _refuse(number, "type", f"unknown type {kind!r} (one of {', '.join(SETTLEMENT_LINE_TYPES)})")
    currency = values["currency"]
    if not _CURRENCY.match(currency):
        raise _refuse(number, "currency", f"not an ISO 4217 currency code: {currency!r}")
    gross, fee, net = integer("gross_amount"), integer("fee_amount"), integer("net_amount")
    if kind == "capture" and gross <= 0:
        raise _refuse(number, "gross_amount", "a capture's gross amount is positive")
    if kind != "capture" and gross >= 0:
        raise _refuse(number, "gross_amount", f"a {kind}'s gross amount is negative")
    if fee < 0:
        raise _refuse(number, "fee_amount", "the fee is not negative")
    if net != gross - fee:
        raise _refuse(number, "net_amount", f"net {net} is not gross {gross} - fee {fee}")
    if kind == "refund":
        # The refund is matched (and deduplicated) by its reference: a blank one is no refund.
        required("refund_id")
        required("refund_reference")
    scheme = values["card_scheme"]
    if scheme not in CARD_SCHEMES:
        raise _refuse(number, "card_scheme", f"unknown card scheme {scheme!r}")
    region = values["card_region"]
    if region not in CARD_REGIONS:
        raise _refuse(number, "card_region", f"unknown card region {region!r}")
    return SettlementLine(
        line_number=number,
        settlement_date=settlement_date,
        batch_reference=required("batch_reference"),
        type=kind,
        transaction_id=required("transaction_id"),
        # The payment's reference; blank on a line for a transaction Hirfa never made (a foreign
        # line: a break, deduplicated by its transaction_id).
        reference=values["reference"],
        refund_id=values["refund_id"],
        refund_reference=values["refund_reference"],
        currency=currency,
        gross_amount=gross,
        fee_amount=fee,
        net_amount=net,
        card_scheme=scheme,
        card_region=region,
        occurred_at=_occurred_at(number, values["occurred_at"]),
    )


def _occurred_at(number: int, value: str) -> dt.datetime:
    if _INTEGER.match(value) and not value.startswith("-"):
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _refuse(number, "occurred_at", f"not unix seconds nor an ISO 8601 time with offset: {value!r}")
    return moment.astimezone(dt.UTC)
