"""What every service's ``create_app`` shares: request ids, logging, traces, problem+json errors,
the content-type and JSON guards, health/readiness/metrics endpoints, and OpenAPI docs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import types
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin

import flask_smorest
import orjson
import sqlalchemy.exc as sa_exc
import swagger_ui_bundle
from flask import Flask, Response, current_app, g, has_request_context, jsonify, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from werkzeug.exceptions import HTTPException

from shared import tracing
from shared.auth.principal import Principal
from shared.auth.scopes import Role
from shared.config import prometheus_multiprocess_directory
from shared.context import ServiceContext
from shared.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    DatabaseUnavailable,
    HirfaError,
    MalformedRequest,
    RequestTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    http_status_error,
)
from shared.i18n import DEFAULT_LANGUAGE, negotiate, normalize_language
from shared.ids import new_id
from shared.localized_errors import localize_problem
from shared.logging import configure_logging, request_id_var
from shared.openapi import OperationDocs, ProblemSchema, security_schemes
from shared.probes import OutboxCollector, infrastructure_checks, readiness

log = logging.getLogger(__name__)

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
DEFAULT_MAX_BODY_BYTES = 1 * 1024 * 1024
# Multipart boundaries and part headers around an uploaded file.
UPLOAD_FRAMING_BYTES = 64 * 1024
# Asked every few seconds by the orchestrator and Prometheus: neither logged nor traced.
_PROBE_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# Onboarding's token endpoint, on the host that serves the signing keys (``jwks_url``).
TOKEN_PATH = "/v1/oauth/token"


# orjson writes what the standard library would (dates and dataclasses through Flask's own
# conversions), several times faster.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_COMPACT = (",", ":")


class StrictJSONProvider(DefaultJSONProvider):
    """Refuses NaN and Infinity, which Python's json accepts but JSON does not; answers are
    written by orjson.

    Bodies are read by the standard library: orjson would read an integer beyond 64 bits as a
    float, and an amount must stay the integer it was sent as (or be refused as one)."""

    sort_keys = False
    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.get("separators") != _COMPACT or set(kwargs) - {"separators"}:
            return super().dumps(obj, **kwargs)  # not a compact answer (indented in debug, say)
        return orjson.dumps(obj, default=self.default, option=_ORJSON_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        def refuse(constant: str) -> Any:
            raise ValueError(f"{constant} is not valid JSON")

        try:
            value = json.loads(s, parse_constant=refuse, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        _refuse_unstorable_strings(value)
        return value


def _refuse_unstorable_strings(value: Any) -> None:
    """No NUL (PostgreSQL text cannot hold it) and no lone surrogates (not UTF-8; RFC 7493)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("NUL characters are not allowed in JSON strings")
            item.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class ServiceFlask(Flask):
    """Flask, asking once per view or hook function whether it is a coroutine function.

    Flask asks ``ensure_sync`` of every hook and view it calls, for every request (nine times for
    a creating POST), and ``inspect.iscoroutinefunction`` unwraps each decorator layer to answer.
    The answer for a function never changes: it is kept by function (a bound method by its
    function, since views are bound to a new instance for each request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = func.__func__ if type(func) is types.MethodType else func
        if key in self._synchronous:
            return func
        synchronous = super().ensure_sync(func)
        if synchronous is func and type(key) is types.FunctionType:
            self._synchronous.add(key)
        return synchronous


class ProblemApi(flask_smorest.Api):  # type: ignore[misc]  # flask-smorest ships no type hints
    """flask-smorest whose errors are problem+json, documented as such (``shared.openapi``)."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return problem_response(_from_http_exception(error))


