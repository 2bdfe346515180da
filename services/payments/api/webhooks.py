"""Marketplace webhooks: the endpoints a marketplace is told of changes at, and the deliveries made."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from services.payments.domain.webhooks import (
    ALL_EVENT_TYPES,
    MAX_URL_LENGTH,
    WEBHOOK_EVENT_TYPES,
    DeliveryStatus,
    EndpointStatus,
)
from services.payments.service_layer import webhooks
from shared.app import ProblemApi
from shared.auth.flask import current_principal, require_scopes
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.idempotency import idempotent
from shared.pagination import PageArgsSchema, page_schema

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1",
    description="Webhooks: signed notifications of your payments, refunds and disputes, POSTed to your URLs.",
)

SCOPE = "webhooks:manage"
IDEMPOTENCY_HEADER_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "schema": {"type": "string"},
}
EVENT_TYPES_DOC = ", ".join(WEBHOOK_EVENT_TYPES)
SIGNATURE_DOC = (
    "The answer holds the signing secret, shown this once only. Events are POSTed as JSON "
    '`{id, type, created, sequence, data: {object}}`; each request carries `Hirfa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`, '
    "`Hirfa-Event-Id` and `Hirfa-Delivery-Id`. Verify the signature over the raw body before parsing it, "
    "and refuse a `t` more than five minutes away from your clock."
)


def _context():
    return current_app.extensions["hirfa"]


def _problem(status: int, description: str):
    """Document an error answer (problem+json) of an operation."""
    return blp.alt_response(
        status, schema=ProblemApi.ERROR_SCHEMA, content_type=PROBLEM_CONTENT_TYPE, description=description
    )


def _with_signing_secret(view: Callable[..., Response]) -> Callable[..., Response]:
    """Add the new endpoint's secret to the creation answer on its way out, after ``@idempotent`` has
    saved the answer without it: a replay shows it again (opened from the endpoint's sealed copy), and
    the saved answers never hold a secret in clear."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        response = view(*args, **kwargs)
        if response.status_code != 201:
            return response
        body = response.get_json()
        secret = g.pop("webhook_secret", None)
        if secret is None:  # replayed: the view did not run
            context = _context()
            secret = webhooks.reveal_signing_secret(
                context.uow_factory(), body["id"], current_principal(), webhooks.webhook_settings(context)
            )
        response.set_data(current_app.json.dumps({**body, "secret": secret}))
        return response

    return wrapper


# -- schemas -----------------------------------------------------------------------------------------


class WebhookEndpointCreateSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "description": "Absolute http(s) URL (https in production) we POST events to.",
            "example": "https://shop.example.ma/hirfa/webhooks",
        },
    )
    event_types = fields.List(
        fields.String(validate=validate.Length(min=1, max=60)),
        required=True,
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENT_TYPES) + 1),
        metadata={"description": f'The events to send: any of {EVENT_TYPES_DOC}; or ["*"] for all of them.'},
    )
    description = fields.String(load_default=None, validate=validate.Length(max=200))


class WebhookEndpointSchema(Schema):
    id = fields.String(required=True, metadata={"example": "we_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("webhook_endpoint")
    url = fields.String()
    description = fields.String(allow_none=True)
    event_types = fields.List(
        fields.String(), metadata={"description": f'["{ALL_EVENT_TYPES}"] means every type.'}
    )
    status = fields.String(metadata={"description": "enabled, or disabled once deleted."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    disabled_at = fields.DateTime(allow_none=True)


class WebhookEndpointCreatedSchema(WebhookEndpointSchema):
    secret = fields.String(
        required=True,
        metadata={
            "description": "The signing secret (`whsec_…`). Shown in this answer only: store it now.",
            "example": "whsec_5f1c…",
        },
    )


WebhookEndpointPageSchema = page_schema(WebhookEndpointSchema)


class WebhookEndpointListArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default=str(EndpointStatus.ENABLED),
        validate=validate.OneOf([str(status) for status in EndpointStatus]),
        metadata={"description": "enabled (default), or disabled for deleted endpoints."},
    )


class WebhookDeliverySchema(Schema):
    id = fields.String(required=True, metadata={"example": "whd_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("webhook_delivery")
    endpoint_id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    status = fields.String(
        metadata={
            "description": "pending (another attempt is scheduled), delivered (a 2xx), failed (no 2xx "
            "within the retry period), canceled (the endpoint was deleted)."
        }
    )
    attempt_count = fields.Integer()
    last_status_code = fields.Integer(allow_none=True, metadata={"description": "Your answer's HTTP status."})
    last_error = fields.String(
        allow_none=True,
        metadata={
            "description": "When there was no answer: timeout, connection_refused, connection_error, "
            "dns_error, tls_error, address_not_allowed."
        },
    )
    last_attempt_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class WebhookAttemptSchema(Schema):
    number = fields.Integer()
    trigger = fields.String(metadata={"description": "automatic, or manual (a retry you asked for)."})
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()
    attempted_at = fields.DateTime()


class WebhookDeliveryDetailSchema(WebhookDeliverySchema):
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), metadata={"description": "Oldest first."})


WebhookDeliveryPageSchema = page_schema(WebhookDeliverySchema)


class WebhookDeliveryListArgsSchema(PageArgsSchema):
    endpoint_id = fields.String(validate=validate.Length(min=1, max=40))
    event_type = fields.String(validate=validate.OneOf(WEBHOOK_EVENT_TYPES))
    event_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in DeliveryStatus]))


