"""Staff sign in with email, password and a TOTP code; enrol their authenticator first."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ConfirmStaffEnrolmentSchema,
    StaffEnrolmentSchema,
    StaffEnrolmentSecretSchema,
    StaffSignInSchema,
    StaffTokenSchema,
)
from services.onboarding.service_layer import staff
from shared.http_clients import client_address

blp = Blueprint(
    "staff",
    __name__,
    url_prefix="/v1",
    description="Compliance officers and operators sign in: password, then a TOTP code.",
)
# Every answer here may carry a token or a secret (a refusal too: an enrolment token), so none is
# kept by a cache.
NO_STORE = {"Cache-Control": "no-store"}


@blp.after_request
def _never_stored(response):
    response.headers.update(NO_STORE)
    return response


@blp.route("/staff-sessions")
class StaffSessions(MethodView):
    @blp.arguments(StaffSignInSchema)
    @blp.response(200, StaffTokenSchema)
    @blp.doc(security=[])
    def post(self, body):
        """Sign in: a 15-minute access token (role ``staff``, ``sub`` the person, the scopes of
        their roles). A wrong email, password or code answers 401 ``invalid_credentials``, all
        alike; too many failures 429 ``sign_in_locked`` (Retry-After); a correct password
        without an enrolled authenticator 403 ``totp_enrolment_required`` with an
        ``enrolment_token``."""
        context = service_context()
        tokens = staff.sign_in(
            context.uow_factory(),
            body["email"],
            body["password"],
            body["totp_code"],
            policy=context.staff,
            client_ip=client_address(context.config.trust_forwarded_for),
        )
        return tokens, 200, NO_STORE


@blp.route("/staff-enrolments")
class StaffEnrolments(MethodView):
    @blp.arguments(StaffEnrolmentSchema)
    @blp.response(200, StaffEnrolmentSecretSchema)
    @blp.doc(security=[])
    def post(self, body):
        """A new TOTP secret for the holder of the enrolment token, to show as a QR code (asking
        again replaces it). It is the second factor once a code from it is confirmed."""
        context = service_context()
        secret = staff.start_enrolment(context.uow_factory(), body["enrolment_token"], policy=context.staff)
        return secret, 200, NO_STORE


@blp.route("/staff-enrolments/confirm")
class ConfirmStaffEnrolment(MethodView):
    @blp.arguments(ConfirmStaffEnrolmentSchema)
    @blp.response(204)
    @blp.doc(security=[])
    def post(self, body):
        """Confirm the authenticator with a code it shows; then sign in as usual. A code that
        does not match answers 422 ``totp_code_incorrect``."""
        context = service_context()
        staff.confirm_enrolment(
            context.uow_factory(), body["enrolment_token"], body["totp_code"], policy=context.staff
        )
        return None, 204, NO_STORE
