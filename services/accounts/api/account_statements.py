"""``GET /v1/statements``: a ledger account's statement as a bank statement file (MT940,
camt.053.001.08 or CSV), for the bank partner holding the client funds, artisans, their
marketplaces and operators. Who sees which account: service_layer/account_statements.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Response
from flask_smorest import Blueprint

from services.accounts.api.context import service_context
from services.accounts.api.schemas import BankStatementArgsSchema
from services.accounts.service_layer.account_statements import build_statement, parse_account, statement_days
from shared.auth.flask import current_principal, require_any_scope
from shared.bank_statements import Balance, Statement, StatementEntry
from shared.bank_statements.camt053 import write_camt053
from shared.bank_statements.csv_format import write_csv
from shared.bank_statements.mt940 import write_mt940

blp = Blueprint(
    "bank_statements",
    __name__,
    url_prefix="/v1/statements",
    description="Bank statements (MT940, camt.053, CSV) of the client-funds accounts and artisans' accounts.",
)


def _mt940(statement: Statement) -> bytes:
    # The writer keeps to the SWIFT X character set (names transliterated), a subset of ASCII.
    return write_mt940(statement).encode("ascii")


def _csv(statement: Statement) -> bytes:
    return write_csv(statement).encode()


# format -> (writer, media type, file extension: ``.sta`` is what banks' software expects of MT940)
RENDERERS: dict[str, tuple[Callable[[Statement], bytes], str, str]] = {
    "mt940": (_mt940, "text/plain; charset=us-ascii", "sta"),
    "camt053": (write_camt053, "application/xml", "xml"),
    "csv": (_csv, "text/csv; charset=utf-8", "csv"),
}
# A day of the client-funds account with one payout, as the OpenAPI document shows each format:
# rendered by the writers themselves, so the examples are what the endpoint answers.
_EXAMPLE_STATEMENT = Statement(
    statement_id="HIRFA-20261201",
    sequence_number=335,
    account="MA64145780000123456789012342",
    bank_code="145",
    currency="MAD",
    opening=Balance(dt.date(2026, 11, 30), 1_250_000),
    closing=Balance(dt.date(2026, 12, 1), 1_225_000),
    entries=(
        StatementEntry(
            value_date=dt.date(2026, 12, 1),
            booking_date=dt.date(2026, 12, 1),
            amount=-25_000,
            transaction_type="NTRF",
            reference="po_01JF8Z3K2M6X9T4B7C5D1E0F2G",
            bank_reference="je_01JF8Z3K2M6X9T4B7C5D1E0F2G",
            description="Payout po_01JF8Z3K2M6X9T4B7C5D1E0F2G",
            counterparty_name="Fatima Zahra El Idrissi",
        ),
    ),
    holder_name="HIRFA CLIENT FUNDS",
    created_at=dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC),
)
# Bank partners read statements (``reconciliation:read``), operators the ledger, marketplaces their
# artisans' balances, artisans their own: the service layer decides which account each may see.
READ_SCOPES = ("reconciliation:read", "ledger:read", "balances:read", "self:read")


@blp.route("", methods=["GET"])
@require_any_scope(*READ_SCOPES)
@blp.arguments(BankStatementArgsSchema, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "The statement file (`Content-Disposition: attachment` with its filename).",
            "content": {
                media_type.split(";")[0]: {
                    "schema": {"type": "string", "format": "binary"},
                    "example": write(_EXAMPLE_STATEMENT).decode(),
                }
                for write, media_type, _ in RENDERERS.values()
            },
        }
    }
)
def bank_statement(args):
    """A ledger account's statement as a bank statement file: MT940, camt.053 or CSV.

    A day's (or a range of days') statement of ``bank:{code}`` or of an artisan's available
    account, from the ledger: opening and closing balances are the ledger's at the first day's
    start and the last day's end (UTC); each line is one journal line, with the journal entry id
    and the reference of its cause. Another bank's account, or an artisan you may not see, is 404."""
    context = service_context()
    account = parse_account(args["account"])
    first_day, last_day = statement_days(args.get("date"), args.get("first_day"), args.get("last_day"))
    statement = build_statement(
        context.uow_factory(),
        account,
        current_principal(),
        first_day=first_day,
        last_day=last_day,
        currency=context.config.ledger_currency,
        bank_code=context.config.payout_bank_code,
    )
    write, media_type, extension = RENDERERS[args["format"]]
    days = first_day.isoformat() if first_day == last_day else f"{first_day}_{last_day}"
    filename = f"statement-{account.label.replace(':', '-')}-{days}.{extension}"
    return Response(
        write(statement),
        status=200,
        content_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
