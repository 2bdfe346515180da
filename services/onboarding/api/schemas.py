"""Request and response schemas (separate input and output schemas)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.onboarding.domain.artisan_sessions import DEVICE_ID_PATTERN
from services.onboarding.domain.artisans import CRAFTS, LANGUAGES
from services.onboarding.domain.documents import DOCUMENT_KINDS
from services.onboarding.domain.kyc import APPROVE_REASONS, DOWNGRADE_REASONS, REJECT_REASONS
from shared.pagination import PageArgsSchema, page_schema
from shared.regions import REGIONS

# The oldest age a review queue filter asks for: ten years, far beyond any case left waiting.
MAX_REVIEW_AGE_DAYS = 3650


class TokenRequestSchema(Schema):
    grant_type = fields.String(required=True, validate=validate.Equal("client_credentials"))
    client_id = fields.String(validate=validate.Length(min=1, max=64))
    client_secret = fields.String(validate=validate.Length(min=1, max=200))
    scope = fields.String(validate=validate.Length(max=1000))
    audience = fields.String(validate=validate.Length(max=100))


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True)


class RegisterArtisanSchema(Schema):
    full_name = fields.String(
        required=True,
        validate=validate.Length(min=2, max=200),
        metadata={"example": "Fatima Zahra El Idrissi"},
    )
    cin = fields.String(
        required=True, validate=validate.Length(min=5, max=20), metadata={"example": "AB123456"}
    )
    date_of_birth = fields.Date(required=True, metadata={"example": "1985-04-12"})
    phone = fields.String(
        required=True,
        validate=validate.Length(min=9, max=20),
        metadata={
            "description": "Moroccan mobile, any common format; stored as E.164.",
            "example": "0612345678",
        },
    )
    region = fields.String(required=True, validate=validate.OneOf(REGIONS))
    craft = fields.String(required=True, validate=validate.OneOf(CRAFTS))
    preferred_language = fields.String(load_default="fr", validate=validate.OneOf(LANGUAGES))
    artisan_card_number = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9/ -]{3,40}$"),
        metadata={
            "description": "Artisan card / RNA (Registre National de l'Artisanat) number.",
            "example": "FES/2019/04417",
        },
    )
    cooperative_ice = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={
            "description": "The cooperative's ICE, 15 digits. A failed mod-97 key only adds a warning.",
            "example": "001525438000053",
        },
    )


class ArtisanSchema(Schema):
    id = fields.String(required=True, metadata={"example": "art_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("artisan")
    full_name = fields.String()
    cin = fields.String()
    date_of_birth = fields.Date()
    phone = fields.String()
    region = fields.String()
    craft = fields.String()
    preferred_language = fields.String()
    artisan_card_number = fields.String(allow_none=True)
    cooperative_ice = fields.String(allow_none=True)
    warnings = fields.List(fields.String())
    kyc_tier = fields.Integer()
    status = fields.String()
    phone_verified = fields.Function(lambda artisan: artisan.phone_verified_at is not None)
    screening_status = fields.String()
    restricted_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "Set once the artisan asked for erasure: no longer processed (law 09-08)."},
    )
    created_at = fields.DateTime()


ArtisanPageSchema = page_schema(ArtisanSchema)


class ArtisanListArgsSchema(PageArgsSchema):
    tier = fields.Integer(validate=validate.Range(min=0, max=3))
    status = fields.String(validate=validate.OneOf(["active", "rejected", "suspended"]))
    region = fields.String(validate=validate.OneOf(REGIONS))


class TierCountSchema(Schema):
    tier = fields.Integer(required=True)
    count = fields.Integer(required=True)


class KycFunnelSchema(Schema):
    object = fields.Constant("kyc_funnel")
    tiers = fields.List(
        fields.Nested(TierCountSchema),
        required=True,
        metadata={"description": "Active artisans, tier 0 to 3."},
    )
    rejected = fields.Integer(required=True)
    suspended = fields.Integer(required=True)


class ArtisanPathSchema(Schema):
    artisan_id = fields.String(required=True)


# --- KYC -------------------------------------------------------------------------------------------


class MoneySchema(Schema):
    amount = fields.Integer(required=True, metadata={"description": "Minor units (centimes)."})
    currency = fields.String(required=True)


class LimitsSchema(Schema):
    balance_cap = fields.Nested(MoneySchema, required=True)


class RequirementSchema(Schema):
    code = fields.String(
        required=True,
        metadata={
            "description": "phone_verification, id_document_front, id_document_back, selfie, "
            "screening_clear or manual_review."
        },
    )
    status = fields.String(required=True, metadata={"description": "missing, in_review or pending."})


class TierChangeSchema(Schema):
    from_tier = fields.Integer()
    to_tier = fields.Integer()
    reason_code = fields.String()
    note = fields.String(allow_none=True)
    actor = fields.String()
    changed_at = fields.DateTime()


class KycSchema(Schema):
    object = fields.String()
    artisan_id = fields.String()
    status = fields.String()
    tier = fields.Integer()
    limits = fields.Nested(LimitsSchema)
    next_tier = fields.Integer(allow_none=True)
    next_tier_limits = fields.Nested(LimitsSchema, allow_none=True)
    requirements = fields.List(fields.Nested(RequirementSchema))
    phone_verified_at = fields.DateTime(allow_none=True)
    screening_status = fields.String()
    history = fields.List(fields.Nested(TierChangeSchema))


class PhoneVerificationSchema(Schema):
    object = fields.String()
    id = fields.String()
    artisan_id = fields.String()
    status = fields.String()
    phone = fields.String(metadata={"description": "Masked."})
    expires_at = fields.DateTime()
    max_attempts = fields.Integer()
    verified_at = fields.DateTime()
    kyc_tier = fields.Integer()


class ConfirmCodeSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error="Six digits."),
        metadata={"example": "482913"},
    )


class DocumentKindSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(DOCUMENT_KINDS))


class DocumentFileSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class DocumentSchema(Schema):
    id = fields.String()
    object = fields.Constant("kyc_document")
    artisan_id = fields.String()
    kind = fields.String()
    content_type = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    status = fields.String()
    submitted_by = fields.String()
    created_at = fields.DateTime()


class DocumentListSchema(Schema):
    data = fields.List(fields.Nested(DocumentSchema), required=True)


class DowngradeSchema(Schema):
    tier = fields.Integer(required=True, validate=validate.Range(min=0, max=2))
    reason_code = fields.String(required=True, validate=validate.OneOf(DOWNGRADE_REASONS))
    note = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    document_ids = fields.List(
        fields.String(validate=validate.Length(max=40)), load_default=list, validate=validate.Length(max=10)
    )


class DowngradeResultSchema(Schema):
    artisan_id = fields.String()
    tier = fields.Integer()
    kyc_version = fields.Integer()


class AuditEntrySchema(Schema):
    id = fields.String()
    artisan_id = fields.String()
    action = fields.String()
    actor = fields.String()
    subject_id = fields.String(allow_none=True)
    reason_code = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


AuditEntryPageSchema = page_schema(AuditEntrySchema)


class AuditLogArgsSchema(PageArgsSchema):
    since = fields.AwareDateTime(default_timezone=None)


class ReviewSchema(Schema):
    id = fields.String()
    object = fields.Constant("kyc_review")
    artisan_id = fields.String()
    kind = fields.String(metadata={"description": "screening_hit, tier_upgrade or bank_account_claim."})
    requested_tier = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": "open, approved, rejected or closed."})
    submitted_by = fields.String()
    details = fields.Dict()
    decision = fields.String(allow_none=True)
    decided_by = fields.String(allow_none=True)
    reason_code = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)


ReviewPageSchema = page_schema(ReviewSchema)


class ReviewListArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default="open", validate=validate.OneOf(["open", "approved", "rejected", "closed"])
    )
    kind = fields.String(validate=validate.OneOf(["screening_hit", "tier_upgrade", "bank_account_claim"]))
    artisan_id = fields.String(validate=validate.Length(max=40))
    region = fields.String(
        validate=validate.OneOf(REGIONS), metadata={"description": "The artisan's region."}
    )
    min_age_days = fields.Integer(
        validate=validate.Range(min=0, max=MAX_REVIEW_AGE_DAYS),
        metadata={"description": "Cases opened at least this many days (of 24 hours) ago."},
    )


class ScreeningMatchSchema(Schema):
    reference = fields.String(metadata={"description": "The list entry's own reference (e.g. QDi.001)."})
    list_type = fields.String(metadata={"description": "sanctions or pep."})
    entry_name = fields.String()
    matched_name = fields.String(metadata={"description": "The entry's name (or alias) that matched."})
    score = fields.Float()


class RescreeningSchema(Schema):
    id = fields.Function(lambda done: done.result.id, metadata={"example": "scr_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("screening")
    artisan_id = fields.Function(lambda done: done.result.artisan_id)
    list_version = fields.Function(lambda done: done.result.list_version)
    outcome = fields.Function(lambda done: done.result.outcome, metadata={"description": "clear or hit."})
    matches = fields.Function(
        lambda done: ScreeningMatchSchema(many=True).dump(done.result.matches),
        metadata={"description": "The list entries the name matched (none when clear)."},
    )
    screening_status = fields.String(
        metadata={"description": "The artisan's screening now: clear, hit (a case waits) or pending."}
    )
    kyc_tier = fields.Integer(metadata={"description": "The artisan's tier now."})
    review_id = fields.String(
        allow_none=True, metadata={"description": "The screening-hit case waiting for a decision, if any."}
    )
    created_at = fields.Function(lambda done: done.result.created_at.isoformat())


class ReviewDecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    reason_code = fields.String(
        required=True,
        validate=validate.OneOf(APPROVE_REASONS + REJECT_REASONS),
        metadata={
            "description": f"approve: {', '.join(APPROVE_REASONS)}; reject: {', '.join(REJECT_REASONS)}."
        },
    )
    note = fields.String(required=True, validate=validate.Length(min=3, max=2000))


# --- bank accounts ---------------------------------------------------------------------------------


class BankAccountRequestSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(["link", "open"]))
    rib = fields.String(
        validate=validate.Length(min=1, max=40), metadata={"description": "link: 24-digit RIB."}
    )
    iban = fields.String(
        validate=validate.Length(min=1, max=40), metadata={"description": "link: MA + 26 digits."}
    )
    holder_name = fields.String(
        validate=validate.Length(min=2, max=200), metadata={"description": "link only."}
    )
    bank = fields.String(
        validate=validate.Length(min=1, max=40), metadata={"description": "open: partner bank."}
    )
    make_default = fields.Boolean(load_default=False)

    @validates_schema
    def _mode_fields(self, data, **_kwargs):
        if data["mode"] == "link":
            errors = {}
            if not data.get("holder_name"):
                errors["holder_name"] = ["Required to link an account."]
            if not data.get("rib") and not data.get("iban"):
                errors["rib"] = ["Give a RIB or an IBAN."]
            if data.get("rib") and data.get("iban"):
                errors["iban"] = ["Give either a RIB or an IBAN, not both."]
            if data.get("bank"):
                errors["bank"] = ["Only for mode 'open'."]
            if errors:
                raise ValidationError(errors)
        else:
            errors = {
                name: ["Only for mode 'link'."] for name in ("rib", "iban", "holder_name") if data.get(name)
            }
            if not data.get("bank"):
                errors["bank"] = ["Required to open an account."]
            if errors:
                raise ValidationError(errors)


class BankAccountSchema(Schema):
    id = fields.String()
    object = fields.Constant("bank_account")
    artisan_id = fields.String()
    mode = fields.String()
    status = fields.String(
        metadata={
            "description": "link: linked, or pending_review (a claim on an account another artisan "
            "holds, until compliance decides). open: pending, then opened or refused."
        }
    )
    bank_code = fields.String(allow_none=True)
    partner_bank = fields.String(allow_none=True)
    rib = fields.String(allow_none=True)
    iban = fields.String(allow_none=True)
    holder_name = fields.String()
    holder_verification = fields.String(
        allow_none=True,
        metadata={
            "description": "The bank's answer when the account was linked: match, or unknown (the bank "
            "cannot verify; only the holder-name check passed and the account needs confirmation)."
        },
    )
    review_id = fields.String(
        metadata={"description": "On a pending_review claim: the compliance case deciding it."}
    )
    is_default = fields.Boolean()
    refusal_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class BankAccountListSchema(Schema):
    data = fields.List(fields.Nested(BankAccountSchema), required=True)


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    applied = fields.Boolean()
    status = fields.String()


# --- Notifications -----------------------------------------------------------------------------


class NotificationListArgsSchema(PageArgsSchema):
    unread = fields.Boolean(load_default=False, metadata={"description": "Only those not read yet."})


class NotificationSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "payment_received, payout_paid, …"})
    language = fields.String(required=True)
    text = fields.String(required=True)
    channel = fields.String(required=True, metadata={"description": "sms, or inbox (phone not verified)"})
    status = fields.String(required=True, metadata={"description": "queued | sent | delivered | failed"})
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    read = fields.Function(lambda notification: notification.read_at is not None, required=True)
    read_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)


NotificationPageSchema = page_schema(NotificationSchema)


# -- personal data ----------------------------------------------------------------------------------


class PersonalDataArgsSchema(Schema):
    include = fields.String(
        validate=validate.OneOf(["documents"]),
        metadata={"description": "documents: the KYC documents themselves too (each download audited)."},
    )


class ErasureRequestSchema(Schema):
    id = fields.String(required=True, metadata={"example": "era_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("erasure_request")
    artisan_id = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "restricted: kept (the anti-money-laundering duty), no longer processed nor "
            "shown beyond compliance, until retain_until; then erased."
        },
    )
    requested_by = fields.String(required=True)
    requested_at = fields.DateTime(required=True)
    relationship_ended_at = fields.DateTime(required=True)
    retain_until = fields.DateTime(
        required=True, metadata={"description": "When the retention duty ends and the data is erased."}
    )
    erased_at = fields.DateTime(allow_none=True)


class ErasureRequestListSchema(Schema):
    data = fields.List(fields.Nested(ErasureRequestSchema), required=True)


# -- artisans signing in by phone ------------------------------------------------------------------

DEVICE_ID_FIELD = dict(
    required=True,
    validate=validate.Regexp(DEVICE_ID_PATTERN, error="8 to 128 letters, digits or . _ : -"),
    metadata={
        "description": "The app's own id for this installation (a UUID is ideal).",
        "example": "3f0c9a7e-5b1d-4e2a-9c61-0d2b7e8f4a10",
    },
)


class StartSignInSchema(Schema):
    phone = fields.String(
        required=True,
        validate=validate.Length(min=9, max=20),
        metadata={"description": "The artisan's Moroccan mobile number, any common format."},
    )


class SignInSchema(Schema):
    object = fields.String()
    id = fields.String(metadata={"example": "asn_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    status = fields.String()
    phone = fields.String(metadata={"description": "Masked."})
    expires_at = fields.DateTime()
    max_attempts = fields.Integer()


class VerifySignInSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error="Six digits."),
        metadata={"example": "482913"},
    )
    device_id = fields.String(**DEVICE_ID_FIELD)


class RefreshSessionSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    device_id = fields.String(**DEVICE_ID_FIELD)


class LogoutSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ArtisanTokensSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds (15 minutes)."})
    scope = fields.String(required=True)
    refresh_token = fields.String(
        required=True, metadata={"description": "Opaque; bound to device_id; each use returns a new one."}
    )
    refresh_token_expires_in = fields.Integer(required=True)
    artisan_id = fields.String(required=True)
    device_id = fields.String(required=True)


class DeviceSchema(Schema):
    object = fields.String()
    artisan_id = fields.String()
    device_id = fields.String()
    first_signed_in_at = fields.DateTime()
    last_signed_in_at = fields.DateTime()
    last_refreshed_at = fields.DateTime(allow_none=True)
    signed_in = fields.Boolean(metadata={"description": "Whether a session of this device is still live."})
    revoked_at = fields.DateTime(allow_none=True)


class DeviceListSchema(Schema):
    data = fields.List(fields.Nested(DeviceSchema))


# -- staff sign-in ----------------------------------------------------------------------------------
# Loose on purpose: a malformed email or code is a wrong credential like any other (one answer, 401).


class StaffSignInSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, validate=validate.Length(max=1024))
    totp_code = fields.String(
        load_default="",
        validate=validate.Length(max=16),
        metadata={"description": "The six digits the authenticator shows (omit before enrolment)."},
    )


class StaffProfileSchema(Schema):
    id = fields.String(required=True, metadata={"example": "stf_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    name = fields.String(required=True)
    email = fields.String(required=True)
    roles = fields.List(fields.String(), required=True, metadata={"example": ["compliance"]})


class StaffTokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds (15 minutes)."})
    scope = fields.String(required=True)
    refresh_token = fields.String(
        required=True,
        metadata={"description": "Opaque; renews the access token (POST /v1/staff-sessions/refresh), once."},
    )
    refresh_token_expires_in = fields.Integer(
        required=True, metadata={"description": "Seconds it lasts unused (the session also ends each day)."}
    )
    staff = fields.Nested(StaffProfileSchema, required=True)


class StaffRefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class StaffCardSchema(Schema):
    object = fields.Constant("staff_member")
    id = fields.String(required=True, metadata={"example": "stf_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    name = fields.String(required=True)
    roles = fields.List(fields.String(), required=True, metadata={"example": ["operator"]})


class StaffEnrolmentSchema(Schema):
    enrolment_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class StaffEnrolmentSecretSchema(Schema):
    otpauth_uri = fields.String(required=True, metadata={"description": "Show it as a QR code."})
    secret = fields.String(required=True, metadata={"description": "Base32, for typing in by hand."})


class ConfirmStaffEnrolmentSchema(Schema):
    enrolment_token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    totp_code = fields.String(required=True, validate=validate.Length(max=16))
