"""The artisan's notification inbox, and the SMS provider's delivery receipts."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    CallbackAckSchema,
    NotificationListArgsSchema,
    NotificationPageSchema,
    NotificationSchema,
)
from services.onboarding.service_layer import notifications
from shared.auth.flask import current_principal, require_scopes
from shared.auth.scopes import Role
from shared.errors import Forbidden
from shared.i18n import Message
from shared.openapi import problems
from shared.problem_codes import INVALID_SIGNATURE

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/v1",
    description="Notifications to artisans (inbox, SMS receipts).",
)


def _own_artisan_id() -> str:
    principal = current_principal()
    if principal.role != Role.ARTISAN:
        raise Forbidden(Message("Only an artisan reads their notifications."))
    return principal.client_id


@blp.route("/notifications")
class Notifications(MethodView):
    @require_scopes("self:read")
    @blp.arguments(NotificationListArgsSchema, location="query")
    @blp.response(200, NotificationPageSchema)
    def get(self, args):
        """The artisan's own notifications, newest first.

        What the artisan was told by SMS (money in, money out, KYC steps), in their language; cursor
        pages, ``?unread=true`` for unread ones. Artisan tokens only."""
        return notifications.list_notifications(service_context().uow_factory(), _own_artisan_id(), **args)


@blp.route("/notifications/<string:notification_id>/read")
class NotificationRead(MethodView):
    @require_scopes("self:read")
    @blp.response(200, NotificationSchema)
    def post(self, notification_id):
        """Mark one notification read.

        Safe to repeat: a notification read already stays as it was."""
        return notifications.mark_read(service_context().uow_factory(), _own_artisan_id(), notification_id)


@blp.route("/sms/receipts")
class SmsReceipts(MethodView):
    @blp.response(200, CallbackAckSchema)
    @blp.doc(security=[])
    @problems(INVALID_SIGNATURE, codes.SMS_MESSAGE_UNKNOWN)
    def post(self):
        """The SMS provider's delivery receipt (delivered, failed).

        Signed by the provider: ``Sms-Signature: t=…,v1=HMAC-SHA256(secret, t.body)``, verified
        against the raw body. A duplicate changes nothing."""
        context = service_context()
        return notifications.handle_receipt(
            context.uow_factory(), context.sms, request.headers, request.get_data()
        )
