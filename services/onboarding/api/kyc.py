"""KYC: the artisan's tier and requirements, phone verification, identity documents, downgrades
and the audit trail."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    AuditEntryPageSchema,
    AuditLogArgsSchema,
    ConfirmCodeSchema,
    DocumentFileSchema,
    DocumentKindSchema,
    DocumentListSchema,
    DocumentSchema,
    DowngradeResultSchema,
    DowngradeSchema,
    KycSchema,
    PhoneVerificationSchema,
    RescreeningSchema,
)
from services.onboarding.service_layer import documents, kyc, phone, screening
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.idempotency import idempotent
from shared.openapi import problems

blp = Blueprint("kyc", __name__, url_prefix="/v1/artisans", description="KYC tiers, OTP, documents.")


@blp.route("/<string:artisan_id>/kyc")
class Kyc(MethodView):
    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, KycSchema)
    def get(self, artisan_id):
        """The artisan's KYC: tier, limits, next steps and history.

        The tier and the caps it sets, what the next tier still needs (phone, documents, checks,
        a compliance review), and every tier change with its reason."""
        context = service_context()
        return kyc.kyc_view(context.uow_factory(), artisan_id, current_principal(), context.tiers)


@blp.route("/<string:artisan_id>/phone-verification")
class PhoneVerification(MethodView):
    @require_scopes("artisans:write")
    @idempotent
    @blp.response(201, PhoneVerificationSchema)
    @problems(
        codes.PHONE_ALREADY_VERIFIED, codes.OTP_SEND_LIMIT, codes.SMS_UNAVAILABLE, codes.ARTISAN_REJECTED
    )
    def post(self, artisan_id):
        """Send a 6-digit code to the artisan's phone by SMS.

        In French or Arabic, per the artisan. Three codes per hour at most (``otp_send_limit``, with
        ``Retry-After``); a newer code replaces the one before."""
        context = service_context()
        return phone.send_code(
            context.uow_factory(),
            artisan_id,
            current_principal(),
            policy=context.otp,
            sms=context.sms,
        )


@blp.route("/<string:artisan_id>/phone-verification/confirm")
class PhoneVerificationConfirm(MethodView):
    @require_scopes("artisans:write")
    @blp.arguments(ConfirmCodeSchema)
    @blp.response(200, PhoneVerificationSchema)
    @problems(
        codes.NO_PENDING_VERIFICATION,
        codes.OTP_INCORRECT,
        codes.OTP_EXPIRED,
        codes.OTP_ATTEMPTS_EXCEEDED,
        codes.PHONE_ALREADY_VERIFIED,
        codes.ARTISAN_REJECTED,
    )
    def post(self, body, artisan_id):
        """Check the code the artisan received. Success gives tier 1.

        Five attempts per code, valid five minutes; a wrong code says how many attempts remain."""
        context = service_context()
        return phone.confirm_code(
            context.uow_factory(),
            artisan_id,
            body["code"],
            current_principal(),
            policy=context.otp,
            tiers=context.tiers,
        )


@blp.route("/<string:artisan_id>/documents")
class Documents(MethodView):
    @require_any_scope("artisans:write", "kyc:review", "self:write")
    @idempotent
    @blp.arguments(DocumentKindSchema, location="form")
    @blp.arguments(DocumentFileSchema, location="files")
    @blp.response(201, DocumentSchema)
    @problems(
        codes.INVALID_DOCUMENT_KIND,
        codes.EMPTY_DOCUMENT,
        codes.DOCUMENT_TOO_LARGE,
        codes.UNSUPPORTED_DOCUMENT_TYPE,
        codes.ARTISAN_REJECTED,
    )
    def post(self, form, files, artisan_id):
        """Upload an identity document (multipart: ``kind`` and ``file``; JPEG, PNG or PDF, ≤ 5 MB).

        The type is detected from the bytes, a SHA-256 is recorded, and the file is encrypted at
        rest.
        """
        context = service_context()
        upload = files["file"]
        data = upload.stream.read(context.config.max_document_bytes + 1)
        return documents.upload_document(
            context.uow_factory(),
            artisan_id,
            documents.UploadedDocument(kind=form["kind"], data=data),
            current_principal(),
            cipher=context.cipher,
            tiers=context.tiers,
            max_bytes=context.config.max_document_bytes,
        )

    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, DocumentListSchema)
    def get(self, artisan_id):
        """The artisan's documents (metadata only).

        Kind, detected content type, size, SHA-256 and upload time of each; never the file, which
        only compliance officers download."""
        return {
            "data": documents.list_documents(service_context().uow_factory(), artisan_id, current_principal())
        }


@blp.route("/<string:artisan_id>/documents/<string:document_id>/content")
class DocumentContent(MethodView):
    @require_scopes("kyc:review")
    @blp.response(200, description="The decrypted document (compliance officers only; audited).")
    @problems(codes.DOCUMENT_UNREADABLE, codes.DOCUMENT_SHREDDED)
    def get(self, artisan_id, document_id):
        """Download a document.

        Compliance officers only; every download is written to the audit log under their name. The
        answer is the file itself (JPEG, PNG or PDF) with its SHA-256 in ``Digest``."""
        context = service_context()
        document, content = documents.download_document(
            context.uow_factory(),
            artisan_id,
            document_id,
            current_principal(),
            cipher=context.cipher,
        )
        extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}[document.content_type]
        return Response(
            content,
            mimetype=document.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{document.id}.{extension}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Digest": f"sha-256={document.sha256}",
            },
        )


@blp.route("/<string:artisan_id>/kyc/downgrades")
class Downgrades(MethodView):
    @require_scopes("kyc:review")
    @idempotent
    @blp.arguments(DowngradeSchema)
    @blp.response(201, DowngradeResultSchema)
    def post(self, body, artisan_id):
        """Lower an artisan's tier with a reason.

        A document found forged, say: the documents named are marked rejected, the tier drops at once (its
        caps with it) and the change is audited under the officer's name."""
        context = service_context()
        return kyc.downgrade_tier(
            context.uow_factory(),
            artisan_id,
            kyc.Downgrade(
                tier=body["tier"],
                reason_code=body["reason_code"],
                note=body["note"],
                document_ids=tuple(body["document_ids"]),
            ),
            officer=current_principal().client_id,
            tiers=context.tiers,
        )


