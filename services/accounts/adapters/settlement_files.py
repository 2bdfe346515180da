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

``plain_csv`` serves bulk loading (``service_layer/settlement_staging.py`` copies the bytes straight
into the database, which splits them): it hands the file's body on, chunk by chunk, only while the
bytes are *plain*, that is, split into the same fields by any CSV parser and needing no stripping.
A file that is not (quotes, non-ASCII text, blank lines, spaces around a value, …) is read by
``read_settlement_csv``, the reference for what a line means and for every refusal.
"""

from __future__ import annotations

import csv
import dataclasses
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

    settlement_date = _settlement_date(number, values["settlement_date"])
    kind = _kind(number, values["type"])
    currency = _currency(number, values["currency"])
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
    scheme = _card_scheme(number, values["card_scheme"])
    region = _card_region(number, values["card_region"])
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


def _settlement_date(number: int, value: str) -> dt.date:
    try:
        if not _DATE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _refuse(number, "settlement_date", f"not a date YYYY-MM-DD: {value!r}") from None


def _kind(number: int, value: str) -> str:
    if value not in SETTLEMENT_LINE_TYPES:
        raise _refuse(number, "type", f"unknown type {value!r} (one of {', '.join(SETTLEMENT_LINE_TYPES)})")
    return value


def _currency(number: int, value: str) -> str:
    if not _CURRENCY.match(value):
        raise _refuse(number, "currency", f"not an ISO 4217 currency code: {value!r}")
    return value


def _card_scheme(number: int, value: str) -> str:
    if value not in CARD_SCHEMES:
        raise _refuse(number, "card_scheme", f"unknown card scheme {value!r}")
    return value


def _card_region(number: int, value: str) -> str:
    if value not in CARD_REGIONS:
        raise _refuse(number, "card_region", f"unknown card region {value!r}")
    return value


def kinds_are_valid(
    settlement_date: str, type: str, currency: str, card_scheme: str, card_region: str
) -> bool:
    """Whether lines with these values in these five columns pass the reader's checks of them (the
    bulk loader checks each distinct combination once, and the other columns line by line)."""
    try:
        _settlement_date(0, settlement_date)
        _kind(0, type)
        _currency(0, currency)
        _card_scheme(0, card_scheme)
        _card_region(0, card_region)
    except MalformedFile:
        return False
    return True


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


# --- plain files, for bulk loading ------------------------------------------------------------------

PLAIN_CHUNK_BYTES = 1 << 20
# Printable ASCII and the line ends, less the CSV quote, the backslash (PostgreSQL's COPY gives
# ``\.`` a meaning) and ``+`` (an integer parser may accept ``+5``; the reader does not).
_PLAIN_BYTES = bytes(byte for byte in range(0x20, 0x7F) if byte not in b'"\\+') + b"\r\n"
# A value the reader would strip of a space. (A blank line, or line ends of two kinds, COPY refuses
# itself: the loader then lets the reader read the file.)
_PADDED = (b" ,", b", ", b" \r", b" \n", b"\r ", b"\n ")
_LINE_END = re.compile(rb"\r\n|\r|\n")
# The ``csv`` module refuses a field longer than its limit (131,072 characters by default); a plain
# line stays shorter than that. Checked as "every full block of this many bytes holds a line end",
# which keeps every line shorter than two blocks.
_LINE_BLOCK = 1 << 16


class NotPlain(Exception):
    """The file is not plain (``plain_csv``): it is for ``read_settlement_csv`` to read."""


@dataclasses.dataclass(frozen=True)
class PlainCsv:
    """A plain settlement file: its header, and its body (every line after the header, without
    the blank lines that may end the file), in chunks. Iterating ``body`` raises ``NotPlain`` at
    the first chunk that is not plain: what was handed on before it must then be discarded."""

    header: tuple[str, ...]
    body: Iterator[bytes]


def plain_csv(stream: IO[bytes], chunk_bytes: int = PLAIN_CHUNK_BYTES) -> PlainCsv | None:
    """The file as a ``PlainCsv`` when its header is plain and names every column once; None
    otherwise (then ``read_settlement_csv`` reads it, and refuses it if it must).

    In a plain body every line splits on commas into its fields as the ``csv`` module splits it,
    and no field is padded with spaces, so ``read_settlement_csv`` would read the same values from
    it. Blank lines (but those that end the file) and line ends of two kinds are left for COPY to
    refuse. Whether each value is *valid* is not checked here: the bulk loader checks that in SQL
    and, at the first doubt, lets ``read_settlement_csv`` read the file and name what is wrong."""
    head = stream.read(chunk_bytes).removeprefix(b"\xef\xbb\xbf")
    end = _LINE_END.search(head)
    if end is None:
        if len(head) >= chunk_bytes // 2:
            return None  # a header this long is no settlement file's
        header_bytes, terminator, rest = head, b"", b""
    else:
        header_bytes, terminator, rest = head[: end.start()], end.group(), head[end.end() :]
        if terminator == b"\r" and not rest:
            # The chunk ended between a CR and, perhaps, its LF.
            rest = stream.read(chunk_bytes)
            if rest.startswith(b"\n"):
                terminator, rest = b"\r\n", rest[1:]
    if not _is_plain(header_bytes) or len(header_bytes) >= _LINE_BLOCK:
        return None
    header = tuple(header_bytes.decode("ascii").split(","))
    if len(set(header)) != len(header) or not set(COLUMNS) <= set(header):
        return None
    return PlainCsv(header, _plain_body(terminator, rest, stream, chunk_bytes))


def _plain_body(terminator: bytes, rest: bytes, stream: IO[bytes], chunk_bytes: int) -> Iterator[bytes]:
    # ``before`` is the last byte handed on (the header's line end at first), so that a pair of
    # bytes across two chunks is seen; ``held`` the line ends a chunk ended with, handed on only
    # once more lines follow (line ends that finish the file close blank lines the reader skips);
    # ``line`` the length of the line that runs on from the chunks before.
    before, held, line = terminator[-1:], b"", 0
    chunk = rest or stream.read(chunk_bytes)
    while chunk:
        if not _is_plain(before + held + chunk):
            raise NotPlain
        line = _line_run(chunk, line)
        content = chunk.rstrip(b"\r\n")
        if content:
            yield held + content
            before, held = content[-1:], chunk[len(content) :]
        else:
            held += chunk
        chunk = stream.read(chunk_bytes)
    if before == b" ":
        raise NotPlain  # the file's last value ends with a space


def _is_plain(data: bytes) -> bool:
    if data.translate(None, _PLAIN_BYTES):
        return False
    return b" " not in data or not any(padded in data for padded in _PADDED)


def _line_run(chunk: bytes, line: int) -> int:
    """How long the line running on past ``chunk`` is (``line``: how long it was before it);
    ``NotPlain`` if a line is too long to be plain."""

    def line_end(start: int, stop: int, last: bool = False) -> int:
        find = bytes.rfind if last else bytes.find
        found = [at for at in (find(chunk, b"\n", start, stop), find(chunk, b"\r", start, stop)) if at >= 0]
        return (max(found) if last else min(found)) if found else -1

    first = line_end(0, len(chunk))
    if first < 0:
        line += len(chunk)
        if line >= 2 * _LINE_BLOCK:
            raise NotPlain
        return line
    if line + first >= 2 * _LINE_BLOCK:
        raise NotPlain
    for start in range(0, len(chunk) - _LINE_BLOCK + 1, _LINE_BLOCK):
        if line_end(start, start + _LINE_BLOCK) < 0:
            raise NotPlain
    return len(chunk) - 1 - line_end(0, len(chunk), last=True)
