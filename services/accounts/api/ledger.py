"""Reading the ledger: artisans' statements, journal entries, the integrity check, ledger cases."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.accounts.domain.ledger import ArtisanAccountKind
from services.accounts.service_layer.statements import (
    TimeRange,
    artisan_statement,
    check_integrity,
    get_journal_entry,
    list_cases,
    list_journal_entries,
)
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.money import CurrencyCode, MoneySchema
from shared.pagination import PageArgsSchema, page_schema

statements_blp = Blueprint(
    "statements",
    __name__,
    url_prefix="/v1/artisans",
    description="Artisan statements: every movement, with balances.",
)
journal_blp = Blueprint(
    "journal_entries",
    __name__,
    url_prefix="/v1/journal-entries",
    description="The journal, for operators and banks.",
)
operations_blp = Blueprint(
    "ledger_operations",
    __name__,
    url_prefix="/v1/ledger",
    description="Ledger integrity and cases, for operators.",
)
blueprints = (statements_blp, journal_blp, operations_blp)


def _services():
    return current_app.extensions["hirfa"]


# --- arguments ------------------------------------------------------------------------------------


class TimeRangeArgsSchema(Schema):
    # ``from`` is a Python keyword: the attribute names differ from the query parameters.
    posted_from = fields.AwareDateTime(
        data_key="from",
        load_default=None,
        default_timezone=None,
        metadata={"description": "Posted at or after this ISO 8601 date-time (with its UTC offset)."},
    )
    posted_to = fields.AwareDateTime(
        data_key="to",
        load_default=None,
        default_timezone=None,
        metadata={"description": "Posted before this ISO 8601 date-time (with its UTC offset)."},
    )

    @validates_schema
    def _range_not_reversed(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, end = data.get("posted_from"), data.get("posted_to")
        if start is not None and end is not None and end < start:
            raise ValidationError("Must not be before `from`.", field_name="to")


def _time_range(args: dict[str, Any]) -> TimeRange:
    return TimeRange(start=args.pop("posted_from"), end=args.pop("posted_to"))


class StatementArgsSchema(PageArgsSchema, TimeRangeArgsSchema):
    account = fields.String(
        load_default=ArtisanAccountKind.AVAILABLE.value,
        validate=validate.OneOf([kind.value for kind in ArtisanAccountKind]),
        metadata={"description": "`available` (default) or `pending`."},
    )
    currency = CurrencyCode(load_default=None, metadata={"description": "Defaults to the ledger's currency."})


class JournalEntryArgsSchema(PageArgsSchema, TimeRangeArgsSchema):
    cause = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "payment, refund, dispute, release, payout, …"},
    )
    artisan_id = fields.String(validate=validate.Length(min=1, max=40))


class CaseArgsSchema(PageArgsSchema):
    status = fields.String(
        validate=validate.OneOf(["open", "waiting", "resolved"]),
        metadata={
            "description": "`open`: refused, for an operator; `waiting`: a parked money event that posts by itself "
            "once what it waits for has happened; `resolved`: it did."
        },
    )
    artisan_id = fields.String(validate=validate.Length(min=1, max=40))


# --- responses ------------------------------------------------------------------------------------


class StatementLineSchema(Schema):
    id = fields.String(required=True, metadata={"description": "The line's cursor, for `starting_after`."})
    object = fields.Constant("statement_line")
    entry_id = fields.String(required=True)
    posted_at = fields.DateTime(required=True)
    cause = fields.String(required=True)
    cause_id = fields.String(required=True)
    description = fields.String(required=True)
    amount = fields.Nested(MoneySchema, required=True, metadata={"description": "Money in is positive."})
    running_balance = fields.Nested(
        MoneySchema, required=True, metadata={"description": "The account's balance right after this line."}
    )


class StatementSchema(page_schema(StatementLineSchema)):
    object = fields.Constant("statement")
    artisan_id = fields.String(required=True)
    account = fields.String(required=True)
    currency = fields.String(required=True)
    opening_balance = fields.Nested(
        MoneySchema,
        required=True,
        metadata={"description": "The balance right before this page's first line."},
    )


class JournalLineSchema(Schema):
    account_id = fields.String(required=True)
    owner_type = fields.String(required=True)
    owner_id = fields.String(required=True)
    kind = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Minor units: + debit, − credit."})
    currency = fields.String(required=True)


class JournalEntrySchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("journal_entry")
    cause = fields.String(required=True)
    cause_id = fields.String(required=True)
    cause_event_id = fields.String(allow_none=True)
    posting_key = fields.String(required=True)
    artisan_id = fields.String(allow_none=True)
    description = fields.String(required=True)
    posted_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(JournalLineSchema), required=True)


JournalEntryPageSchema = page_schema(JournalEntrySchema)


class IntegrityDifferenceSchema(Schema):
    check = fields.String(required=True)
    account_id = fields.String()
    entry_id = fields.String()
    currency = fields.String()
    expected = fields.Integer(required=True, metadata={"description": "For a lower bound, the bound."})
    actual = fields.Integer(required=True)


class IntegritySchema(Schema):
    object = fields.Constant("ledger_integrity")
    ok = fields.Boolean(required=True)
    checked_at = fields.DateTime(required=True)
    accounts_checked = fields.Integer(required=True)
    entries_checked = fields.Integer(required=True)
    differences = fields.List(fields.Nested(IntegrityDifferenceSchema), required=True)


class LedgerCaseSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("ledger_case")
    kind = fields.String(required=True, metadata={"description": "e.g. tier_cap_exceeded."})
    status = fields.String(required=True)
    cause = fields.String(required=True)
    cause_id = fields.String(required=True)
    event_id = fields.String(allow_none=True)
    artisan_id = fields.String(allow_none=True)
    details = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)


LedgerCasePageSchema = page_schema(LedgerCaseSchema)


# --- views ----------------------------------------------------------------------------------------


@statements_blp.route("/<string:artisan_id>/transactions", methods=["GET"])
@require_any_scope("balances:read", "self:read")
@statements_blp.arguments(StatementArgsSchema, location="query")
@statements_blp.response(200, StatementSchema)
def artisan_transactions(args, artisan_id):
    """An artisan account's movements, oldest first, each with the running balance."""
    services = _services()
    posted = _time_range(args)
    return artisan_statement(
        services.uow_factory(),
        artisan_id,
        current_principal(),
        account_kind=args["account"],
        currency=args["currency"] or services.config.ledger_currency,
        posted=posted,
        limit=args["limit"],
        starting_after=args["starting_after"],
    )


