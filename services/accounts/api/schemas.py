"""The accounts API's input and output schemas (they also generate the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from services.accounts.domain.ledger import ArtisanAccountKind
from services.accounts.domain.payouts import (
    COMMISSION_INTERVALS,
    FAILURE_CODES,
    PayoutStatus,
    ScheduleInterval,
)
from services.accounts.service_layer.marketplace_settings import MAX_BASIS_POINTS, MAX_FIXED_FEE
from shared.money import CurrencyCode, MinorUnits, MoneySchema, MoneyWithDecimalSchema
from shared.pagination import PageArgsSchema, page_schema

# --- balances -------------------------------------------------------------------------------------


class BalanceSchema(Schema):
    object = fields.Constant("balance")
    artisan_id = fields.String(required=True)
    pending = fields.Nested(
        MoneyWithDecimalSchema, required=True, metadata={"description": "Inside the hold period."}
    )
    available = fields.Nested(
        MoneyWithDecimalSchema, required=True, metadata={"description": "Can be paid out."}
    )
    # Null for an artisan whose KYC limits accounts has not heard of yet.
    kyc_tier = fields.Integer(
        allow_none=True, metadata={"description": "The artisan's KYC tier (null until known)."}
    )
    cap = fields.Nested(
        MoneyWithDecimalSchema, allow_none=True, metadata={"description": "Bank Al-Maghrib cap for the tier."}
    )


# --- the ledger: arguments ------------------------------------------------------------------------


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


class StatementArgsSchema(PageArgsSchema, TimeRangeArgsSchema):
    account = fields.String(
        load_default=ArtisanAccountKind.AVAILABLE.value,
        validate=validate.OneOf([kind.value for kind in ArtisanAccountKind]),
        metadata={"description": "`available` (default) or `pending`."},
    )
    currency = CurrencyCode(load_default=None, metadata={"description": "Defaults to the ledger's currency."})


class BankStatementArgsSchema(Schema):
    account = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "`bank:{three-digit bank code}` (client funds) or an artisan id (`art_…`)."},
    )
    date = fields.Date(metadata={"description": "One day (YYYY-MM-DD, UTC); or give `from` and `to`."})
    first_day = fields.Date(data_key="from", metadata={"description": "First day of a range (inclusive)."})
    last_day = fields.Date(data_key="to", metadata={"description": "Last day of a range (inclusive)."})
    format = fields.String(
        required=True,
        validate=validate.OneOf(["mt940", "camt053", "csv"]),
        metadata={"description": "`mt940`, `camt053` (camt.053.001.08) or `csv`."},
    )


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


# --- the ledger: responses ------------------------------------------------------------------------


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
    payment_id = fields.String(
        metadata={
            "description": "succeeded_payment_in_ledger: the payment that succeeded and is not in the ledger."
        }
    )
    case_id = fields.String(metadata={"description": "succeeded_payment_in_ledger: its ledger case."})
    line_id = fields.Integer(metadata={"description": "The journal line, for `balance_after_matches_lines`."})
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


class ParkedEventSchema(Schema):
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    waiting_for = fields.String(required=True, metadata={"description": "Why it cannot post yet."})
    attempts = fields.Integer(required=True)
    parked_at = fields.DateTime(required=True)
    last_attempt_at = fields.DateTime(allow_none=True)


class LedgerCaseSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("ledger_case")
    kind = fields.String(required=True, metadata={"description": "e.g. tier_cap_exceeded."})
    status = fields.String(required=True, metadata={"description": "open, waiting or resolved."})
    cause = fields.String(required=True)
    cause_id = fields.String(required=True)
    event_id = fields.String(allow_none=True)
    artisan_id = fields.String(allow_none=True)
    details = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)
    parked_event = fields.Nested(
        ParkedEventSchema,
        allow_none=True,
        metadata={"description": "The money event waiting for it to post (a waiting case), if one."},
    )
    resolution = fields.String(
        allow_none=True,
        metadata={
            "description": "Once resolved: posted, funds_returned, reserve_funded (by the ledger itself), "
            "adjustment or noted (by an operator)."
        },
    )
    resolved_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, once resolved."})
    resolved_by = fields.String(
        allow_none=True, metadata={"description": "Who resolved it (`system`: the ledger itself)."}
    )


LedgerCasePageSchema = page_schema(LedgerCaseSchema)


class ResolveLedgerCaseSchema(Schema):
    note = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "Why the case needs nothing more (kept in its record)."},
    )


class LedgerAccountArgsSchema(PageArgsSchema):
    owner_type = fields.String(
        load_default=None,
        validate=validate.OneOf(["platform", "marketplace"]),
        metadata={"description": "`platform` or `marketplace`; both when left out."},
    )


class LedgerAccountSchema(Schema):
    object = fields.Constant("ledger_account")
    id = fields.String(required=True)
    owner_type = fields.String(required=True)
    owner_id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "e.g. revenue, bank:145, reserve."})
    currency = fields.String(required=True)
    normal_side = fields.String(required=True, metadata={"description": "debit or credit."})
    balance = fields.Nested(
        MoneySchema,
        required=True,
        metadata={"description": "As people read it: positive on the account's normal side."},
    )


LedgerAccountPageSchema = page_schema(LedgerAccountSchema)


# --- payouts --------------------------------------------------------------------------------------

# Far beyond any payout, well inside a 64-bit column.
MAX_AMOUNT = 10**13


def flatten_money(data: Any, field: str) -> Any:
    """Read ``field: {amount, currency}`` (the shape answers use) as ``field: amount, currency: …``."""
    if not isinstance(data, dict) or not isinstance(data.get(field), dict):
        return data
    money = data[field]
    if set(money) - {"amount", "currency"}:
        raise ValidationError({field: ["Must be an integer of minor units or an object {amount, currency}."]})
    if "currency" in money and "currency" in data and data["currency"] != money["currency"]:
        raise ValidationError({"currency": [f"Differs from the currency of {field}."]})
    flat = {**data, field: money.get("amount")}
    if "currency" in money:
        flat["currency"] = money["currency"]
    return flat


class PayoutRequestSchema(Schema):
    artisan_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = MinorUnits(
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Minor units (centimes), with `currency`; or an object {amount, currency}."},
    )
    currency = CurrencyCode(required=True, metadata={"example": "MAD"})
    bank_account_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "One of the artisan's bank accounts; default: their default account."},
    )
    description = fields.String(load_default=None, validate=validate.Length(max=200))

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "amount")


class PayoutSchema(Schema):
    id = fields.String(required=True, metadata={"example": "po_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("payout")
    payee_type = fields.String(
        metadata={"description": "artisan (their available balance) or marketplace (its commission)."}
    )
    artisan_id = fields.String(allow_none=True, metadata={"description": "Null on a commission payout."})
    marketplace_id = fields.String(allow_none=True, metadata={"description": "Set on a commission payout."})
    amount = fields.Nested(MoneySchema, attribute="money")
    status = fields.String(metadata={"description": "pending, in_transit, then paid or failed."})
    failure_code = fields.String(
        allow_none=True, metadata={"description": f"When failed: {', '.join(FAILURE_CODES)}."}
    )
    bank_account_id = fields.String(allow_none=True, metadata={"description": "Null on a commission payout."})
    bank_code = fields.String(metadata={"description": "The payee's bank."})
    rib_last4 = fields.String(metadata={"description": "The last four digits of the account's RIB."})
    holder_name = fields.String()
    description = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "api, or schedule for an automatic payout."})
    bank_reference = fields.String(
        attribute="partner_reference",
        allow_none=True,
        metadata={"description": "The bank partner's transfer id, once it has one."},
    )
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()


PayoutPageSchema = page_schema(PayoutSchema)


class PayoutStatsArgsSchema(Schema):
    since = fields.AwareDateTime(
        required=True,
        default_timezone=None,
        metadata={"description": "The period's start (ISO 8601 with offset)."},
    )
    until = fields.AwareDateTime(
        load_default=None,
        default_timezone=None,
        metadata={"description": "Its end, excluded (default: now). At most 92 days after since."},
    )


class StepFiguresSchema(Schema):
    count = fields.Integer(required=True)
    amount = fields.List(fields.Nested(MoneySchema), required=True, metadata={"description": "Per currency."})


class PayoutStatsSchema(Schema):
    object = fields.Constant("payout_stats")
    since = fields.DateTime(required=True)
    until = fields.DateTime(required=True)
    sent = fields.Nested(StepFiguresSchema, required=True, metadata={"description": "Handed to the bank."})
    paid = fields.Nested(StepFiguresSchema, required=True)
    failed = fields.Nested(StepFiguresSchema, required=True)


class PayoutListArgsSchema(PageArgsSchema):
    artisan_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in PayoutStatus]))


class ScheduleRequestSchema(Schema):
    interval = fields.String(
        required=True, validate=validate.OneOf([str(interval) for interval in ScheduleInterval])
    )
    threshold = MinorUnits(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "With interval=threshold: minor units with `currency`, or an object."},
    )
    currency = CurrencyCode(load_default=None)

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "threshold")


class ScheduleSchema(Schema):
    object = fields.Constant("payout_schedule")
    artisan_id = fields.String()
    interval = fields.String()
    threshold = fields.Nested(MoneySchema, allow_none=True)
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    applied = fields.Boolean()
    status = fields.String()


# --- the signed income statement ------------------------------------------------------------------

_MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_FIGURE_DOCS = {
    "gross_sales": "What buyers paid (the payments posted).",
    "refunds": "What went back to buyers.",
    "marketplace_fees": "The marketplaces' commission, net of commission given back on refunds.",
    "disputes": "What disputes took from the artisan, net of disputes won.",
    "net_income": "What the artisan earned: every movement of their accounts but payouts and releases.",
    "payouts": "What was paid out to the artisan's bank, net of failed payouts returned.",
}


class IncomeStatementArgsSchema(Schema):
    period_from = fields.String(
        data_key="from",
        required=True,
        validate=validate.Regexp(_MONTH_PATTERN, error="A month as YYYY-MM."),
        metadata={"description": "First month (YYYY-MM, UTC), included.", "example": "2026-01"},
    )
    period_to = fields.String(
        data_key="to",
        required=True,
        validate=validate.Regexp(_MONTH_PATTERN, error="A month as YYYY-MM."),
        metadata={"description": "Last month (YYYY-MM, UTC), included.", "example": "2026-06"},
    )
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(["json", "pdf", "jws"]),
        metadata={
            "description": "`json` (default), `pdf`, or `jws` (the compact JWS alone, application/jose). "
            "Without it, `Accept: application/pdf` or `application/jose` choose."
        },
    )
    lang = fields.String(
        load_default=None,
        validate=validate.OneOf(["fr", "ar"]),
        metadata={
            "description": "The PDF's language: `fr` or `ar` (default: the token's `lang`, else `fr`)."
        },
    )


class StatementFiguresSchema(Schema):
    gross_sales = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["gross_sales"]})
    refunds = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["refunds"]})
    marketplace_fees = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["marketplace_fees"]})
    disputes = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["disputes"]})
    net_income = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["net_income"]})
    payouts = fields.Nested(MoneySchema, metadata={"description": _FIGURE_DOCS["payouts"]})


class StatementMonthSchema(StatementFiguresSchema):
    month = fields.String(metadata={"example": "2026-01"})
    payments_count = fields.Integer(metadata={"description": "Payments posted in the month."})
    marketplaces_count = fields.Integer()


class StatementPeriodSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    timezone = fields.String()


class StatementKycSchema(Schema):
    tier = fields.Integer(allow_none=True, metadata={"description": "Null until accounts knows it."})
    status = fields.String(allow_none=True)


class StatementBalanceSchema(Schema):
    opening = fields.Nested(MoneySchema)
    closing = fields.Nested(MoneySchema)


class StatementVerificationSchema(Schema):
    code = fields.String(metadata={"example": "7KQ2-M9XD-3TRA-E5WB"})
    statement_url = fields.String()
    verify_url = fields.String()


class IncomeStatementSchema(Schema):
    """What is signed: the statement, as the JWS payload carries it."""

    object = fields.Constant("income_statement")
    version = fields.Integer()
    id = fields.String()
    issuer = fields.String()
    source = fields.String(metadata={"description": "Always `ledger`: computed from journal entries."})
    artisan_id = fields.String()
    issued_at = fields.String()
    period = fields.Nested(StatementPeriodSchema)
    currency = fields.String()
    kyc = fields.Nested(StatementKycSchema)
    months_active = fields.Integer(metadata={"description": "Months of the period with at least one sale."})
    first_sale_month = fields.String(allow_none=True, metadata={"description": "Since when they sell."})
    payments_count = fields.Integer(
        metadata={
            "description": "Payments posted. The ledger knows payments, not buyers: this is what is "
            "counted instead of buyers (one buyer paying twice counts twice)."
        }
    )
    marketplaces = fields.List(
        fields.String(), metadata={"description": "Marketplaces the artisan sold through."}
    )
    totals = fields.Nested(StatementFiguresSchema)
    balance = fields.Nested(StatementBalanceSchema)
    months = fields.List(fields.Nested(StatementMonthSchema))
    verification = fields.Nested(StatementVerificationSchema)


class SignedIncomeStatementSchema(Schema):
    object = fields.Constant("signed_income_statement")
    jws = fields.String(
        metadata={"description": "Compact JWS (EdDSA); its key is in accounts' /.well-known/jwks.json."}
    )
    kid = fields.String()
    verification_code = fields.String()
    statement_url = fields.String()
    verify_url = fields.String()
    statement = fields.Nested(IncomeStatementSchema)


class PublishedStatementSchema(Schema):
    object = fields.Constant("signed_income_statement")
    verification_code = fields.String()
    kid = fields.String()
    issued_at = fields.DateTime()
    jws = fields.String()


class VerifyStatementRequestSchema(Schema):
    jws = fields.String(required=True, validate=validate.Length(min=1, max=200_000))


class VerifyStatementResultSchema(Schema):
    valid = fields.Boolean(required=True)
    reason = fields.String(
        metadata={
            "description": "signature_valid, malformed, unsupported_algorithm, unknown_key, bad_signature "
            "or not_a_statement."
        }
    )
    kid = fields.String(allow_none=True)
    statement = fields.Nested(
        IncomeStatementSchema, allow_none=True, metadata={"description": "What was signed (valid only)."}
    )


# --- marketplaces: settings and commission payouts -------------------------------------------------


class PlatformFeeRequestSchema(Schema):
    basis_points = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=MAX_BASIS_POINTS),
        metadata={"description": "Of each payment's gross, rounded half up; 100 bp = 1 %."},
    )
    fixed = MinorUnits(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_FIXED_FEE),
        metadata={
            "description": "Minor units per payment, with `currency`; or an object {amount, currency}."
        },
    )
    currency = CurrencyCode(load_default=None)

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "fixed")


class PayoutAccountRequestSchema(Schema):
    rib = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={
            "description": "24 digits (spaces or dashes between groups allowed), checked like any RIB."
        },
    )
    holder_name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class CommissionScheduleRequestSchema(Schema):
    interval = fields.String(
        required=True,
        validate=validate.OneOf([str(interval) for interval in COMMISSION_INTERVALS]),
        metadata={"description": "manual (an operator pays out), daily (UTC days) or weekly (ISO weeks)."},
    )


class PlatformFeeSchema(Schema):
    basis_points = fields.Integer()
    fixed = fields.Nested(MoneySchema)


class MarketplacePayoutAccountSchema(Schema):
    bank_code = fields.String()
    rib_last4 = fields.String()
    holder_name = fields.String()


class MarketplaceSettingsSchema(Schema):
    object = fields.Constant("marketplace_settings")
    marketplace_id = fields.String(required=True)
    platform_fee = fields.Nested(
        PlatformFeeSchema,
        metadata={"description": "Taken from the marketplace's commission on each payment; 0 by default."},
    )
    payout_account = fields.Nested(
        MarketplacePayoutAccountSchema,
        allow_none=True,
        metadata={"description": "Where commission payouts go (null until registered)."},
    )
    commission_payout_schedule = fields.String()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class CommissionPayoutRequestSchema(Schema):
    amount = MinorUnits(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Minor units; leave out to pay the whole commission balance."},
    )
    currency = CurrencyCode(load_default=None)
    description = fields.String(load_default=None, validate=validate.Length(max=200))

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "amount")


class CommissionPayoutListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf([str(status) for status in PayoutStatus]))


# --- adjustments and reversals ---------------------------------------------------------------------


class AdjustmentLineSchema(Schema):
    owner_type = fields.String(required=True, validate=validate.OneOf(["artisan", "marketplace", "platform"]))
    owner_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    kind = fields.String(required=True, validate=validate.Length(min=1, max=60))
    amount = MinorUnits(
        required=True,
        validate=validate.Range(min=-MAX_AMOUNT, max=MAX_AMOUNT),
        metadata={"description": "Signed minor units: + debit, − credit."},
    )


class AdjustmentRequestSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    lines = fields.List(
        fields.Nested(AdjustmentLineSchema),
        load_default=None,
        validate=validate.Length(min=2, max=20),
        metadata={"description": "A manual adjustment: at least two lines, summing to zero."},
    )
    currency = CurrencyCode(
        load_default=None,
        metadata={
            "description": "The ledger's currency, the default; another is refused (422 `unsupported_currency`)."
        },
    )
    reverses_entry_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "A reversal: the journal entry whose lines are negated."},
    )
    case_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=40),
        metadata={
            "description": "The ledger case (`lc_…`) it resolves once posted; on a waiting case it takes "
            "the place of the parked event, which is released (never posted)."
        },
    )

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if (data.get("lines") is None) == (data.get("reverses_entry_id") is None):
            raise ValidationError("Give either `lines` (an adjustment) or `reverses_entry_id` (a reversal).")


class AdjustmentDecisionSchema(Schema):
    note = fields.String(load_default=None, validate=validate.Length(max=500))


class AdjustmentArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(["pending_approval", "posted", "rejected"]))
    case_id = fields.String(validate=validate.Length(min=1, max=40))


class AdjustmentSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("ledger_adjustment")
    kind = fields.String(metadata={"description": "reversal or manual."})
    status = fields.String(metadata={"description": "pending_approval, posted or rejected."})
    reason = fields.String()
    amount = fields.Method(
        "_amount", metadata={"description": "The sum of the debits: what four-eyes weighs."}
    )
    lines = fields.List(fields.Nested(AdjustmentLineSchema))
    reverses_entry_id = fields.String(allow_none=True)
    case_id = fields.String(allow_none=True)
    entry_id = fields.String(allow_none=True, metadata={"description": "The journal entry, once posted."})
    proposed_by = fields.String()
    proposed_at = fields.DateTime()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decision_note = fields.String(allow_none=True)

    def _amount(self, adjustment: Any) -> dict[str, Any]:
        return {"amount": adjustment.amount, "currency": adjustment.currency}


AdjustmentPageSchema = page_schema(AdjustmentSchema)


# --- marketplace reserves --------------------------------------------------------------------------


class ReserveArgsSchema(PageArgsSchema):
    below_zero = fields.Boolean(
        load_default=False,
        metadata={"description": "Only reserves below zero (receivables from the marketplace)."},
    )


class ReserveSchema(Schema):
    object = fields.Constant("marketplace_reserve")
    account_id = fields.String()
    marketplace_id = fields.String()
    balance = fields.Nested(MoneySchema, metadata={"description": "Below zero: the marketplace owes it."})
    below_zero = fields.Boolean()


ReservePageSchema = page_schema(ReserveSchema)
