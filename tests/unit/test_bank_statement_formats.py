"""MT940 and camt.053.001.08 (``shared.bank_statements``): what the writers produce reads back the
same, is read by independent parsers (the PyPI package ``mt-940``; the official ISO 20022 XSD), and
a malformed file is refused naming the line or XPath at fault."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from importlib import resources

import mt940
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from shared.bank_statements import Balance, MalformedFile, Statement, StatementEntry
from shared.bank_statements.camt053 import read_camt053, schema, write_camt053
from shared.bank_statements.mt940 import read_mt940, write_mt940, write_mt940_messages
from shared.bank_statements.swift import SWIFT_X_LINE, restore_reference, to_swift_x

DAY = dt.date(2026, 12, 6)
IBAN = "MA64145000000000000000000012"
PAYOUT_ID = "po_01JD5Z3X4Y5Z6A7B8C9D0E1F2G"


def statement(entries: list[StatementEntry], opening: int = 100_000, **changes: object) -> Statement:
    fields: dict[str, object] = {
        "statement_id": "145-20261206",
        "sequence_number": 340,
        "account": IBAN,
        "bank_code": "145",
        "currency": "MAD",
        "opening": Balance(DAY - dt.timedelta(days=1), opening),
        "closing": Balance(DAY, opening + sum(entry.amount for entry in entries)),
        "entries": tuple(entries),
        "holder_name": "HIRFA CLIENT FUNDS",
        "created_at": dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC),
    }
    fields.update(changes)
    return Statement(**fields)  # type: ignore[arg-type]


def day_entries() -> list[StatementEntry]:
    return [
        StatementEntry(DAY, DAY, 1_234_500, "NTRF", "M2T-20261205-CARD", "BK0001", "Settlement M2T"),
        StatementEntry(
            DAY,
            DAY,
            -45_000,
            "NTRF",
            PAYOUT_ID,
            "TRF-000017",
            "Payout",
            "محمد العلوي",
            "MA64011519000001205000534921",
        ),
        StatementEntry(DAY, DAY, 45_000, "NRTI", PAYOUT_ID, "TRF-000017R", "Returned: account closed"),
        StatementEntry(DAY, DAY, -1_500, "NCHG", "NONREF", "FEE-1", "Frais de tenue de compte"),
        StatementEntry(
            DAY,
            DAY,
            500_000,
            "NTRF",
            "RSV-mkt_01JD5Z3X4Y5Z6A7B8C9D0E1F2H",
            "BK0002",
            "Reserve top-up",
            "Coopérative Tifawin",
            "MA64",
        ),
    ]


# --- MT940 --------------------------------------------------------------------------------------


def test_mt940_follows_the_swift_line_rules() -> None:
    text = write_mt940(statement(day_entries()))
    assert text.endswith("\r\n-\r\n")
    lines = text.split("\r\n")[:-1]
    assert [line[:5] for line in lines[:4]] == [":20:1", ":25:M", ":28C:", ":60F:"]
    assert lines[-2].startswith(":62F:C261206MAD")
    for line in lines:
        assert SWIFT_X_LINE.fullmatch(line), line
        assert len(line) <= 65 or line.startswith(":61:"), line
    assert "\n" not in text.replace("\r\n", "")  # CRLF only


def test_arabic_and_accented_names_are_transliterated_not_dropped() -> None:
    assert to_swift_x("محمد العلوي") == "mhmd l'lwy"
    assert to_swift_x("Coopérative Tifawin & fils_1") == "Cooperative Tifawin + fils-1"
    text = write_mt940(statement(day_entries()))
    assert "/NAME/mhmd l'l" in text.replace("\r\n", "")
    assert "Cooperative Tifawin" in text.replace("\r\n", "")


def test_an_independent_parser_reads_the_mt940() -> None:
    written = statement(day_entries())
    parsed = mt940.parse(write_mt940(written))
    assert parsed.data["transaction_reference"] == "145-20261206"
    assert parsed.data["account_identification"] == IBAN
    assert parsed.data["final_opening_balance"].amount.amount == Decimal("1000.00")
    assert parsed.data["final_closing_balance"].amount.amount == Decimal(written.closing.amount) / 100
    amounts = [transaction.data["amount"].amount * 100 for transaction in parsed]
    assert amounts == [entry.amount for entry in written.entries]
    assert [transaction.data["id"] for transaction in parsed] == ["NTRF", "NTRF", "NRTI", "NCHG", "NTRF"]
    details = parsed[1].data["transaction_details"].replace("\n", "")
    assert f"/EREF/{PAYOUT_ID.replace('_', '-')}" in details


def test_mt940_round_trip_keeps_references_amounts_and_dates() -> None:
    written = statement(day_entries())
    (read,) = read_mt940(write_mt940(written).encode())
    assert read.entries[1].reference == PAYOUT_ID  # the underscore comes back
    assert read.entries[1].counterparty_name == "mhmd l'lwy"
    expected = [
        (e.value_date, e.booking_date, e.amount, e.transaction_type, e.reference, e.bank_reference)
        for e in written.entries
    ]
    assert [
        (e.value_date, e.booking_date, e.amount, e.transaction_type, e.reference, e.bank_reference)
        for e in read.entries
    ] == expected
    assert (read.opening, read.closing, read.account, read.bank_code, read.currency) == (
        written.opening,
        written.closing,
        IBAN,
        "145",
        "MAD",
    )
    assert (read.statement_id, read.sequence_number) == ("145-20261206", 340)


def test_several_messages_in_one_file_are_several_statements() -> None:
    first = statement(day_entries())
    second = statement([], opening=first.closing.amount, statement_id="145-20261207", sequence_number=341)
    read = read_mt940(write_mt940_messages([first, second]).encode())
    assert [s.statement_id for s in read] == ["145-20261206", "145-20261207"]
    assert read[1].entries == () and read[1].opening.amount == first.closing.amount


def test_a_negative_balance_is_a_debit_balance() -> None:
    written = statement([StatementEntry(DAY, DAY, -30_000, "NTRF", "x")], opening=10_000)
    text = write_mt940(written)
    assert ":62F:D261206MAD200,00" in text
    assert read_mt940(text.encode())[0].closing.amount == -20_000


def _malformed(text: str) -> list[dict[str, object]]:
    with pytest.raises(MalformedFile) as refused:
        read_mt940(text.encode("latin-1"))
    return refused.value.problems


def test_malformed_mt940_is_refused_naming_the_line() -> None:
    good = write_mt940(statement(day_entries()))
    lines = good.split("\r\n")
    # Line 5 is the first :61:; break its amount.
    assert lines[4].startswith(":61:")
    broken = lines.copy()
    broken[4] = broken[4].replace("C12345,00", "C12345.00")
    problems = _malformed("\r\n".join(broken))
    assert problems[0]["line"] == 5 and ":61:" in str(problems[0]["reason"])

    # The closing balance that does not add up is named at its own line.
    wrong_total = good.replace(":62F:C261206MAD", ":62F:C261206MAD1")
    problems = _malformed(wrong_total)
    closing_line = next(i for i, line in enumerate(lines, start=1) if line.startswith(":62F:"))
    assert problems == [
        {
            "line": closing_line,
            "reason": ":62F: closing balance is not the opening balance plus the statement lines",
        }
    ]

    # A character outside the SWIFT X set, and an unknown field.
    problems = _malformed(good.replace("Payout", "Payout_é", 1))
    assert problems[0]["reason"] == "a character outside the SWIFT X set"
    problems = _malformed(good.replace(":28C:", ":99:", 1))
    assert {"line": 3, "reason": "unknown field :99:"} in problems
    assert any("no :28C:" in str(p["reason"]) for p in problems)

    # A missing closing balance, and something that is not MT940 at all.
    assert any("no closing balance" in str(p["reason"]) for p in _malformed(good.replace(":62F:", ":64:")))
    assert _malformed("hello\r\n")[0] == {"line": 1, "reason": "text outside any field"}
    with pytest.raises(MalformedFile) as refused:
        read_mt940(good.encode().replace(b"Payout", "Payé".encode(), 1))
    assert refused.value.problems[0]["reason"] == "a character outside the SWIFT X set"


def test_writer_refuses_what_mt940_cannot_say() -> None:
    with pytest.raises(ValueError):
        write_mt940(statement(day_entries(), statement_id="a-statement-id-longer-than-16"))
    with pytest.raises(ValueError):
        write_mt940(statement([StatementEntry(DAY, DAY, 1, "transfer", "x")]))
    inconsistent = statement(day_entries(), closing=Balance(DAY, 0))
    with pytest.raises(ValueError):
        write_mt940(inconsistent)


def test_hirfa_ids_survive_the_swift_character_set() -> None:
    assert restore_reference(to_swift_x(PAYOUT_ID)) == PAYOUT_ID
    assert restore_reference("M2T-20261206-CARD") == "M2T-20261206-CARD"


_names = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), max_size=40)
_entries = st.builds(
    StatementEntry,
    value_date=st.just(DAY),
    booking_date=st.just(DAY),
    amount=st.integers(-(10**9), 10**9),
    transaction_type=st.sampled_from(["NTRF", "NCHG", "NRTI", "NMSC"]),
    reference=st.sampled_from(
        [PAYOUT_ID, "M2T-20261206-WALLET", "RSV-mkt_01JD5Z3X4Y5Z6A7B8C9D0E1F2H", "NONREF"]
    ),
    bank_reference=st.sampled_from(["", "B1", "TRF-000000000000000019"]),
    description=_names,
    counterparty_name=_names,
)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(_entries, max_size=8), opening=st.integers(-(10**9), 10**9))
def test_any_statement_round_trips_through_both_formats(entries: list[StatementEntry], opening: int) -> None:
    written = statement(entries, opening=opening)
    (from_mt940,) = read_mt940(write_mt940(written).encode())
    (from_camt,) = read_camt053(write_camt053(written))
    for read in (from_mt940, from_camt):
        assert read.is_consistent()
        assert (read.opening, read.closing) == (written.opening, written.closing)
        assert [(e.amount, e.transaction_type, e.reference) for e in read.entries] == [
            (e.amount, e.transaction_type, e.reference) for e in written.entries
        ]
    # camt.053 is Unicode: every field comes back as it was (within the schema's text sizes).
    assert from_camt.entries == tuple(
        StatementEntry(
            e.value_date,
            e.booking_date,
            e.amount,
            e.transaction_type,
            e.reference,
            e.bank_reference,
            e.description.strip(),
            e.counterparty_name.strip(),
            e.counterparty_account,
        )
        for e in written.entries
    )


# --- camt.053 -----------------------------------------------------------------------------------


def test_the_vendored_xsd_is_the_official_one_unchanged() -> None:
    xsd = resources.files("shared.bank_statements").joinpath("xsd/camt.053.001.08.xsd").read_bytes()
    assert (
        hashlib.sha256(xsd).hexdigest() == "ca0b135cc8e2dde5b2f99af6b6c514a8f29d6e7c6cf98e9ea84d247189868ff5"
    )
    assert b"Generated by Standards Editor" in xsd[:200]
    assert b'targetNamespace="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"' in xsd[:600]


def test_the_camt053_validates_against_the_official_xsd() -> None:
    document = etree.fromstring(write_camt053(statement(day_entries())))
    assert schema().validate(document), schema().error_log
    ns = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}
    assert document.findtext("c:BkToCstmrStmt/c:Stmt/c:Acct/c:Id/c:IBAN", namespaces=ns) == IBAN
    ends = document.findall(".//c:EndToEndId", ns)
    assert [e.text for e in ends][:2] == ["M2T-20261205-CARD", PAYOUT_ID]
    names = [n.text for n in document.findall(".//c:RltdPties//c:Nm", ns)]
    assert names == ["محمد العلوي", "Coopérative Tifawin"]


def test_camt053_round_trip_is_exact() -> None:
    written = statement(day_entries())
    assert read_camt053(write_camt053(written)) == [written]
    several = [written, statement([], opening=written.closing.amount, statement_id="145-20261207")]
    assert read_camt053(write_camt053(several)) == several


def _camt_problems(data: bytes) -> list[dict[str, object]]:
    with pytest.raises(MalformedFile) as refused:
        read_camt053(data)
    return refused.value.problems


def test_a_camt053_failing_the_xsd_is_refused_with_the_xpath_and_line() -> None:
    good = write_camt053(statement(day_entries()))
    bad = good.replace(b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>MINUS</CdtDbtInd>", 1)
    (problem,) = _camt_problems(bad)
    assert problem["xpath"] == "/Document/BkToCstmrStmt/Stmt/Ntry[2]/CdtDbtInd"
    assert problem["line"] == good[: good.index(b"<CdtDbtInd>DBIT")].count(b"\n") + 1
    assert "MINUS" in str(problem["reason"])

    missing = good.replace(b"<Id>145-20261206</Id>", b"", 1)
    assert _camt_problems(missing)[0]["xpath"].startswith("/Document/BkToCstmrStmt/Stmt")  # type: ignore[union-attr]

    not_xml = _camt_problems(b"<Document><Stmt>")
    assert not_xml[0]["line"] == 1

    other_version = good.replace(b"camt.053.001.08", b"camt.053.001.02")
    assert _camt_problems(other_version)[0]["xpath"] == "/Document"


def test_a_camt053_that_does_not_add_up_is_refused() -> None:
    good = write_camt053(statement(day_entries()))
    bad = good.replace(b'<Amt Ccy="MAD">12345.00</Amt>', b'<Amt Ccy="MAD">12345.01</Amt>', 1)
    assert bad != good
    (problem,) = _camt_problems(bad)
    assert problem["xpath"] == "/Document/BkToCstmrStmt/Stmt/Bal[2]"
    three_decimals = good.replace(b'<Amt Ccy="MAD">15.00</Amt>', b'<Amt Ccy="MAD">15.001</Amt>', 1)
    assert any(p["reason"] == "amount has more than two decimals" for p in _camt_problems(three_decimals))


def test_camt053_reader_expands_no_entity() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>'
    )
    problems = _camt_problems(evil)
    assert "root:" not in str(problems)


def test_an_mt940_entry_date_that_is_not_a_date_is_refused_naming_the_line() -> None:
    lines = write_mt940(statement(day_entries())).split("\r\n")
    assert lines[4].startswith(":61:2612061206C")
    lines[4] = lines[4].replace(":61:2612061206C", ":61:2612061232C")
    assert _malformed("\r\n".join(lines)) == [{"line": 5, "reason": ":61: entry date is not a date"}]


@pytest.mark.parametrize("zone", ["Z", "+01:00", "-05:00"])
def test_camt053_dates_with_a_zone_read_as_their_day(zone: str) -> None:
    written = statement(day_entries())
    data = write_camt053(written)
    zoned = data.replace(b"-12-06</Dt>", f"-12-06{zone}</Dt>".encode()).replace(
        b"-12-05</Dt>", f"-12-05{zone}</Dt>".encode()
    )
    assert zoned.count(zone.encode()) >= 2
    assert read_camt053(zoned) == [written]
