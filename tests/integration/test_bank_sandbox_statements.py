"""The bank sandbox's client-funds account: what it books (payouts, returns, the acquirer's
settlements, incoming transfers, charges) and its daily statements, read by independent parsers."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import mt940
import pytest
from lxml import etree

from sandbox.bank import client_funds
from sandbox.bank.app import create_app, stop_background_work
from sandbox.bank.config import DEFAULT_CLIENT_FUNDS_IBAN, SandboxBankConfig
from sandbox.m2t.app import create_app as create_m2t_app
from sandbox.m2t.app import stop_background_work as stop_m2t
from sandbox.m2t.config import SandboxM2TConfig
from shared.bank_statements.camt053 import read_camt053, schema
from shared.bank_statements.mt940 import read_mt940
from shared.banking import make_rib
from tests.http_support import CallbackReceiver, ServedApp, wait_until

pytestmark = pytest.mark.integration

API_KEY = "test-bank-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
M2T_KEY = "test-m2t-key"
DAY = dt.date(2026, 12, 6)
_references = itertools.count(1)

HEADER = (
    "settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,currency,"
    "gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at"
)


def settlement_csv(day: str, *lines: tuple[str, str, int, int]) -> str:
    """(batch kind, type, gross, fee) per line."""
    rows = [HEADER]
    compact = day.replace("-", "")
    for index, (kind, kind_of_line, gross, fee) in enumerate(lines):
        scheme = "wallet" if kind == "WALLET" else "visa"
        rows.append(
            f"{day},M2T-{compact}-{kind},{kind_of_line},m2t_tx_{index},pay_{index},,,MAD,"
            f"{gross},{fee},{gross - fee},{scheme},domestic,1796601600"
        )
    return "\r\n".join(rows) + "\r\n"


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dt.date]]:
    """The sandbox's idea of the current UTC day; a test moves it forward by setting ``today[0]``."""
    current = [DAY]
    monkeypatch.setattr(client_funds, "utc_today", lambda: current[0])
    yield current


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver(path="/callbacks/bank")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_bank() -> Iterator[Callable[..., Any]]:
    apps = []

    def build(fetch: Callable[[str], str] | None = None, **overrides: Any):
        settings: dict[str, Any] = dict(
            api_key=API_KEY,
            callback_secret="s",
            callback_delay_seconds=0.01,
            duplicate_callbacks=False,
            callback_timeout_seconds=2.0,
            callback_retries=1,
            callback_backoff_seconds=0.01,
        )
        settings.update(overrides)
        app = create_app(SandboxBankConfig(**settings), fetch_settlement=fetch)
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        stop_background_work(app)


def statement(bank, day: dt.date, kind: str = "mt940", code: str = "145"):
    return bank.get(f"/v1/accounts/{code}/statements/{day.isoformat()}?format={kind}", headers=AUTH)


def pay(bank, receiver: CallbackReceiver, account_number: str, amount: int) -> str:
    reference = f"po_{next(_references):026d}"
    body = {
        "reference": reference,
        "rib": make_rib("007", "780", account_number),
        "holder_name": "Fatima Zahra El Amrani",
        "amount": amount,
        "currency": "MAD",
        "callback_url": receiver.url,
    }
    created = bank.post("/v1/transfers", json=body, headers=AUTH).get_json()
    wait_until(
        lambda: bank.get(f"/v1/transfers/{created['id']}", headers=AUTH).get_json()["status"] == "paid"
    )
    return reference


def test_payouts_are_debited_returned_or_left_off_by_the_test_rib(make_bank, receiver, today):
    bank = make_bank()
    paid = pay(bank, receiver, "0000001234567890", 10_000)
    returned = pay(bank, receiver, "0000001234560004", 20_000)
    pay(bank, receiver, "0000001234560005", 40_000)  # reported paid, never debited
    (read,) = read_mt940(statement(bank, DAY).data)
    assert [(e.amount, e.transaction_type, e.reference) for e in read.entries] == [
        (-10_000, "NTRF", paid),
        (-20_000, "NTRF", returned),
        (20_000, "NRTI", returned),
    ]
    assert (read.opening.amount, read.closing.amount) == (0, -10_000)
    assert (read.account, read.bank_code) == (DEFAULT_CLIENT_FUNDS_IBAN, "145")


