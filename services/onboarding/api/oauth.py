"""The token issuer: OAuth2 client credentials, and the JWKS other services verify against."""

from __future__ import annotations

import base64

from flask import jsonify, request
from flask_smorest import Blueprint
from marshmallow import ValidationError

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import TokenRequestSchema, TokenSchema
from services.onboarding.service_layer.api_clients import issue_token
from shared.errors import InvalidClient, UnsupportedMediaType, ValidationFailed
from shared.openapi import JwksSchema, problems
from shared.problem_codes import INVALID_CLIENT

blp = Blueprint("oauth", __name__, description="Access tokens (OAuth2 client credentials).")


def _client_credentials(form: dict) -> tuple[str, str]:
    """Credentials from HTTP Basic (RFC 6749 §2.3.1) or, failing that, from the body."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidClient("Malformed Basic credentials.", error="invalid_client") from None
        return client_id, secret
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    raise InvalidClient(
        "Send client_id and client_secret (HTTP Basic or in the body).", error="invalid_client"
    )


@blp.route("/v1/oauth/token", methods=["POST"])
@blp.doc(
    security=[],
    requestBody={
        "content": {
            "application/x-www-form-urlencoded": {"schema": TokenRequestSchema},
            "application/json": {"schema": TokenRequestSchema},
        }
    },
)
@blp.response(200, TokenSchema)
@problems(INVALID_CLIENT, codes.INVALID_SCOPE, codes.INVALID_AUDIENCE)
def token():
    """Exchange client credentials for a short-lived access token.

    OAuth2 client credentials (RFC 6749 §4.4): the client authenticates with HTTP Basic or
    ``client_id``/``client_secret`` in the form. The token is a JWT signed with the key the JWKS
    publishes; it carries the client's scopes (or the subset asked for in ``scope``) for the
    services named in ``audience`` (all three by default). Refusals carry OAuth2's ``error`` too."""
    if request.mimetype == "application/x-www-form-urlencoded":
        raw = request.form.to_dict()
    elif request.is_json:
        raw = request.get_json(silent=True)
        if not isinstance(raw, dict):
            raise ValidationFailed("The body must be a JSON object.")
    else:
        raise UnsupportedMediaType("Send application/x-www-form-urlencoded (or application/json).")
    try:
        form = TokenRequestSchema().load(raw)
    except ValidationError as exc:
        errors = [
            {"param": name, "message": " ".join(map(str, messages))}
            for name, messages in exc.normalized_messages().items()
        ]
        raise ValidationFailed(
            "; ".join(f"{e['param']}: {e['message']}" for e in errors),
            errors=errors,
            error="invalid_request",
        ) from None
    client_id, client_secret = _client_credentials(form)
    context = service_context()
    return issue_token(
        context.uow_factory(),
        context.token_issuer,
        client_id=client_id,
        client_secret=client_secret,
        scope=form.get("scope"),
        audience=form.get("audience"),
    )


@blp.route("/.well-known/jwks.json", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, JwksSchema)
def jwks():
    """The public keys that sign access tokens.

    A JSON Web Key Set: services verify tokens offline against it, by the token's ``kid``. Cache
    it for a few minutes; during a key rotation it holds the old key and the new one."""
    response = jsonify(service_context().signing_keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
