"""``/v1/reconciliation``: runs (upload a settlement file or a bank statement), the three-way view of
items, and cases.

Reading takes ``reconciliation:read`` (operators, bank partners: a bank partner sees its own bank's
runs, items and cases only, anything else is 404); acting takes ``reconciliation:operate``
(operators). An upload is idempotent on the file's SHA-256: the same file again answers 200 with
the run it already has. Case actions that create (a note, a resolution, a write-off) take an
``Idempotency-Key``.
"""

from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.accounts import problems as codes
from services.accounts.api.context import service_context
from services.accounts.api.reconciliation_schemas import (
    AssignSchema,
    CaseArgsSchema,
    CasePageSchema,
    CaseSchema,
    ItemArgsSchema,
    ItemPageSchema,
    NoteSchema,
    ResolveSchema,
    RunFormSchema,
    RunPageSchema,
    RunSchema,
    ThreeWaySchema,
    WriteOffSchema,
)
from services.accounts.service_layer import recon_cases, reconciliation
from shared.auth.flask import current_principal, require_scopes
from shared.errors import ValidationFailed
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.pagination import PageArgsSchema

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/v1/reconciliation",
    description="Three-way reconciliation: settlement files, bank statements, the ledger, and cases.",
)
READ = "reconciliation:read"
OPERATE = "reconciliation:operate"
UPLOAD_ENDPOINT = "reconciliation.Runs"
# The upload as OpenAPI shows it: the form fields of RunFormSchema beside the file.
UPLOAD_BODY_DOC = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "source"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "source": {"type": "string", "enum": ["gateway_settlement", "bank_statement"]},
                    "gateway": {"type": "string"},
                    "bank_code": {"type": "string", "pattern": "^[0-9]{3}$"},
                    "format": {"type": "string", "enum": ["mt940", "camt053"]},
                },
            }
        }
    },
}


@blp.route("/runs")
class Runs(MethodView):
    @require_scopes(OPERATE)
    @blp.arguments(RunFormSchema, location="form")
    @blp.response(201, RunSchema)
    @blp.alt_response(200, schema=RunSchema, description="This file was received before: its run.")
    @blp.doc(requestBody=UPLOAD_BODY_DOC)
    @problems(codes.MALFORMED_FILE)
    def post(self, form):
        """Upload a file (multipart ``file``) and match it against the ledger.

        ``source=gateway_settlement`` (with ``gateway``) or ``bank_statement`` (``format`` mt940 or
        camt053, sniffed when absent). The file's lines are staged and matched in one transaction:
        a malformed file imports nothing (422, ``errors`` names each line or XPath at fault).
        A settlement file's matched lines are then posted; the answer comes once the run is
        completed."""
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise ValidationFailed("Attach the file as multipart field `file`, with its name.", param="file")
        context = service_context()
        run, created = reconciliation.import_file(
            context.uow_factory,
            context.reconciliation,
            upload.stream,
            reconciliation.RunRequest(
                source=form["source"],
                name=upload.filename,
                gateway=form["gateway"],
                bank_code=form["bank_code"],
                format=form["format"],
            ),
            current_principal().client_id,
        )
        view = reconciliation.get_run(context.uow_factory(), run.id, current_principal())
        return view, 201 if created else 200, {"Location": f"/v1/reconciliation/runs/{run.id}"}

    @require_scopes(READ)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, RunPageSchema)
    def get(self, args):
        """Reconciliation runs, oldest first.

        Each uploaded settlement file or bank statement is one run; a bank partner sees its own
        bank's only."""
        return reconciliation.list_runs(service_context().uow_factory(), current_principal(), **args)


@blp.route("/runs/<string:run_id>")
class RunById(MethodView):
    @require_scopes(READ)
    @blp.response(200, RunSchema)
    def get(self, run_id):
        """One reconciliation run.

        Its status, items per state (matched, missing on either side, mismatched, duplicate,
        unidentified), progress, and the file it read (name, SHA-256)."""
        return reconciliation.get_run(service_context().uow_factory(), run_id, current_principal())