def _validation_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested messages into ``[{param, message}]``, one per bad field."""
    found: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for name, inner in messages.items():
            name = str(name)
            path = name if not prefix else f"{prefix}.{name}"
            if name == "_schema":
                path = prefix or "(body)"
            found.extend(_validation_errors(inner, path))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                found.extend(_validation_errors(item, prefix))
            else:
                found.append({"param": prefix or "(body)", "message": str(item)})
    else:
        found.append({"param": prefix or "(body)", "message": str(messages)})
    return found


def _from_http_exception(error: HTTPException) -> HirfaError:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if error.code == 422 and messages:
        # webargs groups by location (json, query, files…); the client cares about the field.
        errors: list[dict[str, str]] = []
        for location, fields_messages in messages.items():
            for item in _validation_errors(fields_messages):
                item["location"] = location
                errors.append(item)
        detail = "; ".join(f"{e['param']}: {e['message']}" for e in errors[:5])
        return ValidationFailed(detail, errors=errors, param=errors[0]["param"] if len(errors) == 1 else None)
    problem = http_status_error(error.code or 500)
    # Werkzeug's MethodNotAllowed lists the methods the URL does allow.
    valid_methods: Iterable[str] | None = getattr(error, "valid_methods", None)
    if valid_methods:
        problem.headers["Allow"] = ", ".join(valid_methods)
    return problem


def problem_response(error: HirfaError) -> Response:
    language = problem_language(error.status)
    body = localize_problem(error, error.to_problem(request_id=request_id_var.get()), language)
    response = Response(
        json.dumps(body, ensure_ascii=False), status=error.status, mimetype=PROBLEM_CONTENT_TYPE
    )
    for name, value in error.headers.items():
        response.headers[name] = value
    response.headers["Content-Language"] = language
    return response


# The extension a service sets to tell an artisan's preferred language: artisan id -> fr|ar|en|None.
ARTISAN_LANGUAGE_EXTENSION = "hirfa.artisan_language"


def problem_language(status: int | None = None) -> str:
    """The language of the problem being answered: ``Accept-Language`` (fr, ar, en) when it names
    one; else, for an artisan token, the artisan's preferred language (the service's own record,
    else the token's ``lang`` claim); else English.

    A problem of ours (``status`` 500 and above: the database unavailable, say) never asks the
    service's record: the token's claim does, so the answer does not wait on what is failing."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    asked = negotiate(request.headers.get("Accept-Language"))
    if asked:
        return asked
    principal = g.get("principal") or _principal_if_any()
    if principal is None or principal.role != Role.ARTISAN:
        return DEFAULT_LANGUAGE
    resolver = current_app.extensions.get(ARTISAN_LANGUAGE_EXTENSION)
    known = None
    if resolver is not None and (status is None or status < 500):
        try:
            known = resolver(principal.client_id)
        except Exception:  # noqa: BLE001 - the error being answered matters more than its language
            log.warning("artisan language unavailable")
    return normalize_language(known or principal.lang)


def _principal_if_any() -> Principal | None:
    """The caller's principal when the request failed before its view authenticated it (a
    validation error, say), read quietly: an invalid token just means no language from it."""
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None
    try:
        from shared.auth.flask import authenticate

        return authenticate()
    except Exception:  # noqa: BLE001 - any failure here leaves the default language
        return None


def _docs_html(title: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#ui"}});</script></body></html>"""


def create_service_app(
    context: ServiceContext,
    *,
    title: str,
    blueprints: Iterable[flask_smorest.Blueprint],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    form_endpoints: Iterable[str] = (),
    upload_endpoints: dict[str, int] | None = None,
    ready_checks: dict[str, Callable[[], bool]] | None = None,
    artisan_language: Callable[[str], str | None] | None = None,
    collectors: Iterable[Collector] = (),
) -> Flask:
    """Build a service's Flask app around its wired ``context``.

    ``form_endpoints`` take form-encoded bodies instead of JSON; ``upload_endpoints`` (endpoint →
    largest file in bytes) take multipart uploads above ``max_body_bytes``; ``ready_checks`` join
    the database and broker checks of ``/readyz``; ``artisan_language`` tells an artisan's
    preferred language (by artisan id), the default language of the problems they are shown;
    ``collectors``: the service's own Prometheus collectors, served on ``/metrics`` beside the
    shared ones.
    """
    config = context.config
    upload_limits = dict(upload_endpoints or {})
    configure_logging(config.service_name, config.log_level, config.log_json)
    tracing.configure_tracing(f"{config.service_name}-api", config)
    app = ServiceFlask(config.service_name)
    app.json = StrictJSONProvider(app)
    app.config.update(
        _api_settings(title, max_body_bytes, upload_limits, urljoin(config.jwks_url, TOKEN_PATH))
    )
    app.extensions["hirfa"] = context
    if artisan_language is not None:
        app.extensions[ARTISAN_LANGUAGE_EXTENSION] = artisan_language
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [OperationDocs(app)]})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    # Observation first: a request the guards refuse still has its request id, metric and log line.
    _observe_requests(app, context, collectors)
    _guard_requests(app, max_body_bytes, set(form_endpoints), upload_limits)
    _answer_errors_as_problems(app)
    _serve_health(app, context, ready_checks or {})
    _serve_docs(app, title)
    return app


