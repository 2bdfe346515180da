"""Artisans sign in with their phone (OTP by SMS), refresh and end their sessions, manage devices."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ArtisanTokensSchema,
    DeviceListSchema,
    LogoutSchema,
    RefreshSessionSchema,
    SignInSchema,
    StartSignInSchema,
    VerifySignInSchema,
)
from services.onboarding.service_layer import artisan_sessions
from shared.auth.flask import current_principal, require_any_scope
from shared.http_clients import client_address
from shared.openapi import problems

blp = Blueprint(
    "artisan_sessions",
    __name__,
    url_prefix="/v1",
    description="Artisans sign in with their phone: an SMS code, then an access and a refresh token.",
)
NO_STORE = {"Cache-Control": "no-store"}
DEVICE_READERS = ("self:read", artisan_sessions.DEVICE_SCOPE)
DEVICE_MANAGERS = ("self:write", artisan_sessions.DEVICE_SCOPE)


@blp.route("/artisan-sessions")
class ArtisanSessions(MethodView):
    @blp.arguments(StartSignInSchema)
    @blp.response(202, SignInSchema)
    @blp.doc(security=[])
    @problems(codes.INVALID_PHONE, codes.OTP_SEND_LIMIT, codes.SIGN_IN_IP_LIMIT, codes.SIGN_IN_LOCKED)
    def post(self, body):
        """Send a sign-in code by SMS to an artisan's phone.

        The answer is the same whether or not the number is registered (no code is sent to a number
        no active artisan holds). Limits: a few codes per number per hour, sign-ins per network per
        hour, and a lock after too many wrong codes (429 with Retry-After)."""
        context = service_context()
        return artisan_sessions.start_sign_in(
            context.uow_factory,
            body["phone"],
            client_ip=client_address(context.config.trust_forwarded_for),
            policy=context.sign_in,
            sms=context.sms,
        )


@blp.route("/artisan-sessions/<string:sign_in_id>/verify")
class VerifySignIn(MethodView):
    @blp.arguments(VerifySignInSchema)
    @blp.response(200, ArtisanTokensSchema)
    @blp.doc(security=[])
    @problems(
        codes.OTP_INCORRECT,
        codes.OTP_EXPIRED,
        codes.OTP_ATTEMPTS_EXCEEDED,
        codes.SIGN_IN_NOT_PENDING,
        codes.SIGN_IN_LOCKED,
    )
    def post(self, body, sign_in_id):
        """Exchange the SMS code for an access token and a refresh token.

        The access token lasts 15 minutes (role ``artisan``); the refresh token is bound to
        ``device_id``. A wrong code answers 422 ``otp_incorrect``."""
        context = service_context()
        tokens = artisan_sessions.verify_sign_in(
            context.uow_factory(), sign_in_id, body["code"], body["device_id"], policy=context.sign_in
        )
        return tokens, 200, NO_STORE


@blp.route("/artisan-sessions/refresh")
class RefreshSession(MethodView):
    @blp.arguments(RefreshSessionSchema)
    @blp.response(200, ArtisanTokensSchema)
    @blp.doc(security=[])
    @problems(
        codes.INVALID_REFRESH_TOKEN,
        codes.REFRESH_TOKEN_EXPIRED,
        codes.REFRESH_TOKEN_REVOKED,
        codes.REFRESH_TOKEN_REUSED,
    )
    def post(self, body):
        """A new access token and a new refresh token.

        The refresh token sent stops working. Presenting an already-used refresh token ends the
        whole session (401 ``refresh_token_reused``)."""
        context = service_context()
        tokens = artisan_sessions.refresh_session(
            context.uow_factory(), body["refresh_token"], body["device_id"], policy=context.sign_in
        )
        return tokens, 200, NO_STORE


@blp.route("/artisan-sessions/logout")
class Logout(MethodView):
    @blp.arguments(LogoutSchema)
    @blp.response(204)
    @blp.doc(security=[])
    def post(self, body):
        """Sign out: end the session the refresh token belongs to.

        Always 204, also for a token that is unknown or already ended, so the answer tells nothing
        about it."""
        artisan_sessions.log_out(service_context().uow_factory(), body["refresh_token"])


@blp.route("/artisans/<string:artisan_id>/devices")
class Devices(MethodView):
    @require_any_scope(*DEVICE_READERS)
    @blp.response(200, DeviceListSchema)
    def get(self, artisan_id):
        """The phones the artisan signed in from.

        For the artisan themself, or an operator helping them (a lost or stolen phone): each
        device's first and last sign-in, and whether it was revoked."""
        return {
            "data": artisan_sessions.list_devices(
                service_context().uow_factory(), artisan_id, current_principal()
            )
        }


@blp.route("/artisans/<string:artisan_id>/devices/<string:device_id>")
class DeviceById(MethodView):
    @require_any_scope(*DEVICE_MANAGERS)
    @blp.response(204)
    def delete(self, artisan_id, device_id):
        """Sign a device out.

        Its refresh tokens stop working at once; its access token expires within 15 minutes."""
        artisan_sessions.revoke_device(
            service_context().uow_factory(), artisan_id, device_id, current_principal()
        )
