"""The one error path: domain exceptions with stable codes, rendered as RFC 9457 problem+json.

Code anywhere raises a ``HirfaError`` subclass; ``shared.app`` turns it (and every Werkzeug or
unexpected exception) into ``application/problem+json``. Nothing else builds error bodies.
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.hirfa.ma/errors/"


class HirfaError(Exception):
    """Base of every error a client may see. ``code`` is the stable machine-readable contract."""

    code = "internal_error"
    status = 500
    title = "Internal server error"
    # Whether retrying the same request later may succeed (stripe-python's ``should_retry``).
    retryable = False

    def __init__(
        self,
        # A ``shared.i18n.Message`` is rendered in the reader's language (str() is English).
        detail: Any = None,
        *,
        param: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(str(detail or self.title))
        self.detail = detail or self.title
        self.param = param
        self.errors = errors
        self.headers = headers or {}
        if code is not None:
            self.code = code
        self.extra = extra

    def to_problem(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": str(self.detail),
            "code": self.code,
        }
        if self.param:
            body["param"] = self.param
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        if request_id:
            body["request_id"] = request_id
        return body


class ValidationFailed(HirfaError):
    code = "validation_error"
    status = 422
    title = "The request is not valid"


class BadRequest(HirfaError):
    code = "bad_request"
    status = 400
    title = "The request could not be understood"


class MalformedRequest(HirfaError):
    code = "malformed_json"
    status = 400
    title = "The request body is not valid JSON"


class UnsupportedMediaType(HirfaError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported content type"


class Unauthenticated(HirfaError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="hirfa"'})
        super().__init__(detail, **kwargs)


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    title = "The access token is not valid"


class InvalidClient(Unauthenticated):
    code = "invalid_client"
    title = "Client authentication failed"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        # Clients authenticate to the token endpoint with HTTP Basic (RFC 6749 §2.3.1, §5.2).
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Basic realm="hirfa"'})
        super().__init__(detail, **kwargs)


class Forbidden(HirfaError):
    code = "insufficient_scope"
    status = 403
    title = "The token lacks the scope this operation needs"


class NotFound(HirfaError):
    code = "resource_not_found"
    status = 404
    title = "Not found"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "No such endpoint"


class MethodNotAllowed(HirfaError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed on this endpoint"


class Conflict(HirfaError):
    code = "conflict"
    status = 409
    title = "Conflict"


class IdempotencyKeyReuse(Conflict):
    code = "idempotency_key_reuse"
    title = "This Idempotency-Key was already used with a different request"


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"
    title = "A request with this Idempotency-Key is still being processed"
    retryable = True


class MissingIdempotencyKey(HirfaError):
    code = "idempotency_key_missing"
    status = 400
    title = "This operation requires an Idempotency-Key header"
    param = "Idempotency-Key"


class RequestTooLarge(HirfaError):
    code = "request_too_large"
    status = 413
    title = "The request body is too large"


class RateLimited(HirfaError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"
    retryable = True


class ServiceUnavailable(HirfaError):
    code = "service_unavailable"
    status = 503
    title = "The service is temporarily unavailable"
    retryable = True


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached right now (restarting, failing over, connection lost).
    Nothing was saved by the failed request; the same request may be retried as it is."""

    code = "database_unavailable"
    title = "The database is temporarily unavailable"
    retry_after_seconds = 2

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(self.retry_after_seconds)})
        super().__init__(detail, **kwargs)


def http_status_error(status: int, detail: str | None = None) -> HirfaError:
    """Map a bare HTTP status (from Werkzeug) to the matching problem."""
    by_status: dict[int, type[HirfaError]] = {
        400: BadRequest,
        401: Unauthenticated,
        403: Forbidden,
        404: RouteNotFound,
        405: MethodNotAllowed,
        409: Conflict,
        413: RequestTooLarge,
        415: UnsupportedMediaType,
        422: ValidationFailed,
        429: RateLimited,
        503: ServiceUnavailable,
    }
    error_class = by_status.get(status)
    if error_class is None:
        error = HirfaError(code="http_error" if status < 500 else "internal_error")
        error.status = status
        error.title = "Request failed" if status < 500 else HirfaError.title
        return error
    return error_class(detail)