def _api_settings(
    title: str, max_body_bytes: int, upload_limits: dict[str, int], token_url: str
) -> dict[str, Any]:
    """flask-smorest's OpenAPI settings, and Werkzeug's ceiling on request bodies."""
    return {
        "API_TITLE": title,
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        # Werkzeug's hard ceiling is the largest allowed upload; every other endpoint keeps
        # ``max_body_bytes`` (checked per request by the guards).
        "MAX_CONTENT_LENGTH": max(
            [max_body_bytes, *((limit + UPLOAD_FRAMING_BYTES) for limit in upload_limits.values())]
        ),
        "API_SPEC_OPTIONS": {
            "info": {
                "description": (
                    f"{title}. Errors are application/problem+json (RFC 9457) with a stable `code`: "
                    "each operation lists those it can answer; the whole catalogue is docs/errors.md."
                )
            },
            # Each operation states its own security (``shared.openapi``): no default to inherit.
            "components": {"securitySchemes": security_schemes(token_url)},
        },
    }


def _observe_requests(app: Flask, context: ServiceContext, collectors: Iterable[Collector] = ()) -> None:
    """Request ids (taken from ``X-Request-Id`` when well-formed, else new), one log line per
    request, a server span per request while tracing is on (continuing the caller's
    ``traceparent``), and the Prometheus metrics served on ``/metrics``."""
    registry = CollectorRegistry()
    requests_total = Counter(
        "hirfa_http_requests_total",
        "HTTP requests served",
        ["method", "endpoint", "status"],
        registry=registry,
    )
    latency = Histogram(
        "hirfa_http_request_duration_seconds",
        "HTTP request latency",
        ["method", "endpoint"],
        registry=registry,
    )
    scraped = registry
    if prometheus_multiprocess_directory():
        # Several gunicorn workers: every worker's counters and histograms, added up from the
        # files they write, rather than those of the one worker that took the scrape.
        scraped = CollectorRegistry()
        MultiProcessCollector(scraped)  # type: ignore[no-untyped-call]
    # Read from the database at scrape time: the same whichever worker answers.
    for collector in [OutboxCollector(context), *collectors]:
        scraped.register(collector)

    @app.before_request
    def _start_request() -> None:
        g.started_at = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else new_id("req")
        request_id_var.set(g.request_id)
        chosen = tracing.tracer()
        if chosen is not None:
            route = request.url_rule.rule if request.url_rule else None
            if route not in _PROBE_ROUTES:
                tracing.start_request(chosen, request.method, route, request.headers, g.request_id)

    @app.after_request
    def _finish_request(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or new_id("req")
        tracing.request_answered(response.status_code)
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        requests_total.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("started_at")
        if started is not None:
            elapsed = time.perf_counter() - started
            latency.labels(request.method, endpoint).observe(elapsed)
            if endpoint not in _PROBE_ROUTES:
                log.info(
                    "request",
                    extra={
                        "method": request.method,
                        # A view whose path carries a capability (a verification code) logs its
                        # route instead (``g.log_path``).
                        "path": g.get("log_path") or request.path,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 1),
                        "client_id": getattr(g.get("principal"), "client_id", None),
                    },
                )
        return response

    @app.teardown_request
    def _forget_request_id(exc: BaseException | None) -> None:
        request_id_var.set(None)
        tracing.finish_request(exc)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(scraped), mimetype=CONTENT_TYPE_LATEST)