@blp.route("/<string:artisan_id>/screenings")
class Screenings(MethodView):
    @require_scopes("kyc:review")
    @idempotent
    @blp.response(201, RescreeningSchema)
    @problems(codes.SCREENING_LIST_UNAVAILABLE, codes.ARTISAN_REJECTED)
    def post(self, artisan_id):
        """Rescreen one artisan against the sanctions and PEP lists in force now.

        A hit opens a screening-hit case (one at a time) and holds the artisan at tier 0; a clear
        result lets an artisan whose screening was pending climb to the tier earned. Audited under the
        officer's name. 409 ``screening_list_unavailable`` when no list is loaded yet."""
        context = service_context()
        return screening.rescreen_artisan(
            context.uow_factory(),
            artisan_id,
            context.screening,
            officer=current_principal().client_id,
            threshold=context.config.screening_threshold,
            tiers=context.tiers,
        ), 201


@blp.route("/<string:artisan_id>/kyc/audit-log")
class AuditLog(MethodView):
    @require_scopes("kyc:review")
    @blp.arguments(AuditLogArgsSchema, location="query")
    @blp.response(200, AuditEntryPageSchema)
    def get(self, args, artisan_id):
        """The artisan's KYC audit log, oldest first.

        Every KYC decision, tier change and document download for one artisan, with who did it and
        why; ``since`` starts later."""
        return kyc.audit_log(service_context().uow_factory(), artisan_id, **args)
