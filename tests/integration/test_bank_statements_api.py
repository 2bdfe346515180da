"""``GET /v1/statements``: statements of the client-funds account ``bank:{code}`` and of artisans'
available accounts, read back with parsers that are not Hirfa's own, checked against the ledger;
and tenant isolation: a bank partner sees its own bank's account and artisans only."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from services.accounts.domain.ledger import artisan, bank, gateway_receivable, marketplace
from services.accounts.domain.postings import Posting
from services.accounts.service_layer import posting as posting_module
from services.accounts.service_layer.posting import post
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.config import PROJECT_ROOT
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.ids import new_id
from tests.ledger_support import MARKETPLACE, LedgerDriver, bank_account_linked

pytestmark = pytest.mark.integration

RIB_AT_145 = make_rib("145", "780", "0000001234567890")
RIB_AT_007 = make_rib("007", "780", "0000001234567890")
DAY_1, DAY_2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def auth(issue_token):
    def headers(role: Role, client_id: str | None = None, bank_code: str | None = None) -> dict[str, str]:
        default = {
            Role.MARKETPLACE: MARKETPLACE,
            Role.OPERATOR: "cli_test_operator",
            Role.BANK_PARTNER: "cli_test_bank",
        }
        token = issue_token(role, client_id=client_id or default[role], bank_code=bank_code)
        return {"Authorization": "Bearer " + token}

    return headers


def _post_at(
    ledger: LedgerDriver, monkeypatch, when: dt.datetime, *, cause: str, lines, artisan_id=None
) -> str:
    """Post one entry through ``posting.post`` as if it were ``when``."""
    monkeypatch.setattr(posting_module, "utcnow", lambda: when)
    cause_id = new_id({"payout": "po", "payment": "pay"}.get(cause, "stl"))
    uow = ledger.context.uow_factory()
    with uow:
        entry = post(
            uow,
            Posting(
                cause=cause,
                cause_id=cause_id,
                posting_key=f"{cause}:{cause_id}:test",
                description=f"test {cause}",
                currency="MAD",
                lines=tuple(lines),
                artisan_id=artisan_id,
            ),
        )
        uow.commit()
    monkeypatch.undo()
    return entry.id


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def two_days(ledger, monkeypatch) -> dict:
    """Two days at bank 145: an artisan paid there (A) and one paid at bank 007 (B).

    day 1  09:00  a marketplace's fee  Dr gateway_receivable 27,500 / Cr its commission 27,500
           10:00  settlement   Dr bank:145 50,000 / Cr gateway_receivable 50,000
           11:00  A earns      Dr gateway_receivable 30,000 / Cr A available 30,000
    day 2  09:00  payout of A  Dr A available 12,000 / Cr bank:145 12,000
           15:00  settlement   Dr bank:145 7,500 / Cr gateway_receivable 7,500
           16:00  B earns      (on bank 007's side only)
    """
    paid_here, paid_elsewhere = ledger.artisan_at_tier(3), ledger.artisan_at_tier(3)
    ledger.deliver(bank_account_linked(paid_here, RIB_AT_145))
    ledger.deliver(bank_account_linked(paid_elsewhere, RIB_AT_007))
    m2t = gateway_receivable("m2t")
    entries = {
        # What the acquirer owes before it settles: the receivable never goes below zero.
        "fee_elsewhere": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_1, 9),
            cause="payment",
            lines=[(m2t, 27_500), (marketplace("cli_other_marketplace", "commission"), -27_500)],
        ),
        "settle_1": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_1, 10),
            cause="settlement",
            lines=[(bank("145"), 50_000), (m2t, -50_000)],
        ),
        "earn_a": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_1, 11),
            cause="payment",
            lines=[(m2t, 30_000), (artisan(paid_here, "available"), -30_000)],
            artisan_id=paid_here,
        ),
        "payout_a": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_2, 9),
            cause="payout",
            lines=[(artisan(paid_here, "available"), 12_000), (bank("145"), -12_000)],
            artisan_id=paid_here,
        ),
        "settle_2": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_2, 15),
            cause="settlement",
            lines=[(bank("145"), 7_500), (m2t, -7_500)],
        ),
        "earn_b": _post_at(
            ledger,
            monkeypatch,
            _at(DAY_2, 16),
            cause="payment",
            lines=[(bank("007"), 4_000), (artisan(paid_elsewhere, "available"), -4_000)],
            artisan_id=paid_elsewhere,
        ),
    }
    return {"here": paid_here, "elsewhere": paid_elsewhere, "entries": entries}


def get_statement(client, headers, **query):
    return client.get("/v1/statements", headers=headers, query_string=query)


def assert_problem(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_CONTENT_TYPE
    problem = response.get_json()
    assert problem["code"] == code
    if param is not None:
        assert problem["param"] == param, problem
    return problem


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- CSV ------------------------------------------------------------------------------------------


def test_the_bank_csv_statement_equals_the_ledger(client, auth, two_days):
    response = get_statement(
        client, auth(Role.BANK_PARTNER), account="bank:145", date=DAY_2.isoformat(), format="csv"
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="statement-bank-145-2026-11-03.csv"'
    )
    rows = parse_csv(response.get_data(as_text=True))
    opening, *lines, closing = rows
    assert (opening["row"], closing["row"]) == ("opening", "closing")
    # Opening: the ledger's balance at the day's start (day 1's settlement); closing at its end.
    assert (int(opening["running_balance"]), opening["running_balance_decimal"]) == (50_000, "500.00")
    assert (int(closing["running_balance"]), closing["running_balance_decimal"]) == (45_500, "455.00")
    # Money in for the holder (Hirfa's money at the bank) is +: the payout is money out.
    assert [
        (r["entry_id"], int(r["amount"]), r["amount_decimal"], int(r["running_balance"])) for r in lines
    ] == [
        (two_days["entries"]["payout_a"], -12_000, "-120.00", 38_000),
        (two_days["entries"]["settle_2"], 7_500, "75.00", 45_500),
    ]
    assert all(r["reference"] and r["currency"] == "MAD" for r in lines)
    assert lines[0]["reference"].startswith("po_") and lines[0]["transaction_type"] == "NTRF"
    assert sum(int(r["amount"]) for r in lines) == int(closing["running_balance"]) - int(
        opening["running_balance"]
    )


def test_an_artisan_csv_statement_over_a_range(client, auth, two_days):
    here = two_days["here"]
    response = get_statement(
        client,
        auth(Role.MARKETPLACE),
        account=here,
        **{"from": DAY_1.isoformat(), "to": DAY_2.isoformat()},
        format="csv",
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert f'filename="statement-{here}-2026-11-02_2026-11-03.csv"' in response.headers["Content-Disposition"]
    opening, *lines, closing = parse_csv(response.get_data(as_text=True))
    assert (opening["booking_date"], int(opening["running_balance"])) == ("2026-11-01", 0)
    # The artisan's available account is what Hirfa owes them: a credit is money in.
    assert [(r["entry_id"], int(r["amount"])) for r in lines] == [
        (two_days["entries"]["earn_a"], 30_000),
        (two_days["entries"]["payout_a"], -12_000),
    ]
    assert (closing["booking_date"], int(closing["running_balance"])) == ("2026-11-03", 18_000)


def test_a_day_without_movements_has_equal_balances(client, auth, two_days):
    day_3 = (DAY_2 + dt.timedelta(days=1)).isoformat()
    response = get_statement(client, auth(Role.OPERATOR), account="bank:145", date=day_3, format="csv")
    opening, closing = parse_csv(response.get_data(as_text=True))
    assert int(opening["running_balance"]) == int(closing["running_balance"]) == 45_500


# --- who sees which statement ----------------------------------------------------------------------


def test_a_bank_partner_sees_its_own_bank_and_its_artisans_only(client, auth, two_days):
    bank_145 = auth(Role.BANK_PARTNER)
    day = {"date": DAY_2.isoformat(), "format": "csv"}
    assert get_statement(client, bank_145, account=two_days["here"], **day).status_code == 200
    # Another bank's client-funds account, and an artisan paid at another bank: not found.
    assert_problem(get_statement(client, bank_145, account="bank:007", **day), 404, "resource_not_found")
    assert_problem(
        get_statement(client, bank_145, account=two_days["elsewhere"], **day), 404, "resource_not_found"
    )
    # Bank 007's partner sees its own.
    bank_007 = auth(Role.BANK_PARTNER, client_id="cli_test_bank_007", bank_code="007")
    assert get_statement(client, bank_007, account="bank:007", **day).status_code == 200
    assert get_statement(client, bank_007, account=two_days["elsewhere"], **day).status_code == 200
    assert_problem(get_statement(client, bank_007, account="bank:145", **day), 404, "resource_not_found")
    assert_problem(
        get_statement(client, bank_007, account=two_days["here"], **day), 404, "resource_not_found"
    )


def test_the_artisans_marketplace_and_operators_see_its_statement_others_do_not(
    client, auth, two_days, issue_token
):
    here = two_days["here"]
    day = {"account": here, "date": DAY_2.isoformat(), "format": "csv"}
    itself = {"Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id=here)}
    other_artisan = {"Authorization": "Bearer " + issue_token(Role.ARTISAN, client_id=two_days["elsewhere"])}
    assert get_statement(client, itself, **day).status_code == 200
    assert get_statement(client, auth(Role.OPERATOR), **day).status_code == 200
    assert get_statement(client, auth(Role.MARKETPLACE), **day).status_code == 200
    assert_problem(get_statement(client, other_artisan, **day), 404, "resource_not_found")
    assert_problem(
        get_statement(client, auth(Role.MARKETPLACE, client_id="cli_other_marketplace"), **day),
        404,
        "resource_not_found",
    )
    # Client funds are for the bank and operators: not for marketplaces or artisans.
    assert_problem(
        get_statement(
            client, auth(Role.MARKETPLACE), account="bank:145", date=DAY_2.isoformat(), format="csv"
        ),
        404,
        "resource_not_found",
    )
    assert_problem(
        get_statement(client, itself, account="bank:145", date=DAY_2.isoformat(), format="csv"),
        404,
        "resource_not_found",
    )


def test_a_bank_partner_reads_balances_transactions_payouts_and_entries_of_its_artisans_only(
    client, auth, two_days
):
    bank_145 = auth(Role.BANK_PARTNER)
    here, elsewhere = two_days["here"], two_days["elsewhere"]
    for path in ("/v1/artisans/{}/balance", "/v1/artisans/{}/transactions", "/v1/payouts?artisan_id={}"):
        assert client.get(path.format(here), headers=bank_145).status_code == 200, path
        assert_problem(client.get(path.format(elsewhere), headers=bank_145), 404, "resource_not_found")
    entries = two_days["entries"]
    listed = {entry["id"] for entry in client.get("/v1/journal-entries", headers=bank_145).get_json()["data"]}
    # Its artisans' entries and those moving its client funds; not bank 007's artisan's.
    assert listed == {entries["settle_1"], entries["earn_a"], entries["payout_a"], entries["settle_2"]}
    assert client.get(f"/v1/journal-entries/{entries['payout_a']}", headers=bank_145).status_code == 200
    assert_problem(
        client.get(f"/v1/journal-entries/{entries['earn_b']}", headers=bank_145), 404, "resource_not_found"
    )
    assert len(client.get("/v1/journal-entries", headers=auth(Role.OPERATOR)).get_json()["data"]) == 6


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"account": "bank:14", "date": "2026-11-03", "format": "csv"}, "account"),
        ({"account": "bank:*", "date": "2026-11-03", "format": "csv"}, "account"),
        ({"account": "pay_01JD0000000000000000000000", "date": "2026-11-03", "format": "csv"}, "account"),
        ({"account": "bank:145", "date": "2026-11-03", "format": "pdf"}, "format"),
        ({"account": "bank:145", "date": "03/11/2026", "format": "csv"}, "date"),
        ({"account": "bank:145", "date": "2026-02-30", "format": "csv"}, "date"),
        ({"account": "bank:145", "format": "csv"}, "date"),
        (
            {
                "account": "bank:145",
                "date": "2026-11-03",
                "from": "2026-11-01",
                "to": "2026-11-03",
                "format": "csv",
            },
            "date",
        ),
        ({"account": "bank:145", "from": "2026-11-03", "to": "2026-11-01", "format": "csv"}, "to"),
        ({"account": "bank:145", "from": "2026-01-01", "to": "2026-12-31", "format": "csv"}, "to"),
        ({"account": "bank:145", "from": "2026-11-03", "format": "csv"}, "date"),
        ({"date": "2026-11-03", "format": "csv"}, "account"),
        ({"account": "bank:145", "date": "2026-11-03"}, "format"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(client, auth, query, param):
    assert_problem(get_statement(client, auth(Role.OPERATOR), **query), 422, "validation_error", param)


def test_an_account_without_postings_is_404(client, auth, ledger):
    unknown = ledger.artisan_at_tier(3)
    # Nothing at bank 190 yet; an artisan with accounts but no bank account is not bank 145's.
    assert_problem(
        get_statement(client, auth(Role.OPERATOR), account="bank:190", date="2026-11-03", format="csv"),
        404,
        "resource_not_found",
    )
    assert_problem(
        get_statement(client, auth(Role.BANK_PARTNER), account=unknown, date="2026-11-03", format="csv"),
        404,
        "resource_not_found",
    )


def test_a_statement_needs_a_token_and_a_reading_scope(client, issue_token):
    query = {"account": "bank:145", "date": "2026-11-03", "format": "csv"}
    assert client.get("/v1/statements", query_string=query).status_code == 401
    compliance = {"Authorization": "Bearer " + issue_token(Role.COMPLIANCE, client_id="cli_test_compliance")}
    assert client.get("/v1/statements", headers=compliance, query_string=query).status_code == 403


# --- MT940 and camt.053, read back with parsers that are not Hirfa's ------------------------------


def _cents(amount) -> int:
    """A Decimal amount in major units as integer minor units."""
    return int((Decimal(str(amount)) * 100).to_integral_exact())


def test_the_bank_mt940_statement_parses_with_the_mt940_package_and_equals_the_ledger(client, auth, two_days):
    import mt940

    response = get_statement(
        client, auth(Role.BANK_PARTNER), account="bank:145", date=DAY_2.isoformat(), format="mt940"
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="statement-bank-145-2026-11-03.sta"'
    )
    text = response.get_data().decode("ascii")
    assert all(len(line) <= 65 for line in text.split("\r\n"))
    parsed = mt940.models.Transactions()
    parsed.parse(text)
    opening, closing = parsed.data["final_opening_balance"], parsed.data["final_closing_balance"]
    assert (_cents(opening.amount.amount), opening.date) == (50_000, DAY_1)
    assert (_cents(closing.amount.amount), closing.date) == (45_500, DAY_2)
    assert parsed.data["account_identification"] == "bank:145"
    amounts = [_cents(transaction.data["amount"].amount) for transaction in parsed]
    assert amounts == [-12_000, 7_500]
    assert sum(amounts) == _cents(closing.amount.amount) - _cents(opening.amount.amount)
    # Each line names its journal entry and what caused it (in :86:, the references being long).
    # The SWIFT X character set has no underscore: ids are written with a hyphen (je_… as je-…).
    details = [transaction.data["transaction_details"].replace("\n", "") for transaction in parsed]
    entries, references = [two_days["entries"]["payout_a"], two_days["entries"]["settle_2"]], []
    for detail, entry_id in zip(details, entries, strict=True):
        assert f"/BREF/{entry_id.replace('_', '-')}" in detail
        references.append(detail.split("/EREF/", 1)[1].split("/", 1)[0])
    assert references[0].startswith("po-") and references[1].startswith("stl-")


def test_the_artisan_camt053_statement_validates_against_the_xsd_and_equals_the_ledger(
    client, auth, two_days
):
    from lxml import etree

    here = two_days["here"]
    response = get_statement(
        client,
        auth(Role.OPERATOR),
        account=here,
        **{"from": DAY_1.isoformat(), "to": DAY_2.isoformat()},
        format="camt053",
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/xml"
    assert response.headers["Content-Disposition"].endswith('.xml"')
    document = etree.fromstring(response.get_data())
    xsd = etree.XMLSchema(etree.parse(str(PROJECT_ROOT / "shared/bank_statements/xsd/camt.053.001.08.xsd")))
    assert xsd.validate(document), xsd.error_log

    ns = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}

    def signed(element) -> int:
        amount = _cents(element.findtext("c:Amt", namespaces=ns))
        return -amount if element.findtext("c:CdtDbtInd", namespaces=ns) == "DBIT" else amount

    balances = {
        bal.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=ns): signed(bal)
        for bal in document.iterfind(".//c:Bal", ns)
    }
    assert balances == {"OPBD": 0, "CLBD": 18_000}
    entries = list(document.iterfind(".//c:Ntry", ns))
    assert [signed(entry) for entry in entries] == [30_000, -12_000]
    assert [entry.findtext("c:AcctSvcrRef", namespaces=ns) for entry in entries] == [
        two_days["entries"]["earn_a"],
        two_days["entries"]["payout_a"],
    ]
    references = [entry.findtext(".//c:EndToEndId", namespaces=ns) for entry in entries]
    assert references[0].startswith("pay_") and references[1].startswith("po_")
    assert document.findtext(".//c:Stmt/c:Acct/c:Id/c:Othr/c:Id", namespaces=ns) == here


def test_the_bank_camt053_statement_validates_against_the_xsd(client, auth, two_days):
    from lxml import etree

    response = get_statement(
        client, auth(Role.BANK_PARTNER), account="bank:145", date=DAY_2.isoformat(), format="camt053"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    xsd = etree.XMLSchema(etree.parse(str(PROJECT_ROOT / "shared/bank_statements/xsd/camt.053.001.08.xsd")))
    assert xsd.validate(etree.fromstring(response.get_data())), xsd.error_log
