"""An artisan's personal data (law 09-08): the export of everything Hirfa holds about them, and
their request to have it erased."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ErasureRequestListSchema,
    ErasureRequestSchema,
    PersonalDataArgsSchema,
)
from services.onboarding.service_layer import erasure, personal_data
from shared.auth.flask import current_principal, require_any_scope
from shared.idempotency import idempotent
from shared.openapi import problems

blp = Blueprint(
    "personal_data",
    __name__,
    url_prefix="/v1/artisans",
    description="An artisan's personal data (law 09-08): its export, and erasure requests.",
)


@blp.route("/<string:artisan_id>/personal-data")
class PersonalData(MethodView):
    @require_any_scope("personal_data:manage", "self:read")
    @blp.arguments(PersonalDataArgsSchema, location="query")
    @blp.response(
        200,
        {"type": "string", "format": "binary"},
        description="A zip: manifest.json, onboarding/, payments/ and accounts/ (one JSON file per part).",
        content_type="application/zip",
        example="PK\u0003\u0004… (manifest.json, onboarding/profile.json, payments/payments.json, …)",
    )
    @problems(codes.PERSONAL_DATA_UNAVAILABLE)
    def get(self, args, artisan_id):
        """Everything Hirfa holds about an artisan, across the three services, as one archive.

        The artisan themself (their token: their own id only) or compliance (``personal_data:manage``).
        Profile, KYC history, documents' metadata (the documents themselves with
        ``include=documents``, each download audited), bank accounts, notifications and the KYC
        audit log from onboarding; payments, refunds and disputes from payments; ledger statements,
        payouts and payout accounts from accounts. A service that cannot answer refuses the export
        (``503 personal_data_unavailable``, with ``Retry-After``). Every export is in the audit log.
        """
        context = service_context()
        export = personal_data.export_personal_data(
            context.uow_factory,
            artisan_id,
            current_principal(),
            sources=context.personal_data_sources,
            cipher=context.cipher,
            include_documents=args.get("include") == "documents",
        )
        return Response(
            export.archive,
            mimetype="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )


@blp.route("/<string:artisan_id>/erasure-requests")
class ErasureRequests(MethodView):
    @require_any_scope("personal_data:manage", "self:write")
    @idempotent
    @blp.response(201, ErasureRequestSchema)
    @blp.alt_response(200, schema=ErasureRequestSchema, description="Already requested: the request.")
    @blp.doc(
        parameters=[
            {"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"}}
        ]
    )
    def post(self, artisan_id):
        """Ask for the artisan's personal data to be erased (the artisan themself, or compliance).

        What the anti-money-laundering law obliges Hirfa to keep (``ONBOARDING_AML_RETENTION_YEARS``
        after the relationship ends: now) is restricted until then: the artisan can no longer sign
        in, be paid (``payee_restricted``) or be seen by anyone but compliance; it is erased
        afterwards. One request per artisan: asking again answers ``200`` with it.
        """
        context = service_context()
        request, created = erasure.request_erasure(
            context.uow_factory(),
            artisan_id,
            current_principal(),
            retention_years=context.config.aml_retention_years,
        )
        return request, 201 if created else 200

    @require_any_scope("personal_data:manage", "self:read")
    @blp.response(200, ErasureRequestListSchema)
    def get(self, artisan_id):
        """The artisan's erasure request, if they made one.

        A list of at most one: where it stands (``restricted`` until ``retain_until``, then
        ``erased``). The artisan themself, or compliance."""
        return {
            "data": erasure.get_erasure_requests(
                service_context().uow_factory(), artisan_id, current_principal()
            )
        }