@blp.route("/items")
class Items(MethodView):
    @require_scopes(READ)
    @blp.arguments(ItemArgsSchema, location="query")
    @blp.response(200, ThreeWaySchema)
    @blp.alt_response(200, schema=ItemPageSchema, description="With `unmatched_after_days`: a page of items.")
    def get(self, args):
        """Reconciliation items: one object's three legs, or the breaks still open.

        ``object_id``: a payment's, refund's or payout's three legs (ledger, acquirer, bank), each
        with the record proving it. ``unmatched_after_days=N``: every item still in a break state
        N days after its day."""
        uow = service_context().uow_factory()
        if args.get("object_id"):
            return reconciliation.three_way(uow, args["object_id"], current_principal())
        if args.get("unmatched_after_days") is None:
            raise ValidationFailed("Give `object_id` or `unmatched_after_days`.", param="object_id")
        page = reconciliation.unmatched_items(
            uow,
            current_principal(),
            after_days=args["unmatched_after_days"],
            limit=args["limit"],
            starting_after=args["starting_after"],
        )
        # A page, not a three-way view: answered as is, past the view's response schema.
        return jsonify(ItemPageSchema().dump(page))


@blp.route("/cases")
class Cases(MethodView):
    @require_scopes(READ)
    @blp.arguments(CaseArgsSchema, location="query")
    @blp.response(200, CasePageSchema)
    def get(self, args):
        """Reconciliation cases, oldest first.

        Filters: kind, state, min_age_days, amount_min/max, bank_code, gateway, run_id (the cases a
        run opened). A bank partner sees its own bank's."""
        return recon_cases.list_cases(service_context().uow_factory(), current_principal(), **args)


@blp.route("/cases/<string:case_id>")
class CaseById(MethodView):
    @require_scopes(READ)
    @blp.response(200, CaseSchema)
    def get(self, case_id):
        """One reconciliation case.

        With its items, its notes and its history: who assigned, noted, resolved or wrote it off,
        and when."""
        return recon_cases.get_case(service_context().uow_factory(), case_id, current_principal())


@blp.route("/cases/<string:case_id>/assign", methods=["POST"])
@require_scopes(OPERATE)
@blp.arguments(AssignSchema)
@blp.response(200, CaseSchema)
@problems(codes.CASE_STATE_CONFLICT)
def assign_case(body, case_id):
    """Give the case to someone.

    An open case becomes ``investigating``; a resolved or written-off one cannot be reassigned."""
    return recon_cases.assign(service_context().uow_factory(), case_id, current_principal(), body["assignee"])


@blp.route("/cases/<string:case_id>/note", methods=["POST"])
@require_scopes(OPERATE)
@idempotent
@blp.arguments(NoteSchema)
@blp.response(200, CaseSchema)
@problems(codes.CASE_STATE_CONFLICT)
def note_case(body, case_id):
    """Add a note to the case's history.

    Kept with who wrote it and when; a note changes nothing else."""
    return recon_cases.add_note(service_context().uow_factory(), case_id, current_principal(), body["note"])


@blp.route("/cases/<string:case_id>/resolve", methods=["POST"])
@require_scopes(OPERATE)
@idempotent
@blp.arguments(ResolveSchema, example={"note": "The bank booked the transfer a day late.", "item_id": "1042"})
@blp.response(200, CaseSchema)
@problems(codes.CASE_STATE_CONFLICT)
def resolve_case(body, case_id):
    """Resolve the case by linking it to what explains it.

    A run, an item, or a journal entry; with a note. The case becomes ``resolved``."""
    return recon_cases.resolve(service_context().uow_factory(), case_id, current_principal(), **body)


@blp.route("/cases/<string:case_id>/write-off", methods=["POST"])
@require_scopes(OPERATE)
@idempotent
@blp.arguments(WriteOffSchema)
@blp.response(200, CaseSchema)
@problems(codes.CASE_STATE_CONFLICT, codes.ADJUSTMENTS_UNAVAILABLE)
def write_off_case(body, case_id):
    """Write the case off with a ledger adjustment.

    Four-eyes above the threshold: the case becomes ``written_off`` once the adjustment is
    posted, and stays ``investigating`` while it waits for approval."""
    context = service_context()
    return recon_cases.write_off(
        context.uow_factory(), case_id, current_principal(), context.reconciliation.propose_adjustment, **body
    )
