"""Who may see what, and the browser-side guards every page gets.

- the signed-in person (``current_staff``), their token, and the inactivity timeout;
- a CSRF token on every form, checked on every POST (a refusal is a 403 page);
- a strict Content-Security-Policy (self only, no inline script) and no caching of pages that
  carry personal data.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, redirect, request, session, url_for

from services.console.adapters.hirfa_api import ApiError

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

# What a KYC document (an image or a PDF, opened in the page or alone) may do: show itself.
DOCUMENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; object-src 'self'; frame-ancestors 'self'"

# Pages anyone may reach: signing in, enrolling the second factor, the static files, health.
PUBLIC_ENDPOINTS = frozenset({"auth.sign_in", "auth.enrol", "auth.language", "static", "healthz"})


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


def sign_in_person(access_token: str, expires_in: int, staff: dict[str, Any], lang: str | None) -> None:
    """A new session for a signed-in person: nothing from before sign-in survives but the language."""
    session.clear()
    if lang:
        session["lang"] = lang
    session["token"] = access_token
    session["staff"] = staff
    session["seen"] = time.time()
    # A little before the token itself expires: a form is never sent with a token about to lapse.
    session["expires"] = time.time() + max(0, expires_in - TOKEN_MARGIN_SECONDS)
    session["csrf"] = secrets.token_urlsafe(32)


def sign_out_person(reason: str | None = None) -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    if reason:
        session["notice"] = reason


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
    if "token" in session:
        now = time.time()
        if now - float(session.get("seen", 0)) > current_app.config["IDLE_TIMEOUT_SECONDS"]:
            sign_out_person("session_expired")
        elif now > float(session.get("expires", 0)):
            sign_out_person("token_expired")
        else:
            g.staff = session["staff"]
            session["seen"] = time.time()
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
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
