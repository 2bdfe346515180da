"""Who may see what, and the browser-side guards every page gets.

- the signed-in person (``current_staff``), their token, and the inactivity timeout. The staff
  access token lasts 15 minutes; while the person is active, the console renews it before it
  lapses with the session's refresh token (each renewal gives the next), so a form posted just
  after the old token's expiry goes through with a new one. Only activity renews: after
  ``CONSOLE_IDLE_TIMEOUT_SECONDS`` without a request the session ends, and so does the staff
  session at onboarding. Signing out never renews: it revokes what it holds (best effort) and
  clears the cookie, whether onboarding answers or not;
- renewal happens only on what the browser is sure to keep the answer of: a page navigation
  (``Sec-Fetch-Dest: document``) or a form post. A renewal spends the refresh token and the new
  one rides back in the answer's cookie; were it the answer to an image, a framed document or a
  prefetch, the browser could drop it (the person scrolled or clicked on), keep the spent token,
  and the next renewal would look like a stolen token being replayed (onboarding then revokes the
  whole session). Such requests use the token while it lasts; after that they get a 401 and the
  next page renews;
- a CSRF token on every form, checked on every POST (a refusal is a 403 page);
- a strict Content-Security-Policy (self only, no inline script) and no caching of pages that
  carry personal data.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, redirect, request, session, url_for

from services.console.adapters.hirfa_api import ApiError
from services.console.adapters.staff_auth import StaffAuth, StaffMember

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "frame-src 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)

TOKEN_MARGIN_SECONDS = 15
# Renewed this long before the margin above: the page's own requests (documents, the next click)
# still carry a token with time left, and concurrent renewals are rare.
RENEW_AHEAD_SECONDS = 45

# What a KYC document (an image or a PDF, opened in the page or alone) may do: show itself.
DOCUMENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; object-src 'self'; frame-ancestors 'self'"

# Pages anyone may reach: signing in, enrolling the second factor, the static files, health.
PUBLIC_ENDPOINTS = frozenset({"auth.sign_in", "auth.enrol", "auth.language", "static", "healthz"})
SIGN_OUT_ENDPOINT = "auth.sign_out"
# Answers a page embeds (a KYC document in an <img> or a frame): asked for without Sec-Fetch-Dest
# (a browser that does not send it), one never renews the token.
EMBEDDED_ENDPOINTS = frozenset({"reviews.document"})


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def form_key(sent: str, refused: ApiError, suffix: str = "") -> str:
    """The Idempotency-Key the form shown again after ``refused`` carries: the one just sent when
    the outcome is unknown (a timeout, a 5xx: submitting again must not apply it twice), else a
    fresh one (the service keeps its refusal under the sent key). ``suffix``: what the template
    appends to the key per action."""
    if refused.outcome_unknown and sent:
        return sent.removesuffix(suffix) if suffix else sent
    return str(uuid.uuid4())


def _check_csrf() -> None:
    if request.method != "POST":
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(403, description="csrf")


def _person(staff: StaffMember) -> dict[str, Any]:
    return {"id": staff.id, "name": staff.name, "email": staff.email, "roles": list(staff.roles)}


def _keep_tokens(access_token: str, expires_in: int, refresh_token: str) -> None:
    session["token"] = access_token
    session["refresh"] = refresh_token
    # A little before the token itself expires: a form is never sent with a token about to lapse.
    session["expires"] = time.time() + max(0, expires_in - TOKEN_MARGIN_SECONDS)


def sign_in_person(
    access_token: str, expires_in: int, staff: StaffMember, lang: str | None, refresh_token: str = ""
) -> None:
    """A new session for a signed-in person: nothing from before sign-in survives but the language."""
    session.clear()
    if lang:
        session["lang"] = lang
    _keep_tokens(access_token, expires_in, refresh_token)
    session["staff"] = _person(staff)
    session["seen"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)


def _staff_auth() -> StaffAuth:
    return current_app.extensions["console"].staff_auth  # type: ignore[no-any-return]


def sign_out_person(reason: str | None = None) -> None:
    """End the session: at onboarding too (its refresh token revoked: best effort, it lapses
    within the hour anyway), then the cookie's. The language stays."""
    refresh_token = session.get("refresh")
    if refresh_token:
        try:
            _staff_auth().sign_out(str(refresh_token))
        except ApiError as error:
            log.warning("could not end the staff session at onboarding", extra={"code": error.code})
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    if reason:
        session["notice"] = reason