# -- endpoints ---------------------------------------------------------------------------------------


@blp.route("/webhook-endpoints")
class WebhookEndpoints(MethodView):
    @require_scopes(SCOPE)
    @_with_signing_secret
    @idempotent
    @blp.arguments(WebhookEndpointCreateSchema)
    @blp.response(201, WebhookEndpointCreatedSchema)
    @_problem(
        422,
        "validation_error, invalid_webhook_url, insecure_webhook_url, or unknown_event_types "
        "(with `unknown_event_types` listing them).",
    )
    @_problem(409, "too_many_webhook_endpoints, or idempotency_key_reuse.")
    @blp.doc(parameters=[IDEMPOTENCY_HEADER_DOC], description=SIGNATURE_DOC)
    def post(self, body):
        """Add a URL to send events to. The answer holds the signing secret, shown this once only."""
        context = _context()
        created = webhooks.create_webhook_endpoint(
            context.uow_factory(),
            webhooks.CreateWebhookEndpoint(**body),
            current_principal(),
            webhooks.webhook_settings(context),
        )
        g.webhook_secret = created.secret  # added by _with_signing_secret, after the answer is saved
        endpoint = created.endpoint
        return endpoint, 201, {"Location": f"/v1/webhook-endpoints/{endpoint.id}"}

    @require_scopes(SCOPE)
    @blp.arguments(WebhookEndpointListArgsSchema, location="query")
    @blp.response(200, WebhookEndpointPageSchema)
    def get(self, args):
        """Your webhook endpoints, oldest first (never their secrets)."""
        return webhooks.list_webhook_endpoints(_context().uow_factory(), current_principal(), **args)


@blp.route("/webhook-endpoints/<string:endpoint_id>")
class WebhookEndpointById(MethodView):
    @require_scopes(SCOPE)
    @blp.response(200, WebhookEndpointSchema)
    @_problem(404, "resource_not_found: no such endpoint of yours.")
    def get(self, endpoint_id):
        """One of your webhook endpoints (without its secret)."""
        return webhooks.get_webhook_endpoint(_context().uow_factory(), endpoint_id, current_principal())

    @require_scopes(SCOPE)
    @blp.response(200, WebhookEndpointSchema)
    @_problem(404, "resource_not_found: no such endpoint of yours.")
    def delete(self, endpoint_id):
        """Stop sending to this endpoint. Its pending deliveries are canceled; its history stays readable."""
        return webhooks.disable_webhook_endpoint(_context().uow_factory(), endpoint_id, current_principal())


# -- deliveries --------------------------------------------------------------------------------------


@blp.route("/webhook-deliveries")
class WebhookDeliveries(MethodView):
    @require_scopes(SCOPE)
    @blp.arguments(WebhookDeliveryListArgsSchema, location="query")
    @blp.response(200, WebhookDeliveryPageSchema)
    @_problem(404, "resource_not_found: `endpoint_id` is not one of your endpoints.")
    def get(self, args):
        """Deliveries of events to your endpoints, oldest first."""
        return webhooks.list_webhook_deliveries(_context().uow_factory(), current_principal(), **args)


@blp.route("/webhook-deliveries/<string:delivery_id>")
class WebhookDeliveryById(MethodView):
    @require_scopes(SCOPE)
    @blp.response(200, WebhookDeliveryDetailSchema)
    @_problem(404, "resource_not_found: no such delivery of yours.")
    def get(self, delivery_id):
        """One delivery with each of its attempts."""
        return webhooks.get_webhook_delivery(_context().uow_factory(), delivery_id, current_principal())


@blp.route("/webhook-deliveries/<string:delivery_id>/retry")
class WebhookDeliveryRetry(MethodView):
    @require_scopes(SCOPE)
    @idempotent
    @blp.response(200, WebhookDeliveryDetailSchema)
    @_problem(404, "resource_not_found: no such delivery of yours.")
    @_problem(
        409,
        "webhook_endpoint_disabled, webhook_delivery_in_progress (see Retry-After), or "
        "idempotency_key_reuse.",
    )
    @blp.doc(parameters=[IDEMPOTENCY_HEADER_DOC])
    def post(self, delivery_id):
        """Send this delivery again now (also a delivered or failed one) and answer it with the attempt.

        A successful attempt makes the delivery delivered; a failed one leaves its status and schedule
        as they were."""
        context = _context()
        return webhooks.retry_webhook_delivery(
            context.uow_factory(), delivery_id, current_principal(), webhooks.webhook_settings(context)
        )
