"""The artisan's signed income statement, its public verification, and the key that signs it."""

from __future__ import annotations

from flask import Response, g, jsonify, request
from flask_smorest import Blueprint
from werkzeug.exceptions import MethodNotAllowed

from services.accounts.api.context import service_context
from services.accounts.api.schemas import (
    IncomeStatementArgsSchema,
    PublishedStatementSchema,
    SignedIncomeStatementSchema,
    VerifyStatementRequestSchema,
    VerifyStatementResultSchema,
)
from services.accounts.service_layer import income_statements
from shared.auth.flask import current_principal, require_scopes
from shared.http_clients import client_address
from shared.openapi import JwksSchema, problems
from shared.problem_codes import RATE_LIMITED

statements_blp = Blueprint(
    "income_statements",
    __name__,
    url_prefix="/v1",
    description="The artisan's signed income statement (JSON as a JWS, or a PDF in French or Arabic).",
)
keys_blp = Blueprint("statement_keys", __name__, description="The keys that sign income statements.")
blueprints = (statements_blp, keys_blp)

PDF = "application/pdf"
JOSE = "application/jose"
LANGUAGES = ("fr", "ar")


def _format(args: dict) -> str:
    if args.get("format"):
        return str(args["format"])
    best = request.accept_mimetypes.best_match(["application/json", PDF, JOSE], default="application/json")
    return {PDF: "pdf", JOSE: "jws"}.get(best or "", "json")


def _language(args: dict) -> str:
    if args.get("lang"):
        return str(args["lang"])
    claimed = (current_principal().lang or "").split("-")[0]
    return claimed if claimed in LANGUAGES else "fr"


def _caller() -> str:
    """Who a public request comes from, for its rate limit."""
    return client_address(service_context().config.trust_forwarded_for)


@statements_blp.route("/artisans/<string:artisan_id>/income-statement", methods=["GET"])
# Any valid token, checked before anything else; who may read whose statement is the service
# layer's to say (the artisan and operators; anyone else: 404, never 403).
@require_scopes()
@statements_blp.arguments(IncomeStatementArgsSchema, location="query")
@statements_blp.response(200, SignedIncomeStatementSchema)
def income_statement(args, artisan_id):
    """The artisan's income statement for whole months, from the ledger, signed (JWS, EdDSA).

    For the artisan (their own) and operators; anyone else gets 404. Each call issues a new
    statement with its own verification code (nothing else changes: safe to retry).
    ``format=pdf`` (or ``Accept: application/pdf``) answers the PDF, in ``lang`` (``fr``/``ar``).
    """
    context = service_context()
    settings = context.income_statements
    issued = income_statements.issue_income_statement(
        context.uow_factory(),
        artisan_id,
        current_principal(),
        period_from=args["period_from"],
        period_to=args["period_to"],
        settings=settings,
    )
    filename = f"releve-{artisan_id}-{args['period_from']}-{args['period_to']}"
    headers = {"Cache-Control": "no-store", "Hirfa-Verification-Code": issued.code}
    kind = _format(args)
    if kind == "pdf":
        body = income_statements.render_pdf(issued, _language(args), settings)
        headers["Content-Disposition"] = f'inline; filename="{filename}.pdf"'
        return Response(body, mimetype=PDF, headers=headers)
    if kind == "jws":
        return Response(issued.jws, mimetype=JOSE, headers=headers)
    return (
        {
            "jws": issued.jws,
            "kid": issued.kid,
            "verification_code": issued.code,
            "statement_url": settings.statement_url(issued.code),
            "verify_url": settings.verify_url,
            "statement": issued.statement,
        },
        200,
        headers,
    )


@statements_blp.route("/income-statements/verify", methods=["POST"])
@statements_blp.doc(security=[])
@statements_blp.arguments(VerifyStatementRequestSchema)
@statements_blp.response(200, VerifyStatementResultSchema)
@problems(RATE_LIMITED)
def verify(body):
    """Check a signed statement (no account needed; rate limited per caller).

    Answers 200 whether or not it is valid: ``valid``, the ``reason``, and, when valid, the
    ``statement`` that was signed. Offline, any JOSE library does the same with the JWKS."""
    context = service_context()
    context.income_statements.public_limiter.hit(_caller())
    return income_statements.verify_statement(body["jws"], context.income_statements)


@statements_blp.route("/income-statements/<string:code>", methods=["GET"])
@statements_blp.doc(security=[])
@statements_blp.response(200, PublishedStatementSchema)
@problems(RATE_LIMITED)
def by_code(code):
    """The signed statement a verification code names.

    The code is printed on the PDF: a bank checks the statement with the JWKS or the verify
    endpoint. No account needed; rate limited per caller."""
    if code == "verify":
        # The path of the verify endpoint (POST), never a code (codes are digits and capitals):
        # a GET there is the wrong method, as it would be without this route beside it.
        raise MethodNotAllowed(valid_methods=["POST"])
    g.log_path = "/v1/income-statements/<code>"  # the code is a capability: not in the logs
    context = service_context()
    context.income_statements.public_limiter.hit(_caller())
    return income_statements.statement_by_code(context.uow_factory(), code)


@keys_blp.route("/.well-known/jwks.json", methods=["GET"])
@keys_blp.doc(security=[])
@keys_blp.response(200, JwksSchema)
def jwks():
    """The public keys that sign income statements.

    Not access tokens: those are onboarding's. A JSON Web Key Set; cache it for a few minutes."""
    response = jsonify(service_context().income_statements.signer.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
