"""Marketplace webhooks: the endpoints a marketplace is told of changes at, and the deliveries made."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint

from services.payments import problems as codes
from services.payments.api.context import service_context, unit_of_work
from services.payments.api.schemas import (
    WebhookDeliveryDetailSchema,
    WebhookDeliveryListArgsSchema,
    WebhookDeliveryPageSchema,
    WebhookEndpointCreatedSchema,
    WebhookEndpointCreateSchema,
    WebhookEndpointListArgsSchema,
    WebhookEndpointPageSchema,
    WebhookEndpointSchema,
)
from services.payments.service_layer import webhook_deliveries, webhook_endpoints
from shared.auth.flask import current_principal, require_scopes
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import RESOURCE_NOT_FOUND, ROLE_NOT_ALLOWED

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1",
    description="Webhooks: signed notifications of your payments, refunds and disputes, POSTed to your URLs.",
)

SCOPE = "webhooks:manage"
SIGNATURE_DOC = (
    "The answer holds the signing secret, shown this once only. Events are POSTed as JSON "
    '`{id, type, created, sequence, data: {object}}`; each request carries `Hirfa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`, '
    "`Hirfa-Event-Id` and `Hirfa-Delivery-Id`. Verify the signature over the raw body before parsing it, "
    "and refuse a `t` more than five minutes away from your clock."
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
            secret = webhook_endpoints.reveal_signing_secret(
                unit_of_work(), body["id"], current_principal(), service_context().webhooks
            )
        response.set_data(current_app.json.dumps({**body, "secret": secret}))
        return response

    return wrapper


# -- endpoints ---------------------------------------------------------------------------------------


@blp.route("/webhook-endpoints")
class WebhookEndpoints(MethodView):
    @require_scopes(SCOPE)
    @_with_signing_secret
    @idempotent
    @blp.arguments(WebhookEndpointCreateSchema)
    @blp.response(201, WebhookEndpointCreatedSchema)
    @problems(
        ROLE_NOT_ALLOWED,
        codes.INVALID_WEBHOOK_URL,
        codes.INSECURE_WEBHOOK_URL,
        codes.WEBHOOK_URL_NOT_PUBLIC,
        codes.UNKNOWN_EVENT_TYPES,
        codes.TOO_MANY_WEBHOOK_ENDPOINTS,
    )
    @blp.doc(description=SIGNATURE_DOC)
    def post(self, body):
        """Add a URL to send events to. The answer holds the signing secret, shown this once only."""
        created = webhook_endpoints.create_webhook_endpoint(
            unit_of_work(),
            webhook_endpoints.CreateWebhookEndpoint(**body),
            current_principal(),
            service_context().webhooks,
        )
        g.webhook_secret = created.secret  # added by _with_signing_secret, after the answer is saved
        endpoint = created.endpoint
        return endpoint, 201, {"Location": f"/v1/webhook-endpoints/{endpoint.id}"}

    @require_scopes(SCOPE)
    @blp.arguments(WebhookEndpointListArgsSchema, location="query")
    @blp.response(200, WebhookEndpointPageSchema)
    @problems(ROLE_NOT_ALLOWED)
    def get(self, args):
        """Your webhook endpoints, oldest first.

        Each with its URL, the event types it receives and its status; never its signing secret,
        which only the creation answer shows."""
        return webhook_endpoints.list_webhook_endpoints(unit_of_work(), current_principal(), **args)


@blp.route("/webhook-endpoints/<string:endpoint_id>")
class WebhookEndpointById(MethodView):
    @require_scopes(SCOPE)
    @blp.response(200, WebhookEndpointSchema)
    @problems(ROLE_NOT_ALLOWED)
    def get(self, endpoint_id):
        """One of your webhook endpoints.

        Without its signing secret. Another marketplace's endpoint is 404."""
        return webhook_endpoints.get_webhook_endpoint(unit_of_work(), endpoint_id, current_principal())

    @require_scopes(SCOPE)
    @blp.response(200, WebhookEndpointSchema)
    @problems(ROLE_NOT_ALLOWED)
    def delete(self, endpoint_id):
        """Stop sending to this endpoint.

        Its pending deliveries are canceled; its history stays readable. Answers the endpoint,
        now disabled."""
        return webhook_endpoints.disable_webhook_endpoint(unit_of_work(), endpoint_id, current_principal())


# -- deliveries --------------------------------------------------------------------------------------


@blp.route("/webhook-deliveries")
class WebhookDeliveries(MethodView):
    @require_scopes(SCOPE)
    @blp.arguments(WebhookDeliveryListArgsSchema, location="query")
    @blp.response(200, WebhookDeliveryPageSchema)
    @problems(ROLE_NOT_ALLOWED, RESOURCE_NOT_FOUND)
    def get(self, args):
        """Deliveries of events to your endpoints, oldest first.

        Optionally of one endpoint (404 when ``endpoint_id`` is not one of yours), one event, one
        event type or one status."""
        return webhook_deliveries.list_webhook_deliveries(unit_of_work(), current_principal(), **args)


@blp.route("/webhook-deliveries/<string:delivery_id>")
class WebhookDeliveryById(MethodView):
    @require_scopes(SCOPE)
    @blp.response(200, WebhookDeliveryDetailSchema)
    @problems(ROLE_NOT_ALLOWED)
    def get(self, delivery_id):
        """One delivery with each of its attempts.

        Each attempt's time, the status your endpoint answered (or the network error) and how long
        it took; the next attempt's time while it is retrying."""
        return webhook_deliveries.get_webhook_delivery(unit_of_work(), delivery_id, current_principal())


@blp.route("/webhook-deliveries/<string:delivery_id>/retry")
class WebhookDeliveryRetry(MethodView):
    @require_scopes(SCOPE)
    @idempotent
    @blp.response(200, WebhookDeliveryDetailSchema)
    @problems(ROLE_NOT_ALLOWED, codes.WEBHOOK_ENDPOINT_DISABLED, codes.WEBHOOK_DELIVERY_IN_PROGRESS)
    def post(self, delivery_id):
        """Send this delivery again now (also a delivered or failed one) and answer it with the attempt.

        A successful attempt makes the delivery delivered; a failed one leaves its status and schedule
        as they were."""
        return webhook_deliveries.retry_webhook_delivery(
            unit_of_work(), delivery_id, current_principal(), service_context().webhooks
        )
