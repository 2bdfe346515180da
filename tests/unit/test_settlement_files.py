"""Reading the acquirer's settlement CSV (``services.accounts.adapters.settlement_files``): every
column checked, a bad line refused naming its line and column, and the file read as a stream; and
which files are plain enough to be copied in bulk (``plain_csv``), whatever the chunks they are
read in."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc
from collections.abc import Iterator

import pytest

from services.accounts.adapters.settlement_files import COLUMNS, NotPlain, plain_csv, read_settlement_csv
from shared.bank_statements import MalformedFile

HEADER = ",".join(COLUMNS)
CAPTURE = (
    "2026-12-06,M2T-20261206-CARD,capture,m2t_tx_1,pay_1,,,MAD,10000,300,9700,visa,international,1796601600"
)
REFUND = "2026-12-06,M2T-20261206-CARD,refund,m2t_tx_1,pay_1,m2t_re_1,re_1,MAD,-2500,0,-2500,visa,international,1796605200"
CHARGEBACK = "2026-12-06,M2T-20261206-CARD,chargeback,m2t_tx_2,pay_2,,,MAD,-5000,0,-5000,cmi,domestic,2026-12-06T10:00:00+01:00"


def read(*lines: str) -> list:  # type: ignore[type-arg]
    return list(read_settlement_csv(io.BytesIO("\r\n".join([HEADER, *lines, ""]).encode())))


def refused(*lines: str, header: str = HEADER) -> dict[str, object]:
    with pytest.raises(MalformedFile) as error:
        list(read_settlement_csv(io.BytesIO("\r\n".join([header, *lines]).encode())))
    (problem,) = error.value.problems
    return problem


def test_lines_are_read_with_their_numbers_and_types() -> None:
    capture, refund, chargeback = read(CAPTURE, REFUND, CHARGEBACK)
    assert (
        capture.line_number,
        capture.type,
        capture.gross_amount,
        capture.fee_amount,
        capture.net_amount,
    ) == (
        1,
        "capture",
        10000,
        300,
        9700,
    )
    assert capture.settlement_date == dt.date(2026, 12, 6)
    assert capture.batch_reference == "M2T-20261206-CARD"
    assert (capture.card_scheme, capture.card_region) == ("visa", "international")
    assert capture.occurred_at == dt.datetime.fromtimestamp(1796601600, dt.UTC)
    assert (refund.refund_id, refund.refund_reference, refund.net_amount) == ("m2t_re_1", "re_1", -2500)
    assert chargeback.occurred_at == dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
    assert chargeback.line_number == 3


def test_columns_may_come_in_any_order_and_an_empty_day_is_the_header_alone() -> None:
    assert read() == []
    reordered = list(reversed(COLUMNS))
    row = ",".join(reversed(CAPTURE.split(",")))
    (line,) = list(read_settlement_csv(io.BytesIO(f"{','.join(reordered)}\r\n{row}\r\n".encode())))
    assert line.transaction_id == "m2t_tx_1" and line.net_amount == 9700


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        (("10000", "100.00"), "gross_amount", "not an amount"),
        (("300,", "3OO,"), "fee_amount", "not an amount"),
        (("9700", "9701"), "net_amount", "net 9701 is not gross 10000 - fee 300"),
        (("capture", "payout"), "type", "unknown type 'payout'"),
        (("2026-12-06,M2T", "2026-13-06,M2T"), "settlement_date", "not a date"),
        (("2026-12-06,M2T", "06/12/2026,M2T"), "settlement_date", "not a date"),
        ((",MAD,", ",mad,"), "currency", "not an ISO 4217"),
        (("visa", "amex"), "card_scheme", "unknown card scheme"),
        (("international", "abroad"), "card_region", "unknown card region"),
        (("1796601600", "yesterday"), "occurred_at", "not unix seconds"),
        (("M2T-20261206-CARD", ""), "batch_reference", "empty"),
        (("10000,300,9700", "-10000,300,-10300"), "gross_amount", "positive"),
    ],
)
def test_a_bad_line_is_refused_naming_line_and_column(
    change: tuple[str, str], column: str, reason: str
) -> None:
    bad = CAPTURE.replace(*change, 1)
    assert bad != CAPTURE
    problem = refused(REFUND, bad)
    assert problem["line"] == 2 and problem["column"] == column
    assert reason in str(problem["reason"])


def test_missing_columns_and_short_lines_are_refused() -> None:
    header = HEADER.replace(",card_region", "")
    assert refused(CAPTURE, header=header) == {
        "line": 0,
        "column": "card_region",
        "reason": "the header lacks the column(s) card_region",
    }
    short = CAPTURE.rsplit(",", 2)[0]
    problem = refused(CAPTURE, short)
    assert (problem["line"], problem["column"]) == (2, "card_region")
    assert refused(header="")["reason"] == "empty file: no header line"
    assert refused(header="a,b")["reason"] == "the header lacks the column(s) " + ", ".join(COLUMNS)


def test_a_refund_without_its_refund_id_is_refused() -> None:
    problem = refused(REFUND.replace("m2t_re_1", ""))
    assert (problem["line"], problem["column"]) == (1, "refund_id")


def test_a_refund_without_its_refund_reference_is_refused() -> None:
    refund = REFUND.split(",")
    refund[COLUMNS.index("refund_reference")] = ""
    problem = refused(",".join(refund))
    assert (problem["line"], problem["column"], problem["reason"]) == (1, "refund_reference", "empty")


class _Lines(io.RawIOBase):
    """A big settlement file made up as it is read: nothing of it is ever whole in memory."""

    def __init__(self, count: int) -> None:
        self._chunks: Iterator[bytes] = self._generate(count)
        self._buffer = b""

    def _generate(self, count: int) -> Iterator[bytes]:
        yield (HEADER + "\r\n").encode()
        for index in range(count):
            yield (CAPTURE.replace("m2t_tx_1", f"m2t_tx_{index}") + "\r\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:  # type: ignore[override]
        while len(self._buffer) < len(target):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def test_the_file_is_read_as_a_stream_in_flat_memory() -> None:
    tracemalloc.start()
    try:
        count = sum(1 for _line in read_settlement_csv(io.BufferedReader(_Lines(50_000))))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    # 50,000 lines are ~5 MB of CSV; reading them line by line stays far below that.
    assert peak < 1_000_000


def test_the_callers_stream_stays_open() -> None:
    stream = io.BytesIO(f"{HEADER}\r\n{CAPTURE}\r\n".encode())
    assert len(list(read_settlement_csv(stream))) == 1
    assert not stream.closed


# --- plain files ----------------------------------------------------------------------------------

PLAIN_BODY = "\r\n".join([CAPTURE, REFUND, CAPTURE.replace("m2t_tx_1", "m2t_tx_2")])


def plain_body(data: bytes, chunk_bytes: int = 1 << 20) -> bytes | str | None:
    """The body ``plain_csv`` hands on, "not plain" when it stops, None when it declines at once."""
    plain = plain_csv(io.BytesIO(data), chunk_bytes)
    if plain is None:
        return None
    try:
        return b"".join(plain.body)
    except NotPlain:
        return "not plain"


@pytest.mark.parametrize("end", ["\r\n", "\n", "\r"])
def test_a_plain_body_is_handed_on_whole_whatever_the_chunks(end: str) -> None:
    body = PLAIN_BODY.replace("\r\n", end)
    data = f"\ufeff{HEADER}{end}{body}{end}{end}{end}".encode()
    # From the smallest chunk that holds the header (its byte order mark and line end too).
    for chunk_bytes in range(len(HEADER) + 3 + len(end), len(data) + 2):
        assert plain_body(data, chunk_bytes) == body.encode(), chunk_bytes
    assert plain_csv(io.BytesIO(data)).header == COLUMNS  # type: ignore[union-attr]


def test_a_value_the_reader_would_strip_is_not_plain_wherever_the_chunks_end() -> None:
    separators = [at for at, char in enumerate(PLAIN_BODY) if char in ",\r\n"]
    for at in [0, *separators, *(s + 1 for s in separators), len(PLAIN_BODY)]:
        padded = PLAIN_BODY[:at] + " " + PLAIN_BODY[at:]
        data = f"{HEADER}\r\n{padded}\r\n".encode()
        for chunk_bytes in range(len(HEADER) + 2, len(data) + 2, 7):
            assert plain_body(data, chunk_bytes) == "not plain", (at, chunk_bytes)
    # A space inside a value is no padding.
    inside = PLAIN_BODY.replace("M2T-20261206-CARD", "M2T 20261206 CARD")
    assert plain_body(f"{HEADER}\r\n{inside}".encode()) == inside.encode()


@pytest.mark.parametrize(
    "body",
    [
        CAPTURE.replace("pay_1", '"pay_1"'),  # quoted
        CAPTURE.replace("M2T-20261206-CARD", "M2T-20261206-CARTE-BANCAIRE-\u00e9"),  # not ASCII
        CAPTURE.replace("pay_1", "pay\\1"),  # a backslash, which COPY reads as an escape
        CAPTURE.replace("10000", "+10000"),  # an integer parser's sign the reader refuses
        CAPTURE.replace("pay_1", "pay\t1"),
        CAPTURE.replace("m2t_tx_1", "m2t_tx_" + "1" * 140_000),  # a field the csv module refuses
    ],
)
def test_what_is_not_plain_is_left_to_the_reader(body: str) -> None:
    assert plain_body(f"{HEADER}\r\n{CAPTURE}\r\n{body}\r\n".encode()) == "not plain"


def test_a_header_that_is_not_plain_or_lacks_a_column_is_left_to_the_reader() -> None:
    assert plain_body(f'"{HEADER}"\r\n{CAPTURE}'.encode()) is None
    assert plain_body(f"{HEADER},currency\r\n{CAPTURE},MAD".encode()) is None
    assert plain_body(f"{HEADER.replace(',card_region', '')}\r\n{CAPTURE}".encode()) is None
    assert plain_body(b"") is None
