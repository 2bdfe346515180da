"""Staff sign in with email, password and a TOTP code (enrolling their authenticator first), stay
signed in with a refresh token, sign out; staff look each other up by id."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ConfirmStaffEnrolmentSchema,
    StaffCardSchema,
    StaffEnrolmentSchema,
    StaffEnrolmentSecretSchema,
    StaffRefreshSchema,
    StaffSignInSchema,
    StaffTokenSchema,
)
from services.onboarding.service_layer import staff
from shared.auth.flask import current_principal, require_scopes
from shared.http_clients import client_address
from shared.openapi import problems
from shared.problem_codes import ROLE_NOT_ALLOWED

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
    @problems(codes.INVALID_CREDENTIALS, codes.SIGN_IN_LOCKED, codes.TOTP_ENROLMENT_REQUIRED)
    def post(self, body):
        """Sign in with email, password and a TOTP code.

        Answers a 15-minute access token (role ``staff``, ``sub`` the person, the scopes of their
        roles) and a refresh token for the session. A wrong email, password or code answers 401
        ``invalid_credentials``, all alike; too many failures 429 ``sign_in_locked``
        (Retry-After); a correct password without an enrolled authenticator 403
        ``totp_enrolment_required`` with an ``enrolment_token``."""
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


@blp.route("/staff-sessions/refresh")
class RefreshStaffSession(MethodView):
    @blp.arguments(StaffRefreshSchema)
    @blp.response(200, StaffTokenSchema)
    @blp.doc(security=[])
    @problems(
        codes.INVALID_REFRESH_TOKEN,
        codes.REFRESH_TOKEN_EXPIRED,
        codes.REFRESH_TOKEN_REVOKED,
        codes.REFRESH_TOKEN_REUSED,
    )
    def post(self, body):
        """Stay signed in: a new access token and a new refresh token.

        The access token carries the person's current name and roles; the refresh token sent is
        spent. 401 ``invalid_refresh_token`` (unknown),
        ``refresh_token_expired`` (unused too long, or the session's day is over: sign in again),
        ``refresh_token_revoked`` (signed out, disabled), ``refresh_token_reused`` (a spent token
        sent again: the session is revoked)."""
        context = service_context()
        tokens = staff.refresh_session(context.uow_factory(), body["refresh_token"], policy=context.staff)
        return tokens, 200, NO_STORE


@blp.route("/staff-sessions/logout")
class EndStaffSession(MethodView):
    @blp.arguments(StaffRefreshSchema)
    @blp.response(204)
    @blp.doc(security=[])
    def post(self, body):
        """Sign out: the session's refresh tokens are revoked.

        Its access token lives out its minutes. An unknown or ended session answers 204 too."""
        staff.end_session(service_context().uow_factory(), body["refresh_token"])
        return None, 204, NO_STORE


@blp.route("/staff/<string:staff_id>")
class StaffCard(MethodView):
    @require_scopes()
    @blp.response(200, StaffCardSchema)
    @problems(ROLE_NOT_ALLOWED)
    def get(self, staff_id):
        """Another staff member's name and roles.

        For staff reading audit trails, which name people by ``stf_…`` id. Staff tokens only
        (``role_not_allowed`` for any other)."""
        return staff.staff_card(service_context().uow_factory(), staff_id, current_principal())


@blp.route("/staff-enrolments")
class StaffEnrolments(MethodView):
    @blp.arguments(StaffEnrolmentSchema)
    @blp.response(200, StaffEnrolmentSecretSchema)
    @blp.doc(security=[])
    @problems(codes.INVALID_ENROLMENT_TOKEN)
    def post(self, body):
        """Start enrolling an authenticator: a new TOTP secret.

        For the holder of the enrolment token, to show as a QR code (asking again replaces it). It
        is the second factor once a code from it is confirmed."""
        context = service_context()
        secret = staff.start_enrolment(context.uow_factory(), body["enrolment_token"], policy=context.staff)
        return secret, 200, NO_STORE


@blp.route("/staff-enrolments/confirm")
class ConfirmStaffEnrolment(MethodView):
    @blp.arguments(ConfirmStaffEnrolmentSchema)
    @blp.response(204)
    @blp.doc(security=[])
    @problems(codes.INVALID_ENROLMENT_TOKEN, codes.ENROLMENT_NOT_STARTED, codes.TOTP_CODE_INCORRECT)
    def post(self, body):
        """Confirm the authenticator with a code it shows.

        Then sign in as usual. A code that does not match answers 422 ``totp_code_incorrect``."""
        context = service_context()
        staff.confirm_enrolment(
            context.uow_factory(), body["enrolment_token"], body["totp_code"], policy=context.staff
        )
        return None, 204, NO_STORE