def test_settlement_batches_are_credited_a_lag_later_short_and_negative_ones_too(make_bank, today):
    yesterday = (DAY - dt.timedelta(days=1)).isoformat()
    files = {
        yesterday: settlement_csv(
            yesterday,
            ("CARD", "capture", 10_000, 300),
            ("CARD", "capture", 5_075, 226),  # ends in 75: the batch comes 3 centimes short
            ("WALLET", "capture", 2_000, 20),
            ("WALLET", "refund", -4_000, 0),  # the wallet batch is negative: a debit
        )
    }
    asked: list[str] = []

    def fetch(day: str) -> str:
        asked.append(day)
        return files.get(day, HEADER + "\r\n")

    bank = make_bank(fetch)
    (read,) = read_camt053(statement(bank, DAY, "camt053").data)
    compact = yesterday.replace("-", "")
    assert [(e.reference, e.amount) for e in read.entries] == [
        (f"M2T-{compact}-CARD", 9_700 + 4_849 - 3),
        (f"M2T-{compact}-WALLET", 1_980 - 4_000),
    ]
    assert read.entries[0].counterparty_name == "M2T ACQUIRING"
    assert read.closing.amount == 9_700 + 4_849 - 3 + 1_980 - 4_000
    # A past file is read once; the statement asked again reads nothing more.
    statement(bank, DAY)
    assert asked == [yesterday]


def test_lag_zero_credits_the_same_day_and_rereads_a_day_not_over(make_bank, today):
    files = {DAY.isoformat(): settlement_csv(DAY.isoformat(), ("CARD", "capture", 10_000, 300))}
    bank = make_bank(lambda day: files.get(day, HEADER + "\r\n"), settlement_lag_days=0)
    assert read_mt940(statement(bank, DAY).data)[0].closing.amount == 9_700
    files[DAY.isoformat()] = settlement_csv(
        DAY.isoformat(), ("CARD", "capture", 10_000, 300), ("CARD", "capture", 1_000, 165)
    )
    assert read_mt940(statement(bank, DAY).data)[0].closing.amount == 9_700 + 835


def test_incoming_transfers_charges_and_opening_equals_the_previous_closing(make_bank, today):
    bank = make_bank()
    top_up = {
        "bank_code": "145",
        "amount": 500_000,
        "currency": "MAD",
        "reference": "RSV-mkt_01JD5Z3X4Y5Z6A7B8C9D0E1F2G",
        "debtor_name": "Coopérative Tifawin",
        "debtor_account": "MA64011519000001205000534921",
    }
    first = bank.post(
        "/v1/test-helpers/incoming-transfers", json=top_up, headers={**AUTH, "Idempotency-Key": "k1"}
    )
    again = bank.post(
        "/v1/test-helpers/incoming-transfers", json=top_up, headers={**AUTH, "Idempotency-Key": "k1"}
    )
    assert (first.status_code, again.status_code, again.get_json()) == (201, 200, first.get_json())
    today[0] = DAY + dt.timedelta(days=1)
    fee = bank.post("/v1/test-helpers/charges", json={"bank_code": "145", "amount": 1_500}, headers=AUTH)
    assert fee.status_code == 201

    (first_day,) = read_camt053(statement(bank, DAY, "camt053").data)
    (second_day,) = read_camt053(statement(bank, today[0], "camt053").data)
    assert [(e.transaction_type, e.amount, e.reference) for e in first_day.entries] == [
        ("NTRF", 500_000, top_up["reference"])
    ]
    assert first_day.entries[0].counterparty_name == "Coopérative Tifawin"
    assert second_day.opening.amount == first_day.closing.amount == 500_000
    assert [(e.transaction_type, e.amount) for e in second_day.entries] == [("NCHG", -1_500)]
    assert second_day.closing.amount == 498_500


def test_statements_pass_the_independent_parsers(make_bank, today):
    bank = make_bank()
    bank.post(
        "/v1/test-helpers/incoming-transfers",
        json={
            "bank_code": "145",
            "amount": 12_345,
            "reference": "unknown payer",
            "debtor_name": "محمد العلوي",
        },
        headers=AUTH,
    )
    text = statement(bank, DAY).get_data(as_text=True)
    parsed = mt940.parse(text)
    assert parsed.data["final_closing_balance"].amount.amount == Decimal("123.45")
    assert "/NAME/mhmd l'lwy" in parsed[0].data["transaction_details"].replace("\n", "")
    document = etree.fromstring(statement(bank, DAY, "camt053").data)
    assert schema().validate(document), schema().error_log


