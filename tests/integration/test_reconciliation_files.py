"""Reconciliation of real files, read by the formats' own readers: the acquirer's settlement CSV, a
camt.053 and an MT940 statement, uploaded over HTTP; malformed ones refused whole with the line or
XPath at fault; the worker's fetch of each day that is over, once; and ``hirfa accounts reconcile``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import uuid

import pytest
from click.testing import CliRunner

from services.accounts.adapters.orm import JournalEntry
from services.accounts.adapters.reconciliation_orm import ReconFetchedDay, ReconFile, ReconItem, ReconRun
from services.accounts.cli import cli
from services.accounts.service_layer import reconciliation
from services.accounts.service_layer.recon_fetch import fetch_due_days
from shared.auth.scopes import Role
from shared.bank_statements.camt053 import write_camt053
from shared.bank_statements.mt940 import write_mt940
from shared.db import utcnow
from shared.ids import new_id
from tests.ledger_support import LedgerDriver
from tests.recon_support import capture, domestic_fee, entry, paid_payments, paid_payout, statement

HEADER = (
    "settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,"
    "currency,gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at"
)


def settlement_csv(lines) -> bytes:
    rows = [HEADER]
    for line in lines:
        rows.append(
            ",".join(
                str(value)
                for value in (
                    line.settlement_date.isoformat(),
                    line.batch_reference,
                    line.type,
                    line.transaction_id,
                    line.reference,
                    line.refund_id,
                    line.refund_reference,
                    line.currency,
                    line.gross_amount,
                    line.fee_amount,
                    line.net_amount,
                    line.card_scheme,
                    line.card_region,
                    int(line.occurred_at.timestamp()),
                )
            )
        )
    return ("\r\n".join(rows) + "\r\n").encode()


@pytest.fixture
def context(accounts_app):
    return accounts_app.extensions["hirfa"]


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def operator(issue_token) -> dict:
    return {"Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_test_operator")}


def upload(client, headers, data: bytes, name: str, **form):
    body = {"file": (io.BytesIO(data), name), **form}
    return client.post(
        "/v1/reconciliation/runs", data=body, headers=headers, content_type="multipart/form-data"
    )


def count(context, model) -> int:
    import sqlalchemy as sa

    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_settlement_csv_and_its_statement_in_both_formats_reconcile(client, operator, context, ledger):
    artisan = ledger.artisan_at_tier(3)
    first, second = paid_payments(ledger, artisan, 10_000, 20_000)
    csv = settlement_csv([capture(first, 10_000, batch="M2T-1"), capture(second, 20_000, batch="M2T-1")])
    settled = upload(client, operator, csv, "m2t.csv", source="gateway_settlement", gateway="m2t")
    assert settled.status_code == 201, settled.json
    assert settled.json["counts"]["matched"] == 2 and settled.json["progress"]["lines_total"] == 2

    net = 30_000 - domestic_fee(10_000) - domestic_fee(20_000)
    payout = paid_payout(ledger, artisan, 5_000)
    day_statement = statement([entry(net, "M2T-1"), entry(-5_000, payout.id)], closing=net - 5_000)
    camt = upload(client, operator, write_camt053(day_statement), "145.xml", source="bank_statement")
    assert camt.status_code == 201, camt.json
    assert camt.json["format"] == "camt053" and camt.json["bank_code"] == "145"
    assert camt.json["counts"]["matched"] == 2 and sum(camt.json["counts"].values()) == 2
    assert camt.json["expected_balance"] == camt.json["closing_balance"] == net - 5_000

    # The same day as MT940: another file, the same bank lines: every line is a duplicate.
    mt940 = write_mt940(dataclasses.replace(day_statement, statement_id="MT940-1")).encode()
    again = upload(client, operator, mt940, "145.sta", source="bank_statement")
    assert again.status_code == 201, again.json
    assert again.json["format"] == "mt940" and again.json["counts"]["duplicate"] == 2


@pytest.mark.parametrize(
    "name, data, form, where",
    [
        (
            "bad-amount.csv",
            (
                HEADER
                + "\r\n2026-12-06,B1,capture,tx1,pay_1,,,MAD,12.50,150,1100,cmi,domestic,1765000000\r\n"
            ).encode(),
            {"source": "gateway_settlement", "gateway": "m2t"},
            {"line": 1, "column": "gross_amount"},
        ),
        (
            "broken.sta",
            b":20:X\r\n:25:ACCOUNT\r\n:61:nonsense\r\n-\r\n",
            {"source": "bank_statement", "format": "mt940"},
            {},
        ),
        (
            "invalid.xml",
            b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><Nope/></Document>',
            {"source": "bank_statement"},
            {"xpath": None},
        ),
    ],
)
def test_a_malformed_file_is_refused_with_where_and_nothing_is_imported(
    client, operator, context, name, data, form, where
):
    refused = upload(client, operator, data, name, **form)
    assert refused.status_code == 422, refused.json
    assert refused.json["code"] == "malformed_file" and refused.json["errors"]
    problem = refused.json["errors"][0]
    for key, value in where.items():
        assert key in problem and (value is None or problem[key] == value)
    assert count(context, ReconFile) == 0 and count(context, ReconItem) == 0


class FakeM2T:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: list[str] = []

    def fetch_settlement(self, day: str) -> bytes:
        self.asked.append(day)
        return self.files.get(day, (HEADER + "\r\n").encode())


class FakeBank:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def fetch_statement(self, bank_code: str, day: str, format: str) -> bytes:
        self.asked.append((bank_code, day, format))
        when = dt.date.fromisoformat(day)
        return write_camt053(
            dataclasses.replace(statement([], closing=0, day=when), statement_id=f"ST-{day}")
        )


def test_the_worker_fetches_each_day_that_is_over_once(context, ledger):
    today = utcnow().date()
    two_days_ago = today - dt.timedelta(days=2)
    settings = dataclasses.replace(context.reconciliation, first_day=two_days_ago)
    m2t, bank = FakeM2T({}), FakeBank()

    assert fetch_due_days(context.uow_factory, settings, {"m2t": m2t}, bank, today=today) == 4
    days = [two_days_ago.isoformat(), (today - dt.timedelta(days=1)).isoformat()]
    assert m2t.asked == days and bank.asked == [("145", day, "camt053") for day in days]
    assert count(context, ReconFetchedDay) == 4

    assert fetch_due_days(context.uow_factory, settings, {"m2t": m2t}, bank, today=today) == 0
    assert len(m2t.asked) == 2


def test_a_failing_source_is_tried_again_from_the_same_day(context):
    today = utcnow().date()
    settings = dataclasses.replace(context.reconciliation, first_day=today - dt.timedelta(days=1))

    class Down:
        def fetch_settlement(self, day: str) -> bytes:
            raise TimeoutError("m2t did not answer")

    assert fetch_due_days(context.uow_factory, settings, {"m2t": Down()}, None, today=today) == 0
    assert count(context, ReconFetchedDay) == 0
    assert fetch_due_days(context.uow_factory, settings, {"m2t": FakeM2T({})}, None, today=today) == 1


def test_a_run_that_fails_to_finish_keeps_neither_the_others_nor_the_fetch_waiting(context, monkeypatch):
    today = utcnow().date()
    settings = dataclasses.replace(context.reconciliation, first_day=today - dt.timedelta(days=1))
    stuck, later = new_id("rr"), new_id("rr")
    with context.uow_factory() as uow:
        for run_id in (stuck, later):
            uow.session.add(
                ReconFile(
                    id=f"rf_{run_id}",
                    sha256=run_id.ljust(64, "0"),
                    source="gateway_settlement",
                    name="f.csv",
                    size=1,
                    received_at=utcnow(),
                )
            )
            uow.session.flush()
            uow.session.add(
                ReconRun(
                    id=run_id,
                    file_id=f"rf_{run_id}",
                    source="gateway_settlement",
                    gateway="m2t",
                    status="posting",
                    lines_total=0,
                    lines_done=0,
                    counts={},
                    requested_by="t",
                    created_at=utcnow(),
                )
            )
        uow.commit()
    finish = reconciliation.finish_run

    def failing_for_the_stuck_one(uow_factory, settings, run_id, progress=None):
        if run_id == stuck:
            raise RuntimeError("a run that keeps failing")
        return finish(uow_factory, settings, run_id, progress)

    monkeypatch.setattr(reconciliation, "finish_run", failing_for_the_stuck_one)

    assert fetch_due_days(context.uow_factory, settings, {"m2t": FakeM2T({})}, None, today=today) == 2
    with context.session_factory() as session:
        assert session.get(ReconRun, stuck).status == "posting"
        assert session.get(ReconRun, later).status == "completed"
    assert count(context, ReconFetchedDay) == 1


def test_the_cli_reconciles_a_file_with_a_progress_bar(
    context, ledger, clean_databases, tmp_path, monkeypatch
):
    artisan = ledger.artisan_at_tier(3)
    [payment] = paid_payments(ledger, artisan, 10_000)
    path = tmp_path / f"settlement-{uuid.uuid4().hex}.csv"
    path.write_bytes(settlement_csv([capture(payment, 10_000)]))
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", clean_databases["accounts"])
    monkeypatch.setenv("ACCOUNTS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_JSON", "false")

    result = CliRunner().invoke(
        cli, ["reconcile", str(path), "--source", "gateway_settlement", "--gateway", "m2t"]
    )

    assert result.exit_code == 0, result.output
    assert "staging and posting lines" in result.output and "'matched': 1" in result.output
    assert count(context, JournalEntry) >= 2
    again = CliRunner().invoke(cli, ["reconcile", str(path), "--source", "gateway_settlement"])
    assert again.exit_code == 0 and "already ran for this file" in again.output
    assert CliRunner().invoke(cli, ["reconcile", "--fetch"]).exit_code == 2