def _guard_requests(
    app: Flask, max_body_bytes: int, form_endpoints: set[str], upload_limits: dict[str, int]
) -> None:
    """Refuse before any view runs: NUL in the URL, bodies over their limit, and a body that is
    not JSON where JSON is expected."""

    @app.before_request
    def _check_request() -> None:
        # Each of the request's attributes read once: every one is a lookup through Flask's proxy
        # (and some parse a header), on every request.
        if "\x00" in request.path or (
            request.query_string
            and any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True))
        ):
            raise BadRequest("NUL characters are not allowed in the URL.")
        writes = request.method in {"POST", "PUT", "PATCH"}
        endpoint = request.endpoint
        content_length = request.content_length
        if writes and endpoint in upload_limits:
            # Multipart uploads: the body limit is the endpoint's, plus room for the form framing.
            if (content_length or 0) > upload_limits[endpoint] + UPLOAD_FRAMING_BYTES:
                raise RequestTooLarge(f"Uploads are limited to {upload_limits[endpoint]} bytes.")
            return
        if content_length is not None and content_length > max_body_bytes:
            raise RequestTooLarge(f"Request bodies are limited to {max_body_bytes} bytes.")
        if writes and (content_length or request.data):
            if endpoint in form_endpoints:
                return  # form-encoded by protocol (OAuth2 token endpoint, uploads)
            if not request.is_json:
                raise UnsupportedMediaType(
                    f"Send the body as application/json (got {request.mimetype or 'no type'})."
                )
            try:
                request.get_json(force=False, silent=False)
            except HTTPException:
                raise MalformedRequest("The request body is not valid JSON.") from None


def _answer_errors_as_problems(app: Flask) -> None:
    """Every error leaves as problem+json; an unexpected one without its detail (that stays in our logs)."""

    @app.errorhandler(HirfaError)
    def _handle_hirfa_error(error: HirfaError) -> Response:
        if error.status >= 500:
            log.error("request failed", extra={"code": error.code})
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def _handle_http_error(error: HTTPException) -> Response:
        return problem_response(_from_http_exception(error))

    @app.errorhandler(Exception)
    def _handle_unexpected(error: Exception) -> Response:
        if _database_away(error):
            # A restart or failover, not a bug: the client retries; the pool reconnects by itself.
            log.warning("database unavailable", extra={"error": type(error).__name__})
            return problem_response(
                DatabaseUnavailable("The database is briefly unavailable. Retry the same request shortly.")
            )
        log.exception("unhandled error")
        return problem_response(
            HirfaError("Something went wrong on our side. Quote the request_id when contacting support.")
        )


# The database, not the request, failed: the connection was lost, the server is starting up or
# shutting down, the pool had no connection to give. (Constraint and data errors are not here.)
_DATABASE_AWAY = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


def _database_away(error: BaseException) -> bool:
    """Whether ``error``, or what caused it (a cleanup that failed in turn), is the database being
    unreachable rather than a bug."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DATABASE_AWAY):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def _serve_health(app: Flask, context: ServiceContext, ready_checks: dict[str, Callable[[], bool]]) -> None:
    """``/healthz``: the process answers. ``/readyz``: the database, the broker and the service's own
    ``ready_checks`` answer too."""
    config = context.config
    checks = {**infrastructure_checks(context), **ready_checks}

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", service=config.service_name)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, results = readiness(checks)
        body = {"status": "ready" if ready else "not_ready", "checks": results}
        return jsonify(body), 200 if ready else 503


def _serve_docs(app: Flask, title: str) -> None:
    """Swagger UI on ``/docs``, over the OpenAPI document flask-smorest serves."""
    static_dir = swagger_ui_bundle.swagger_ui_path

    @app.get("/docs")
    def docs() -> Response:
        return Response(_docs_html(title), mimetype="text/html")

    @app.get("/docs/static/<path:filename>")
    def docs_static(filename: str) -> Response:
        return send_from_directory(static_dir, filename)
