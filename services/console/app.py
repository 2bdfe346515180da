"""The console's web app: server-rendered pages over the three services' public APIs."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, render_template, session
from flask_babel import Babel
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from services.console.bootstrap import bootstrap
from services.console.config import LANGUAGES, ConsoleConfig
from services.console.web import (
    auth,
    dashboard,
    formatting,
    ledger,
    payments,
    people,
    reconciliation,
    reviews,
)
from services.console.web.security import protect
from services.console.web.sessions import EncryptedCookieSessionInterface
from shared.logging import configure_logging

RIGHT_TO_LEFT = frozenset({"ar"})


class ResourceId(BaseConverter):
    """A Hirfa id (``rev_…``, ``art_…``): nothing else reaches a service's URL, so a crafted path
    (``..``, an encoded slash) cannot point the console's call at another endpoint."""

    regex = r"[A-Za-z0-9_]{1,64}"


def create_app(config: ConsoleConfig | None = None, **adapters: Any) -> Flask:
    """The app; ``adapters`` (``apis=``, ``staff_auth=``) replace the configured ones, as in tests."""
    context = bootstrap(config, **adapters)
    config = context.config
    configure_logging("console", config.log_level, config.log_json)
    app = Flask(__name__)
    app.url_map.converters["id"] = ResourceId
    app.extensions["console"] = context
    app.config.update(
        SESSION_COOKIE_NAME=config.session_cookie_name,
        SESSION_COOKIE_SECURE=config.secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        IDLE_TIMEOUT_SECONDS=config.idle_timeout_seconds,
        MAX_CONTENT_LENGTH=64 * 1024,
        BABEL_DEFAULT_LOCALE=config.default_language,
    )
    app.session_interface = EncryptedCookieSessionInterface(config.secret_key)
    Babel(app, locale_selector=_language)
    protect(app)
    formatting.register(app)
    for blueprint in (
        auth.blp,
        dashboard.blp,
        reviews.blp,
        people.blp,
        payments.blp,
        ledger.blp,
        reconciliation.blp,
    ):
        app.register_blueprint(blueprint)

    @app.context_processor
    def page_globals() -> dict[str, Any]:
        lang = _language()
        return {
            "lang": lang,
            "direction": "rtl" if lang in RIGHT_TO_LEFT else "ltr",
            "languages": LANGUAGES,
            "staff": g.get("staff"),
        }

    # No database, no broker: alive is ready (a service that does not answer shows on its page).
    @app.get("/healthz")
    @app.get("/readyz")
    def healthz() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Content-Type": "text/plain"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        status = error.code or 500
        return render_template("error.html", status=status, reason=error.description), status

    return app


def _language() -> str:
    """The language the person picked with the switcher, else the console's default (French). The
    browser's Accept-Language is not asked: the back office works in French unless one chooses
    otherwise, whatever language the machine it runs on was set up in."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return str(current_app.extensions["console"].config.default_language)