@journal_blp.route("", methods=["GET"])
@require_scopes("ledger:read")
@journal_blp.arguments(JournalEntryArgsSchema, location="query")
@journal_blp.response(200, JournalEntryPageSchema)
def journal_entries(args):
    """Journal entries with their lines, oldest first."""
    posted = _time_range(args)
    return list_journal_entries(
        _services().uow_factory(),
        posted=posted,
        cause=args.get("cause"),
        artisan_id=args.get("artisan_id"),
        limit=args["limit"],
        starting_after=args["starting_after"],
    )


@journal_blp.route("/<string:entry_id>", methods=["GET"])
@require_scopes("ledger:read")
@journal_blp.response(200, JournalEntrySchema)
def journal_entry(entry_id):
    """One journal entry with its lines."""
    return get_journal_entry(_services().uow_factory(), entry_id)


@operations_blp.route("/integrity", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.response(200, IntegritySchema)
def integrity():
    """Recompute the ledger's invariants from its lines and list every difference found."""
    return check_integrity(_services().uow_factory())


@operations_blp.route("/cases", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.arguments(CaseArgsSchema, location="query")
@operations_blp.response(200, LedgerCasePageSchema)
def ledger_cases(args):
    """Postings the ledger refused (a balance rule), and money events waiting for news about their
    artisan (their tier, room under their cap, the payment a refund is for); oldest first."""
    return list_cases(
        _services().uow_factory(),
        status=args.get("status"),
        artisan_id=args.get("artisan_id"),
        limit=args["limit"],
        starting_after=args["starting_after"],
    )
