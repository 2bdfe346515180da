"""An artisan's personal data (law 09-08): the export of everything Hirfa holds about them."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import PersonalDataArgsSchema
from services.onboarding.service_layer import personal_data
from shared.auth.flask import current_principal, require_any_scope

blp = Blueprint(
    "personal_data",
    __name__,
    url_prefix="/v1/artisans",
    description="An artisan's personal data: the export of everything Hirfa holds about them.",
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
    )
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
