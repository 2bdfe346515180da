"""Input and output schemas of ``/v1/reconciliation/*`` (OpenAPI is generated from them).

Kept beside ``schemas.py`` rather than in it: reconciliation is a family of its own.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.accounts.api.schemas import MAX_AMOUNT, AdjustmentLineSchema
from services.accounts.domain.reconciliation import CASE_KINDS, ITEM_STATES, CaseState, Source
from services.accounts.service_layer.recon_readers import STATEMENT_FORMATS
from shared.money import CurrencyCode, MoneySchema
from shared.pagination import PageArgsSchema, page_schema

BANK_CODE = validate.Regexp(r"^[0-9]{3}$", error="A three-digit bank code.")
RUN_ID = validate.Regexp(r"^rr_[0-9A-HJKMNP-TV-Z]{26}\Z", error="A reconciliation run's id (rr_…).")
# The same patterns as the OpenAPI document shows them: in the ECMA dialect clients read, "\Z" is a
# letter, and "$" (Python's would also take a final newline) is the end.
RUN_ID_PATTERN = r"^rr_[0-9A-HJKMNP-TV-Z]{26}$"
ITEM_ID_PATTERN = r"^[0-9]{1,18}$"


class RunFormSchema(Schema):
    """The form fields beside the uploaded ``file``."""

    source = fields.String(required=True, validate=validate.OneOf([str(source) for source in Source]))
    gateway = fields.String(load_default=None, validate=validate.Regexp(r"^[a-z0-9_]{1,20}$"))
    bank_code = fields.String(load_default=None, validate=BANK_CODE)
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(STATEMENT_FORMATS),
        metadata={"description": "Statements: mt940 or camt053 (sniffed from the file when absent)."},
    )


class RunFileSchema(Schema):
    id = fields.String(required=True)
    sha256 = fields.String(required=True)
    name = fields.String(required=True)
    size = fields.Integer(required=True)
    received_at = fields.DateTime(required=True)


class ProgressSchema(Schema):
    lines_total = fields.Integer(required=True)
    lines_done = fields.Integer(required=True)
    percent = fields.Integer(required=True)


class RunSummarySchema(Schema):
    object = fields.Constant("reconciliation_run")
    id = fields.String(required=True)
    source = fields.String(required=True)
    gateway = fields.String(allow_none=True)
    bank_code = fields.String(allow_none=True)
    format = fields.String(allow_none=True)
    day = fields.Date(allow_none=True, metadata={"description": "The day the file is about."})
    status = fields.String(required=True)
    counts = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "Items per state."}
    )
    created_at = fields.DateTime(required=True)
    completed_at = fields.DateTime(allow_none=True)


class RunSchema(RunSummarySchema):
    """One run: the summary, with its progress, balances and file."""

    progress = fields.Nested(ProgressSchema, required=True)
    closing_balance = fields.Integer(allow_none=True, metadata={"description": "Statements: the bank's."})
    expected_balance = fields.Integer(
        allow_none=True,
        metadata={"description": "Statements: bank:{code} as the ledger says the bank held it."},
    )
    currency = fields.String(allow_none=True)
    file = fields.Nested(RunFileSchema, allow_none=True)
    requested_by = fields.String(required=True)


RunPageSchema = page_schema(RunSummarySchema)


class ItemSchema(Schema):
    object = fields.Constant("reconciliation_item")
    id = fields.String(required=True)
    run_id = fields.String(required=True)
    source = fields.String(required=True, metadata={"description": "settlement, statement, or ledger."})
    kind = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(ITEM_STATES))
    object_id = fields.String(required=True)
    reference = fields.String()
    batch_reference = fields.String(allow_none=True)
    line_number = fields.Integer(allow_none=True)
    gateway = fields.String(allow_none=True)
    bank_code = fields.String(allow_none=True)
    amount = fields.Integer(required=True)
    fee = fields.Integer(allow_none=True)
    net = fields.Integer(allow_none=True)
    expected_amount = fields.Integer(allow_none=True)
    expected_fee = fields.Integer(allow_none=True)
    currency = fields.String(required=True)
    value_date = fields.Date(required=True)
    transaction_type = fields.String(allow_none=True)
    bank_reference = fields.String(allow_none=True)
    ledger_entry_id = fields.String(allow_none=True, metadata={"description": "The ledger entry it matched."})
    posted_entry_id = fields.String(allow_none=True, metadata={"description": "The entry it posted."})
    case_id = fields.String(allow_none=True)
    healed_by_run_id = fields.String(allow_none=True)


class ItemArgsSchema(PageArgsSchema):
    object_id = fields.String(
        validate=validate.Length(min=1, max=140),
        metadata={"description": "A payment, refund or payout id: its three legs."},
    )
    unmatched_after_days = fields.Integer(
        validate=validate.Range(min=0, max=3650),
        metadata={"description": "Everything not fully matched after this many days."},
    )


class LedgerLegSchema(Schema):
    entry_id = fields.String(required=True)
    cause = fields.String(required=True)
    posting_key = fields.String(required=True)
    posted_at = fields.DateTime(required=True)


class LegsSchema(Schema):
    ledger = fields.List(fields.Nested(LedgerLegSchema), required=True)
    acquirer = fields.List(fields.Nested(ItemSchema), required=True)
    bank = fields.List(fields.Nested(ItemSchema), required=True)


class ThreeWaySchema(Schema):
    object = fields.Constant("reconciliation_view")
    object_id = fields.String(required=True)
    legs = fields.Nested(LegsSchema, required=True)
    breaks = fields.List(fields.Nested(ItemSchema), required=True)
    fully_matched = fields.Boolean(required=True)


ItemPageSchema = page_schema(ItemSchema)


class CaseHistorySchema(Schema):
    action = fields.String(required=True)
    actor = fields.String(required=True)
    detail = fields.Dict(required=True)
    at = fields.DateTime(required=True)


class CaseSummarySchema(Schema):
    object = fields.Constant("reconciliation_case")
    id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(CASE_KINDS))
    state = fields.String(required=True)
    amount = fields.Nested(MoneySchema, required=True)
    object_id = fields.String(allow_none=True)
    bank_code = fields.String(allow_none=True)
    gateway = fields.String(allow_none=True)
    run_id = fields.String(required=True)
    assignee = fields.String(allow_none=True)
    resolution = fields.Dict(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class CaseSchema(CaseSummarySchema):
    items = fields.List(fields.Nested(ItemSchema), required=True)
    history = fields.List(fields.Nested(CaseHistorySchema), required=True)
    notes = fields.List(fields.String(), required=True)


CasePageSchema = page_schema(CaseSummarySchema)


class CaseArgsSchema(PageArgsSchema):
    kind = fields.String(validate=validate.OneOf(CASE_KINDS))
    state = fields.String(validate=validate.OneOf([str(state) for state in CaseState]))
    min_age_days = fields.Integer(validate=validate.Range(min=0, max=3650))
    amount_min = fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT))
    amount_max = fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT))
    bank_code = fields.String(validate=BANK_CODE)
    gateway = fields.String(validate=validate.Length(min=1, max=20))
    run_id = fields.String(
        validate=RUN_ID,
        metadata={
            "description": "Only the cases this run opened (its breaks), oldest first.",
            "pattern": RUN_ID_PATTERN,
        },
    )


class AssignSchema(Schema):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=64))


class NoteSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ResolveSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    run_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    item_id = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[0-9]{1,18}\Z", error="An item's id: up to 18 digits."),
        metadata={"pattern": ITEM_ID_PATTERN},
    )
    entry_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40))


class WriteOffSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    lines = fields.List(fields.Nested(AdjustmentLineSchema), load_default=None)
    currency = CurrencyCode(load_default=None)
    reverses_entry_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
