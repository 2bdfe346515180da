"""Signing in (email, password, TOTP code), enrolling the second factor, signing out, language."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError
from services.console.adapters.staff_auth import EnrolmentRequired
from services.console.config import LANGUAGES
from services.console.web.formatting import context
from services.console.web.security import current_staff, sign_in_person, sign_out_person

blp = Blueprint("auth", __name__)

NOTICES = {
    "session_expired": lambda: _("Your session ended after a period of inactivity. Please sign in again."),
    "signed_out": lambda: _("You are signed out."),
    "token_expired": lambda: _("Your sign-in has expired. Please sign in again."),
    "enrolled": lambda: _("Your authenticator app is set up. Sign in with a code from it."),
}


def _safe_next(target: str | None) -> str:
    """Only a path on this console: never another site (an open redirect, which browsers also
    read into ``/\t/host``), and nothing a header cannot carry (control characters)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("dashboard.home")


@blp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    if current_staff() is not None and request.method == "GET":
        return redirect(url_for("dashboard.home"))
    notice = NOTICES.get(session.pop("notice", ""), lambda: None)()
    error = None
    email = request.form.get("email", "").strip()
    if request.method == "POST":
        try:
            signed_in = context().staff_auth.sign_in(
                email, request.form.get("password", ""), request.form.get("totp_code", "").strip()
            )
        except EnrolmentRequired as needed:
            session.pop("enrolment", None)
            session["enrolment_token"] = needed.enrolment_token
            return redirect(url_for("auth.enrol"))
        except ApiError as refused:
            if refused.code == "sign_in_locked":
                error = _("Too many failed attempts: sign-in is locked for a while.")
            elif refused.status == 0 or refused.status >= 500:
                error = _("The sign-in service is not answering. Try again in a moment.")
            else:
                error = _("Email, password or code is incorrect.")
        else:
            sign_in_person(
                signed_in.access_token,
                signed_in.expires_in,
                signed_in.staff,
                session.get("lang"),
                signed_in.refresh_token,
            )
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("sign_in.html", notice=notice, error=error, email=email), status


@blp.route("/enrol", methods=["GET", "POST"])
def enrol() -> Any:
    enrolment_token = session.get("enrolment_token")
    if not enrolment_token:
        return redirect(url_for("auth.sign_in"))
    staff_auth = context().staff_auth
    error = None
    if request.method == "POST":
        try:
            staff_auth.confirm_enrolment(enrolment_token, request.form.get("totp_code", "").strip())
        except ApiError as refused:
            if refused.status == 401:  # the enrolment token expired: start over from sign-in
                return _restart_sign_in()
            error = _("That code did not match. Scan the code again and enter the current six digits.")
        else:
            for key in ("enrolment_token", "enrolment"):
                session.pop(key, None)
            session["notice"] = "enrolled"
            return redirect(url_for("auth.sign_in"))
    # Asked for once per enrolment and kept in the sealed session until confirmed: asking again
    # would replace the secret the person may already have scanned.
    enrolment = session.get("enrolment")
    if not enrolment:
        try:
            started = staff_auth.start_enrolment(enrolment_token)
        except ApiError:
            return _restart_sign_in()
        enrolment = session["enrolment"] = {"uri": started.otpauth_uri, "secret": started.secret}
    return render_template(
        "enrol.html", qr_svg=qr_svg(enrolment["uri"]), secret=enrolment["secret"], error=error
    ), (422 if error else 200)


def _restart_sign_in() -> Any:
    for key in ("enrolment_token", "enrolment"):
        session.pop(key, None)
    session["notice"] = "session_expired"
    return redirect(url_for("auth.sign_in"))


def qr_svg(text: str) -> str:
    """The QR code as inline SVG, drawn here: the secret never goes to a third-party service."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg") :]


@blp.post("/sign-out")
def sign_out() -> Any:
    sign_out_person("signed_out")
    return redirect(url_for("auth.sign_in"))


@blp.post("/language")
def language() -> Any:
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")))
