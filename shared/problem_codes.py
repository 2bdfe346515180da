"""The catalogue of problem codes: every ``code`` a client may read in a problem+json answer, with
its HTTP status, what it means and what to do about it.

Each service adds its own codes in its ``problems`` module; the codes two services answer live
here. The OpenAPI documents list, per operation, the codes it can answer from this catalogue
(``shared.openapi``), and ``docs/errors.md`` is generated from it (``hirfa docs errors``), so
neither is a hand-kept list beside the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator


@dataclasses.dataclass(frozen=True)
class ProblemCode:
    code: str
    # None: the HTTP status of the refusal itself (a generic HTTP error with no code of its own).
    status: int | None
    meaning: str
    action: str
    # Where it is answered: "all" (any service), or the services' names.
    services: tuple[str, ...] = ("all",)


_CATALOGUE: dict[str, ProblemCode] = {}


def problem_code(
    code: str, status: int | None, meaning: str, action: str, *, services: tuple[str, ...] = ("all",)
) -> ProblemCode:
    """Add ``code`` to the catalogue. A code means one thing with one status everywhere: adding it
    twice is a mistake, unless it is the same entry (a module imported twice)."""
    entry = ProblemCode(code, status, meaning, action, services)
    existing = _CATALOGUE.setdefault(code, entry)
    if existing != entry:
        raise ValueError(f"problem code {code!r} is already in the catalogue with another meaning")
    return entry


def catalogued(code: str) -> ProblemCode:
    return _CATALOGUE[code]


def catalogue() -> Iterator[ProblemCode]:
    """Every code added so far (import the services' ``problems`` modules first), by status then code."""
    return iter(sorted(_CATALOGUE.values(), key=lambda entry: (entry.status or 999, entry.code)))


# --- the request itself ---------------------------------------------------------------------------

VALIDATION_ERROR = problem_code(
    "validation_error",
    422,
    "One or more fields are missing, malformed or out of range. `errors` lists every bad field "
    "(`param`, `message`, `location`), `param` names it when there is only one.",
    "Correct the fields named in `errors` and send the request again.",
)
BAD_REQUEST = problem_code(
    "bad_request",
    400,
    "The request cannot be understood (a NUL character in the URL, say).",
    "Fix the request as `detail` says; retrying it unchanged fails the same way.",
)
MALFORMED_JSON = problem_code(
    "malformed_json",
    400,
    "The body is not valid JSON (or holds NaN, Infinity, a NUL character or a lone surrogate).",
    "Send a well-formed JSON document.",
)
UNSUPPORTED_MEDIA_TYPE = problem_code(
    "unsupported_media_type",
    415,
    "The body is not of the content type the operation takes (JSON unless the operation says otherwise).",
    "Send the body as `application/json` (or the form or upload type the operation documents).",
)
REQUEST_TOO_LARGE = problem_code(
    "request_too_large",
    413,
    "The body is larger than the operation accepts.",
    "Send a smaller body; uploads have their own, larger limit.",
)
REQUEST_LINE_TOO_LONG = problem_code(
    "request_line_too_long",
    414,
    "The request line (method, path and query string) is longer than the server reads.",
    "Shorten the query string: filter with fewer or shorter parameters.",
)
REQUEST_HEADER_TOO_LARGE = problem_code(
    "request_header_too_large",
    431,
    "One header, or the headers together, are larger than the server reads.",
    "Send fewer or smaller headers (large cookies or tokens are the usual cause).",
)
TOO_MANY_REQUEST_HEADERS = problem_code(
    "too_many_request_headers",
    431,
    "The request carries more headers than the server reads.",
    "Send fewer headers.",
)
MALFORMED_HTTP_REQUEST = problem_code(
    "malformed_http_request",
    400,
    "The request is not valid HTTP/1.1 (a bad header line or a conflicting body length).",
    "Fix the HTTP client or the proxy in front of it.",
)
UNSUPPORTED_TRANSFER_CODING = problem_code(
    "unsupported_transfer_coding",
    501,
    "The request uses a Transfer-Encoding other than chunked.",
    "Send the body with a Content-Length or chunked.",
)
ROUTE_NOT_FOUND = problem_code(
    "route_not_found",
    404,
    "No endpoint has this path.",
    "Check the path against the API reference (every path starts with /v1).",
)
METHOD_NOT_ALLOWED = problem_code(
    "method_not_allowed",
    405,
    "The endpoint exists but not with this HTTP method; the `Allow` header lists those it takes.",
    "Use one of the methods in `Allow`.",
)
HTTP_ERROR = problem_code(
    "http_error",
    None,
    "An HTTP-level refusal with no more specific code; the response's status says which.",
    "Read the status and `detail`; fix the request accordingly.",
)

# --- who is calling ---------------------------------------------------------------------------------

UNAUTHENTICATED = problem_code(
    "unauthenticated",
    401,
    "The operation needs an access token and none was sent.",
    "Send `Authorization: Bearer <token>` with a token from `POST /v1/oauth/token`.",
)
INVALID_TOKEN = problem_code(
    "invalid_token",
    401,
    "The access token cannot be trusted: bad signature, unknown key, wrong issuer or audience, "
    "not yet valid, or revoked.",
    "Get a new token for this service's audience and send it; do not retry with the same token.",
)
TOKEN_EXPIRED = problem_code(
    "token_expired",
    401,
    "The access token has expired.",
    "Get a new token (client credentials, or the refresh token of a session) and retry.",
)
INVALID_CLIENT = problem_code(
    "invalid_client",
    401,
    "Client authentication at the token endpoint failed: unknown client, wrong secret, or a disabled client.",
    "Check the client id and secret (HTTP Basic, or `client_id`/`client_secret` in the form).",
    services=("onboarding",),
)
INSUFFICIENT_SCOPE = problem_code(
    "insufficient_scope",
    403,
    "The token is valid but lacks a scope the operation needs (the operation's security lists them).",
    "Ask for a token with the scope; if your client may not hold it, the operation is not for your role.",
)
ROLE_NOT_ALLOWED = problem_code(
    "role_not_allowed",
    403,
    "The operation is for another kind of caller (operators, marketplaces, bank partners…) than "
    "the token's role, whatever its scopes.",
    "Call it with a token of the role the operation names.",
)
INVALID_SIGNATURE = problem_code(
    "invalid_signature",
    401,
    "A partner's callback is unsigned, its signature does not match the raw body, or its timestamp "
    "is outside the replay window. Nothing was changed.",
    "Sign the exact body sent with the shared secret and a current timestamp; check the clocks.",
)
MALFORMED_CALLBACK = problem_code(
    "malformed_callback",
    400,
    "A partner's callback is correctly signed but its body cannot be read. Nothing was changed.",
    "Send the callback in the documented format.",
    services=("payments", "accounts"),
)

# --- the resource -----------------------------------------------------------------------------------

RESOURCE_NOT_FOUND = problem_code(
    "resource_not_found",
    404,
    "Nothing with this id exists, or it belongs to someone else (another marketplace, bank or "
    "artisan): the two are not told apart. `param` names the id.",
    "Check the id; list the collection to find what you may see.",
)
CONFLICT = problem_code(
    "conflict",
    409,
    "The request conflicts with the resource's current state.",
    "Read the resource again and decide from its current state.",
)
UNSUPPORTED_CURRENCY = problem_code(
    "unsupported_currency",
    422,
    "The currency is not one this operation handles for this resource (MAD unless configured otherwise).",
    "Send the amount in the currency the resource uses.",
    services=("payments", "accounts"),
)

# Bank identifiers (``shared.banking``): an artisan's account (onboarding), a marketplace's (accounts).
INVALID_RIB = problem_code(
    "invalid_rib",
    422,
    "The RIB is not 24 digits, or its key does not check.",
    "Send the RIB exactly as on the bank's RIB slip.",
    services=("onboarding", "accounts"),
)
INVALID_IBAN = problem_code(
    "invalid_iban",
    422,
    "The IBAN is not a Moroccan IBAN, or its check digits or inner RIB key are wrong.",
    "Send the IBAN exactly as the bank gives it: MA, two check digits, then the 24-digit RIB.",
    services=("onboarding", "accounts"),
)
UNKNOWN_BANK = problem_code(
    "unknown_bank",
    422,
    "The RIB's bank code (its first three digits) is not a bank Hirfa knows.",
    "Check the RIB; a mistyped bank code is the usual cause.",
    services=("onboarding", "accounts"),
)

# --- retries and idempotency ------------------------------------------------------------------------

IDEMPOTENCY_KEY_MISSING = problem_code(
    "idempotency_key_missing",
    400,
    "A creating POST was sent without an `Idempotency-Key` header.",
    "Send a fresh key (a UUID) with each new request, and the same key when retrying it.",
)
IDEMPOTENCY_KEY_REUSE = problem_code(
    "idempotency_key_reuse",
    409,
    "This `Idempotency-Key` was already used with a different body or endpoint. Nothing was done.",
    "Use a new key for a new request; reuse a key only to retry the very same request.",
)
IDEMPOTENCY_KEY_IN_PROGRESS = problem_code(
    "idempotency_key_in_progress",
    409,
    "The first request with this `Idempotency-Key` is still being processed.",
    "Retry after `Retry-After` seconds with the same key: you get the first request's answer.",
)
RATE_LIMITED = problem_code(
    "rate_limited",
    429,
    "Too many requests in a short time.",
    "Wait for `Retry-After` seconds when given, then retry.",
)

# --- our side ---------------------------------------------------------------------------------------

INTERNAL_ERROR = problem_code(
    "internal_error",
    500,
    "Something failed on Hirfa's side. No internal detail is given; it is in our logs under the `request_id`.",
    "Retry later with the same Idempotency-Key; if it persists, contact support quoting the `request_id`.",
)
SERVICE_UNAVAILABLE = problem_code(
    "service_unavailable",
    503,
    "The service is temporarily unable to answer.",
    "Retry later (after `Retry-After` when given).",
)
DATABASE_UNAVAILABLE = problem_code(
    "database_unavailable",
    503,
    "The database is briefly unreachable (a restart or failover). Nothing was saved by this request.",
    "Retry the same request (same Idempotency-Key) after `Retry-After` seconds.",
)
