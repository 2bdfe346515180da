"""Request and response schemas (separate input and output schemas)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.onboarding.domain.artisans import CRAFTS, LANGUAGES, REGIONS
from shared.pagination import PageArgsSchema, page_schema


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
    full_name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    cin = fields.String(required=True, validate=validate.Length(min=5, max=20))
    date_of_birth = fields.Date(required=True, metadata={"example": "1985-04-12"})
    phone = fields.String(
        required=True,
        validate=validate.Length(min=9, max=20),
        metadata={"description": "Moroccan mobile, any common format; stored as E.164."},
    )
    region = fields.String(required=True, validate=validate.OneOf(REGIONS))
    craft = fields.String(required=True, validate=validate.OneOf(CRAFTS))
    preferred_language = fields.String(load_default="fr", validate=validate.OneOf(LANGUAGES))


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
    kyc_tier = fields.Integer()
    status = fields.String()
    created_at = fields.DateTime()


ArtisanPageSchema = page_schema(ArtisanSchema)


class ArtisanListArgsSchema(PageArgsSchema):
    tier = fields.Integer(validate=validate.Range(min=0, max=3))
    status = fields.String(validate=validate.OneOf(["active", "rejected", "suspended"]))
    region = fields.String(validate=validate.OneOf(REGIONS))


class ArtisanPathSchema(Schema):
    artisan_id = fields.String(required=True)
