"""An artisan's long payment history is never read whole: the tier cap's sum of payments on their
way to the ledger is served by the partial index of such payments, and a page of
``GET /v1/payments?artisan_id=`` by the (marketplace, artisan, id) index. Checked on the queries
the code sends, with the database's own plan (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite),
over a table where reading every row would show."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.payments.adapters.orm import Payment
from services.payments.adapters.repositories import payments
from services.payments.service_layer.payment_actions import list_payments
from shared.auth import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.ids import new_id
from tests.integration.conftest import MARKETPLACE

OTHER_ARTISANS = 200
PAYMENTS_EACH = 10


@pytest.fixture
def context(payments_app):
    return payments_app.extensions["hirfa"]


@pytest.fixture
def artisan_id(context) -> str:
    """An artisan with settled payments and two on their way, among many artisans' payments."""
    artisan_id = new_id("art")
    now = dt.datetime.now(dt.UTC)
    rows = []
    for number, artisan in enumerate([artisan_id] + [new_id("art") for _ in range(OTHER_ARTISANS)]):
        for payment in range(PAYMENTS_EACH):
            status = "processing" if artisan == artisan_id and payment < 2 else "succeeded"
            rows.append(
                {
                    "id": new_id("pay"),
                    "marketplace_id": MARKETPLACE,
                    "artisan_id": artisan,
                    "amount": 1_000,
                    "currency": "MAD",
                    "application_fee": 100,
                    "payment_method_type": "card",
                    "capture_method": "automatic",
                    "status": status,
                    "metadata_json": "{}",
                    "gateway": "fake",
                    "gateway_reference": f"gw_{number}_{payment}",
                    "gateway_updated_at": 0,
                    "amount_captured": 1_000 if status == "succeeded" else 0,
                    "amount_refunded": 0,
                    "application_fee_refunded": 0,
                    "ledger_posted": status == "succeeded",
                    "created_at": now,
                    "updated_at": now,
                }
            )
    with context.session_factory() as session:
        session.execute(sa.insert(Payment), rows)
        session.commit()
    with context.engine.connect() as connection:
        connection.execute(sa.text("ANALYZE payments"))
        connection.commit()
    return artisan_id


def statements_of(context, action) -> list[tuple[str, object]]:
    """The SELECT statements ``action`` sends about payments, with their parameters."""
    sent: list[tuple[str, object]] = []

    def record(_connection, _cursor, statement, parameters, *_rest) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "payments" in statement:
            sent.append((statement, parameters))

    sa.event.listen(context.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        sa.event.remove(context.engine, "before_cursor_execute", record)
    return sent


def plan(context, statement: str, parameters) -> str:
    raw = context.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if context.engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN " + statement, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(" ".join(str(column) for column in row) for row in cursor.fetchall())
    finally:
        raw.close()


def test_the_tier_cap_reads_only_the_payments_on_their_way(context, artisan_id):
    def on_the_way() -> int:
        with context.session_factory() as session:
            return payments.artisan_share_on_the_way(session, artisan_id)

    assert on_the_way() == 2 * (1_000 - 100)
    [(statement, parameters)] = statements_of(context, on_the_way)
    explained = plan(context, statement, parameters)
    assert "ix_payments_artisan_on_the_way" in explained, explained
    assert "Seq Scan" not in explained and "SCAN payments" not in explained, explained


def test_a_page_of_an_artisans_payments_is_an_index_range(context, artisan_id):
    principal = Principal(
        client_id=MARKETPLACE,
        role=Role.MARKETPLACE,
        scopes=ROLE_SCOPES[Role.MARKETPLACE],
        token_id="tok_test",
    )

    def first_page():
        return list_payments(
            context.uow_factory(), principal, limit=5, starting_after=None, artisan_id=artisan_id
        )

    page = first_page()
    assert len(page.data) == 5 and page.has_more
    assert {payment.artisan_id for payment in page.data} == {artisan_id}
    [(statement, parameters)] = statements_of(context, first_page)
    explained = plan(context, statement, parameters)
    assert "ix_payments_marketplace_artisan" in explained, explained
    assert "Seq Scan" not in explained and "SCAN payments" not in explained, explained
