"""A day reconciled against the sandboxes over HTTP: the M2T sandbox's settlement file and the bank
sandbox's camt.053 statement of the client-funds account (which credits M2T's batches, books a
reserve top-up and a bank fee), fetched through accounts' own sources as the worker does, matched
against a ledger fed by payments' events. Every line is explained, no case opens, and ``bank:145``
equals the statement's closing balance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from services.accounts.adapters.settlement_sources import HttpSettlementSource
from services.accounts.adapters.statement_sources import HttpStatementSource
from services.accounts.service_layer.recon_fetch import fetch_days_now
from services.accounts.service_layer.statements import check_integrity
from tests.http_support import served_counterparts
from tests.ledger_support import MARKETPLACE, LedgerDriver
from tests.recon_support import cases, paid_payments, run_row

pytestmark = pytest.mark.integration

M2T_KEY = "recon-m2t-key"
BANK_KEY = "recon-bank-key"


@pytest.fixture
def sandboxes() -> Iterator[dict[str, Any]]:
    with served_counterparts(M2T_KEY, BANK_KEY) as running:
        yield running


def settle_at_m2t(sandboxes, day: dt.date, payment_id: str, amount: int) -> dict:
    answer = (
        sandboxes["m2t"]
        .test_client()
        .post(
            "/v1/test-helpers/settlement-lines",
            json={"date": day.isoformat(), "amount": amount, "card_scheme": "cmi", "reference": payment_id},
            headers={"Authorization": f"Bearer {M2T_KEY}", "Idempotency-Key": f"line-{payment_id}"},
        )
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_a_day_of_the_sandboxes_files_reconciles(accounts_app, sandboxes):
    context = accounts_app.extensions["hirfa"]
    ledger = LedgerDriver(accounts_app)
    day = dt.datetime.now(dt.UTC).date()
    artisan = ledger.artisan_at_tier(3)
    amounts = (10_000, 20_000, 30_000)
    payments = paid_payments(ledger, artisan, *amounts)
    lines = [settle_at_m2t(sandboxes, day, p, amount) for p, amount in zip(payments, amounts, strict=True)]
    bank = sandboxes["bank"].test_client()
    auth = {"Authorization": f"Bearer {BANK_KEY}"}
    top_up = bank.post(
        "/v1/test-helpers/incoming-transfers",
        json={"bank_code": "145", "amount": 50_000, "reference": f"RSV-{MARKETPLACE}", "debtor_name": "Souk"},
        headers={**auth, "Idempotency-Key": "top-up"},
    )
    assert top_up.status_code == 201
    assert (
        bank.post(
            "/v1/test-helpers/charges", json={"bank_code": "145", "amount": 700}, headers=auth
        ).status_code
        == 201
    )

    fetched = fetch_days_now(
        context.uow_factory,
        context.reconciliation,
        {"m2t": HttpSettlementSource(sandboxes["m2t_url"], api_key=M2T_KEY, timeout=5.0)},
        HttpStatementSource(sandboxes["bank_url"], api_key=BANK_KEY, callback_secret="b", timeout=5.0),
        day,
    )

    settlement, statement = (run_row(context, f.run_id) for f in fetched)
    assert (settlement.source, statement.source) == ("gateway_settlement", "bank_statement")
    assert settlement.counts["matched"] == 3 and sum(settlement.counts.values()) == 3
    assert statement.counts["matched"] == 3 and sum(statement.counts.values()) == 3  # batch, top-up, fee
    assert cases(context) == []
    net = sum(line["net_amount"] for line in lines)
    assert statement.closing_balance == statement.expected_balance == net + 50_000 - 700
    assert ledger.shown("platform", "platform", "bank:145") == statement.closing_balance
    assert ledger.shown("platform", "platform", "gateway_receivable:m2t") == 0
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 50_000
    assert check_integrity(context.uow_factory())["differences"] == []
