"""Reading the ledger: artisans' statements, journal entries, the integrity check, the platform's
and marketplaces' accounts; ledger cases, and resolving them."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from services.accounts import problems as codes
from services.accounts.api.context import service_context
from services.accounts.api.schemas import (
    CaseArgsSchema,
    IntegritySchema,
    JournalEntryArgsSchema,
    JournalEntryPageSchema,
    JournalEntrySchema,
    LedgerAccountArgsSchema,
    LedgerAccountPageSchema,
    LedgerCasePageSchema,
    LedgerCaseSchema,
    ResolveLedgerCaseSchema,
    StatementArgsSchema,
    StatementSchema,
)
from services.accounts.service_layer import ledger_cases
from services.accounts.service_layer.statements import (
    TimeRange,
    artisan_statement,
    check_integrity,
    get_journal_entry,
    list_journal_entries,
    list_ledger_accounts,
)
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import ROLE_NOT_ALLOWED

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
    description="Ledger integrity, the platform's accounts, and ledger cases, for operators.",
)
blueprints = (statements_blp, journal_blp, operations_blp)


def _time_range(args: dict[str, Any]) -> TimeRange:
    return TimeRange(start=args.pop("posted_from"), end=args.pop("posted_to"))


# --- views ----------------------------------------------------------------------------------------


@statements_blp.route("/<string:artisan_id>/transactions", methods=["GET"])
@require_any_scope("balances:read", "self:read")
@statements_blp.arguments(StatementArgsSchema, location="query")
@statements_blp.response(200, StatementSchema)
def artisan_transactions(args, artisan_id):
    """An artisan account's movements, oldest first, each with the running balance.

    One line per journal line of the account (``pending`` or ``available``) in a period: the
    amount, the balance after it, the cause (payment, refund, payout…) and its reference."""
    context = service_context()
    posted = _time_range(args)
    return artisan_statement(
        context.uow_factory(),
        artisan_id,
        current_principal(),
        account_kind=args["account"],
        currency=args["currency"] or context.config.ledger_currency,
        posted=posted,
        limit=args["limit"],
        starting_after=args["starting_after"],
    )


@journal_blp.route("", methods=["GET"])
@require_scopes("ledger:read")
@journal_blp.arguments(JournalEntryArgsSchema, location="query")
@journal_blp.response(200, JournalEntryPageSchema)
def journal_entries(args):
    """Journal entries with their lines, oldest first.

    Filter by posting time, cause or artisan. A bank partner sees those of the artisans paid at its
    bank and those moving its client-funds account (``bank:{code}``)."""
    posted = _time_range(args)
    return list_journal_entries(
        service_context().uow_factory(),
        principal=current_principal(),
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
    """One journal entry with its lines.

    Its cause and the event it came from, and each line's account, side and amount. A bank partner
    sees only its artisans' entries and its bank account's; any other is 404."""
    return get_journal_entry(service_context().uow_factory(), entry_id, current_principal())


@operations_blp.route("/integrity", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.response(200, IntegritySchema)
def integrity():
    """Recompute the ledger's invariants and list every difference found.

    From the lines themselves: every entry balances, the sum of all lines is zero, every stored
    balance equals the sum of its lines, no artisan is below zero. An empty ``differences`` is a
    sound ledger."""
    return check_integrity(service_context().uow_factory())


@operations_blp.route("/cases", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.arguments(CaseArgsSchema, location="query")
@operations_blp.response(200, LedgerCasePageSchema)
def list_ledger_cases(args):
    """Ledger cases: postings refused or waiting, oldest first.

    Postings the ledger refused (a balance rule), and money events waiting for news about their
    artisan (their tier, room under their cap, the payment a refund is for), each with its parked
    event."""
    return ledger_cases.list_cases(
        service_context().uow_factory(),
        status=args.get("status"),
        artisan_id=args.get("artisan_id"),
        limit=args["limit"],
        starting_after=args["starting_after"],
    )


@operations_blp.route("/cases/<string:case_id>", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.response(200, LedgerCaseSchema)
def ledger_case(case_id):
    """One ledger case.

    With its parked event and, once resolved, how (posted, adjusted, noted), when and by whom."""
    return ledger_cases.get_case(service_context().uow_factory(), case_id)


@operations_blp.route("/cases/<string:case_id>/resolve", methods=["POST"])
@require_scopes("ledger:operate")
@idempotent
@operations_blp.arguments(ResolveLedgerCaseSchema)
@operations_blp.response(200, LedgerCaseSchema)
@problems(
    ROLE_NOT_ALLOWED,
    codes.LEDGER_CASE_WAITING,
    codes.RESERVE_STILL_BELOW_ZERO,
    codes.LEDGER_CASE_RESOLVED,
    codes.LEDGER_CASE_NEEDS_REPLAY,
)
def resolve_ledger_case(body, case_id):
    """Resolve an open case that needs no money movement, with a note saying why.

    The note is kept with who and when. A case that moves money is resolved by an adjustment
    proposed with its `case_id`. Refused: 409 `ledger_case_waiting` (its money waits to post by itself: a note would leave it
    parked), 409 `reserve_still_below_zero` (a reserve case while the marketplace still owes the
    reserve: it resolves when the reserve is back at zero), 409 `ledger_case_resolved` (resolved
    already)."""
    return ledger_cases.resolve_with_note(
        service_context().uow_factory(), case_id, current_principal(), note=body["note"]
    )


@operations_blp.route("/accounts", methods=["GET"])
@require_scopes("ledger:operate")
@operations_blp.arguments(LedgerAccountArgsSchema, location="query")
@operations_blp.response(200, LedgerAccountPageSchema)
def ledger_accounts(args):
    """The platform's and the marketplaces' ledger accounts, with their balances.

    The platform's (gateway receivables, banks' client funds, payouts in transit, disputes held,
    fees, revenue) and the marketplaces' (commission, reserve), with balances as people read them;
    artisans' accounts have their own endpoints."""
    return list_ledger_accounts(
        service_context().uow_factory(),
        owner_type=args["owner_type"],
        limit=args["limit"],
        starting_after=args["starting_after"],
    )