def _renew_token(now: float) -> bool:
    """Renew the staff token with the session's refresh token; whether the person is still signed
    in. Onboarding not answering: the old token serves while it lasts; after that the page says
    to try again, and the session (and whatever form was posted) is not thrown away."""
    refresh_token = session.get("refresh")
    if not refresh_token:
        if now <= float(session.get("expires", 0)):
            return True
        sign_out_person("token_expired")
        return False
    try:
        renewed = _staff_auth().refresh(str(refresh_token))
    except ApiError as error:
        if error.outcome_unknown:
            if now <= float(session.get("expires", 0)):
                return True
            abort(503, description="sign_in_unavailable")
        session.pop("refresh", None)  # refused: spent, revoked or lapsed, nothing to revoke
        sign_out_person("token_expired")
        return False
    _keep_tokens(renewed.access_token, renewed.expires_in, renewed.refresh_token)
    session["staff"] = _person(renewed.staff)  # the name and roles as they are now
    return True


def _answer_is_kept() -> bool:
    """Whether the browser is sure to keep this request's answer (and so the renewed token in its
    cookie): a form post, or a navigation to a page (a document opened in its own tab is one), not
    a prefetch of one."""
    if (
        request.headers.get("Sec-Purpose", "").startswith("prefetch")
        or request.headers.get("Purpose") == "prefetch"
    ):
        return False
    if request.method not in ("GET", "HEAD"):
        return True
    destination = request.headers.get("Sec-Fetch-Dest")
    if destination is None:
        # A browser that does not say (or a plain HTTP client): judged by what is asked for.
        return request.endpoint not in EMBEDDED_ENDPOINTS
    return destination == "document"


def current_staff() -> dict[str, Any] | None:
    return g.get("staff")


def staff_token() -> str:
    return str(session["token"])


def has_role(role: str) -> bool:
    staff = current_staff()
    return bool(staff and role in staff.get("roles", ()))


def _check_signed_in() -> Any:
    """Every page but the public ones needs a live session; an idle one ends here."""
    g.staff = None
    if request.endpoint == SIGN_OUT_ENDPOINT:
        return None  # signing out ends the session as it is: no renewal, no idle check first
    public = request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None
    # A stylesheet or the sign-in page calls no service, and an embedded answer may be dropped by
    # the browser: neither renews (the next page does).
    renews = not public and _answer_is_kept()
    if "token" in session:
        now = time.time()
        expires = float(session.get("expires", 0))
        if now - float(session.get("seen", 0)) > current_app.config["IDLE_TIMEOUT_SECONDS"]:
            sign_out_person("session_expired")
        elif (
            now <= expires - RENEW_AHEAD_SECONDS
            or (not renews and now <= expires)
            or (renews and _renew_token(now))
        ):
            g.staff = session["staff"]
            session["seen"] = now
        elif not public and not renews:
            # The token is spent and this answer may never reach the browser: no renewal here, and
            # the session stays as it is for the next page to renew.
            abort(401, description="renew_on_next_page")
    if public:
        return None
    if g.staff is None:
        return redirect(url_for("auth.sign_in", next=request.full_path if request.method == "GET" else None))
    return None


def requires_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The page is for people with ``role``; others get a 403 page (the APIs would refuse them too)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not has_role(role):
                abort(403, description="role")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def protect(app: Flask) -> None:
    app.before_request(_check_signed_in)
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["has_role"] = has_role

    @app.after_request
    def security_headers(response):  # type: ignore[no-untyped-def]
        # A view may set a narrower one (a document: Chromium's PDF viewer needs object-src).
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        # Every page carries personal data: nothing is kept by the browser or a proxy.
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response