def test_statement_errors(make_bank, today):
    bank = make_bank()
    assert statement(bank, DAY, code="007").status_code == 404
    assert statement(bank, DAY, kind="pdf").get_json()["code"] == "invalid_field"
    assert statement(bank, DAY + dt.timedelta(days=1)).status_code == 422
    assert bank.get("/v1/accounts/145/statements/2026-13-01", headers=AUTH).status_code == 422
    assert bank.get("/v1/accounts/145/statements/2026-12-06").status_code == 401
    bad = bank.post("/v1/test-helpers/charges", json={"bank_code": "145", "amount": -5}, headers=AUTH)
    assert (bad.status_code, bad.get_json()["param"]) == (422, "amount")


def test_the_bank_reads_the_m2t_sandboxs_file_over_http(make_bank):
    """Against the real M2T sandbox: a capture paid today is credited on today's statement (lag 0)."""
    m2t_app = create_m2t_app(
        SandboxM2TConfig(
            api_key=M2T_KEY, callback_secret="c", callback_delay_seconds=0.01, callback_retries=1
        )
    )
    served = ServedApp(m2t_app)
    served.start()
    try:
        m2t = m2t_app.test_client()
        key = {"Authorization": f"Bearer {M2T_KEY}"}
        line = m2t.post(
            "/v1/test-helpers/settlement-lines",
            json={"date": client_funds.utc_today().isoformat(), "amount": 10_075, "card_scheme": "cmi"},
            headers={**key, "Idempotency-Key": "line-1"},
        ).get_json()
        bank = make_bank(None, acquirer_url=served.url, acquirer_api_key=M2T_KEY, settlement_lag_days=0)
        (read,) = read_mt940(statement(bank, client_funds.utc_today()).data)
        assert [(e.reference, e.amount) for e in read.entries] == [
            (line["batch_reference"], line["net_amount"] - 3)
        ]
        wrong_key = make_bank(None, acquirer_url=served.url, acquirer_api_key="nope", settlement_lag_days=0)
        assert statement(wrong_key, client_funds.utc_today()).status_code == 503
    finally:
        served.stop()
        stop_m2t(m2t_app)


def test_a_helper_amount_too_large_for_a_statement_is_refused(make_bank, today):
    bank = make_bank()
    for helper in ("/v1/test-helpers/incoming-transfers", "/v1/test-helpers/charges"):
        body = {"bank_code": "145", "amount": 10**15, "reference": "RSV-mkt_1"}
        refused = bank.post(helper, json=body, headers=AUTH)
        assert (refused.status_code, refused.get_json()["param"]) == (422, "amount")
    # Nothing was booked: the day's statement still reads.
    assert read_mt940(statement(bank, DAY).data)[0].closing.amount == 0


def test_a_helper_key_used_again_for_another_request_is_a_conflict(make_bank, today):
    bank = make_bank()
    keyed = {**AUTH, "Idempotency-Key": "k-shared"}
    top_up = {"bank_code": "145", "amount": 1_000, "reference": "RSV-mkt_1"}
    assert bank.post("/v1/test-helpers/incoming-transfers", json=top_up, headers=keyed).status_code == 201
    other_body = bank.post(
        "/v1/test-helpers/incoming-transfers", json={**top_up, "amount": 2_000}, headers=keyed
    )
    other_endpoint = bank.post(
        "/v1/test-helpers/charges", json={"bank_code": "145", "amount": 1_000}, headers=keyed
    )
    assert [other_body.status_code, other_endpoint.status_code] == [409, 409]
    assert other_body.get_json()["code"] == "idempotency_key_reuse"
    (read,) = read_mt940(statement(bank, DAY).data)
    assert [(e.transaction_type, e.amount) for e in read.entries] == [("NTRF", 1_000)]


@pytest.mark.parametrize(
    "broken",
    [
        HEADER.replace("net_amount", "net")
        + "\r\n2026-12-05,M2T-20261205-CARD,capture,t,p,,,MAD,100,1,99,visa,d,1\r\n",
        settlement_csv("2026-12-05", ("CARD", "capture", 10_000, 300)).replace("9700", "97.00"),
        HEADER + "\r\n2026-12-05,M2T-20261205-CARD,capture\r\n",
    ],
    ids=["missing column", "amount not an integer", "row cut short"],
)
def test_an_acquirer_file_that_cannot_be_read_is_the_acquirer_unavailable(make_bank, today, broken):
    bank = make_bank(lambda day: broken)
    answer = statement(bank, DAY)
    assert (answer.status_code, answer.get_json()["code"]) == (503, "acquirer_unavailable")
