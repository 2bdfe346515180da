"""Accounts' reconciliation sources against the running sandboxes: the M2T settlement file over
``HttpSettlementSource`` and the bank's client-funds statements over ``HttpStatementSource``, each
served from a thread on a free port, and what they fetch read by Hirfa's readers."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest

from services.accounts.adapters.settlement_files import read_settlement_csv
from services.accounts.adapters.settlement_sources import HttpSettlementSource, make_settlement_sources
from services.accounts.adapters.statement_sources import HttpStatementSource
from services.accounts.bootstrap import make_reconciliation_sources
from services.accounts.config import load_config
from shared.bank_statements.camt053 import read_camt053
from shared.bank_statements.mt940 import read_mt940
from shared.config import ConfigError
from shared.partner_ports import PartnerError
from tests.http_support import served_counterparts

pytestmark = pytest.mark.integration

M2T_KEY = "contract-m2t-key"
BANK_KEY = "contract-bank-key"
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[str, Any]]:
    with served_counterparts(M2T_KEY, BANK_KEY) as running:
        yield running


def add_line(sandboxes: dict[str, Any], amount: int) -> dict[str, Any]:
    answer = (
        sandboxes["m2t"]
        .test_client()
        .post(
            "/v1/test-helpers/settlement-lines",
            json={"date": TODAY, "amount": amount},
            headers={"Authorization": f"Bearer {M2T_KEY}", "Idempotency-Key": f"line-{amount}"},
        )
    )
    assert answer.status_code == 201
    return answer.get_json()


def test_the_settlement_source_fetches_m2ts_file(sandboxes):
    line = add_line(sandboxes, 12_300)
    source = HttpSettlementSource(sandboxes["m2t_url"], api_key=M2T_KEY, timeout=2.0)
    lines = list(read_settlement_csv(io.BytesIO(source.fetch_settlement(TODAY))))
    (read,) = [one for one in lines if one.transaction_id == line["transaction_id"]]
    assert (read.gross_amount, read.fee_amount, read.net_amount) == (
        12_300,
        line["fee_amount"],
        line["net_amount"],
    )
    assert M2T_KEY not in repr(source)
    with pytest.raises(PartnerError) as refused:
        HttpSettlementSource(sandboxes["m2t_url"], api_key="wrong", timeout=2.0).fetch_settlement(TODAY)
    assert refused.value.status == 401 and not refused.value.transient
    with pytest.raises(ValueError):
        source.fetch_settlement("06/12/2026")


def test_the_statement_source_fetches_both_formats(sandboxes):
    line = add_line(sandboxes, 45_600)
    bank_client = sandboxes["bank"].test_client()
    bank_client.post(
        "/v1/test-helpers/charges",
        json={"bank_code": "145", "amount": 700},
        headers={"Authorization": f"Bearer {BANK_KEY}"},
    )
    source = HttpStatementSource(sandboxes["bank_url"], api_key=BANK_KEY, callback_secret="b", timeout=2.0)
    (from_mt940,) = read_mt940(source.fetch_statement("145", TODAY, "mt940"))
    (from_camt,) = read_camt053(source.fetch_statement("145", TODAY, "camt053"))
    assert from_mt940.closing == from_camt.closing
    assert [(e.reference, e.amount) for e in from_camt.entries] == [
        (e.reference, e.amount) for e in from_mt940.entries
    ]
    references = {e.reference: e.amount for e in from_camt.entries}
    assert references[line["batch_reference"]] >= line["net_amount"]
    assert ("NCHG", -700) in [(e.transaction_type, e.amount) for e in from_camt.entries]
    with pytest.raises(PartnerError) as missing:
        source.fetch_statement("007", TODAY, "mt940")
    assert missing.value.status == 404
    with pytest.raises(ValueError):
        source.fetch_statement("145", TODAY, "pdf")


def test_accounts_wires_one_settlement_source_per_gateway_name():
    config = load_config(m2t_url="http://m2t.test", m2t_api_key="k", settlement_gateways="m2t")
    settlements, statements = make_reconciliation_sources(config)
    assert set(settlements) == {"m2t"} and isinstance(statements, HttpStatementSource)
    assert make_settlement_sources((), m2t_url="x", m2t_api_key="k", timeout=1.0) == {}
    with pytest.raises(ConfigError):
        load_config(settlement_gateways="m2t,adyen")
