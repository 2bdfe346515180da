"""What every service's OpenAPI document says beyond its schemas, read off the views themselves.

For each operation: the security requirement (the scopes of ``require_scopes`` or
``require_any_scope``; a public view says ``security=[]`` itself), the problem+json answers it can
give, by status, with each code from the catalogue (``shared.problem_codes``) — those every
operation of its kind can give (a token refused, a body not JSON, an Idempotency-Key reused…) and
those its view names with ``@problems(...)`` — and an example of each body, built from its schema
where the view gives none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from apispec import APISpec, BasePlugin
from flask import Flask
from marshmallow import INCLUDE, Schema, fields

from shared import problem_codes as codes
from shared.auth.scopes import SCOPE_DESCRIPTIONS
from shared.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, http_status_error
from shared.ids import PREFIXES
from shared.problem_codes import ProblemCode

View = TypeVar("View", bound=Callable[..., Any])

SECURITY_SCHEME = "oauth2"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# What the idempotency decorators mark on a view: whether the key is required or optional.
IDEMPOTENCY_ATTRIBUTE = "idempotency_key"
# What the auth decorators mark on a view: the sets of scopes, any one of which is enough.
SCOPES_ATTRIBUTE = "scope_alternatives"
_PROBLEMS_ATTRIBUTE = "documented_problems"
_EXAMPLE_TIME = "2026-12-01T10:15:00+00:00"
_EXAMPLE_ULID = "01JF8Z3K2M6X9T4B7C5D1E0F2G"


class ErrorItemSchema(Schema):
    param = fields.String(metadata={"description": "The field at fault.", "example": "amount"})
    message = fields.String(metadata={"example": "Must be greater than or equal to 1."})
    location = fields.String(
        metadata={"description": "json, query, files, form or headers.", "example": "json"}
    )


class ProblemSchema(Schema):
    """An error answer (RFC 9457 problem details). ``code`` is the stable contract; the other text
    follows Accept-Language (fr, ar, en). Some codes add members of their own (documented with them)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(
        metadata={"description": "A URL naming the code.", "example": PROBLEM_TYPE_BASE + "conflict"}
    )
    title = fields.String(metadata={"description": "A short summary of the kind of problem."})
    status = fields.Integer(metadata={"description": "The HTTP status, repeated."})
    detail = fields.String(metadata={"description": "What went wrong with this request, for a person."})
    code = fields.String(
        required=True,
        metadata={"description": "Stable machine-readable error code (see the operation's answers)."},
    )
    param = fields.String(metadata={"description": "The field or header at fault, when it is one."})
    errors = fields.List(
        fields.Nested(ErrorItemSchema), metadata={"description": "Every bad field of a validation_error."}
    )
    request_id = fields.String(
        metadata={
            "description": "Quote it to support; also in the X-Request-Id header.",
            "example": "req_" + _EXAMPLE_ULID,
        }
    )


class JwksSchema(Schema):
    """A JSON Web Key Set (RFC 7517): the public keys a Hirfa issuer signs with."""

    keys = fields.List(
        fields.Dict(),
        metadata={
            "example": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": "vQTtn3Fr2lvSSAvc3U856GjqhgDe_N2VWgUQZjtR0dE",
                    "kid": "k_01jf8z3k2m6x9t4b7c5d1e0f2g",
                    "alg": "EdDSA",
                    "use": "sig",
                }
            ]
        },
    )


def problems(*answered: ProblemCode) -> Callable[[View], View]:
    """Name the problem codes a view can answer beyond those every operation of its kind can
    (``shared.openapi`` adds those: tokens, bodies, idempotency, our side)."""

    def decorator(view: View) -> View:
        setattr(view, _PROBLEMS_ATTRIBUTE, (*getattr(view, _PROBLEMS_ATTRIBUTE, ()), *answered))
        return view

    return decorator


def security_schemes(token_url: str) -> dict[str, Any]:
    """The one scheme: a bearer JWT whose scopes each operation names."""
    return {
        SECURITY_SCHEME: {
            "type": "oauth2",
            "description": (
                "`Authorization: Bearer <JWT>`. API clients (marketplaces, bank partners) get it with "
                "their client credentials from onboarding's `POST /v1/oauth/token`; artisans from "
                "`POST /v1/artisan-sessions/{id}/verify`, staff from `POST /v1/staff-sessions`. Each "
                "operation lists the scopes its token must carry; an empty list means any valid token."
            ),
            "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": dict(SCOPE_DESCRIPTIONS)}},
        }
    }


class OperationDocs(BasePlugin):
    """The apispec plugin that completes each operation from its view (see the module's docstring)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.spec: APISpec | None = None

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations or self.spec is None:
            return
        schemas = self.spec.components.schemas
        endpoint_view = self.app.view_functions[rule.endpoint]
        for method, operation in operations.items():
            view = _method_view(endpoint_view, method)
            _fold_form_fields(operation)
            _document_security(operation, view)
            _document_idempotency_key(operation, view)
            _document_problems(operation, view, has_path_parameters=bool(rule.arguments))
            _document_examples(operation, schemas)


def _method_view(endpoint_view: Callable[..., Any], method: str) -> Callable[..., Any]:
    view_class = getattr(endpoint_view, "view_class", None)
    return getattr(view_class, method) if view_class is not None else endpoint_view


def _fold_form_fields(operation: dict[str, Any]) -> None:
    """A view that takes form fields beside its files leaves the fields as OpenAPI 2 ``formData``
    parameters (flask-smorest makes one request body only): they belong in the multipart body."""
    fields_ = [p for p in operation.get("parameters", []) if p.get("in") == "formData"]
    body = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    if not fields_ or body is None:
        return
    operation["parameters"] = [p for p in operation["parameters"] if p.get("in") != "formData"]
    if not operation["parameters"]:
        del operation["parameters"]
    form = {
        "type": "object",
        "properties": {field["name"]: field["schema"] for field in fields_},
        "required": [field["name"] for field in fields_ if field.get("required")],
    }
    body["schema"] = {"allOf": [form, body["schema"]]}


# --- security ---------------------------------------------------------------------------------------


def _document_security(operation: dict[str, Any], view: Callable[..., Any]) -> None:
    """A view behind ``require_scopes``/``require_any_scope`` needs a token with those scopes; a
    public view documents ``security=[]`` itself. A view with neither is left without, for the
    document's test to catch."""
    alternatives = getattr(view, SCOPES_ATTRIBUTE, None)
    if "security" in operation or alternatives is None:
        return
    operation["security"] = [{SECURITY_SCHEME: list(scopes)} for scopes in alternatives]


def _needs_token(operation: dict[str, Any]) -> bool:
    return bool(operation.get("security"))


def _needs_scope(operation: dict[str, Any]) -> bool:
    return any(scopes for requirement in operation.get("security", []) for scopes in requirement.values())


# --- Idempotency-Key ----------------------------------------------------------------------------------


def _document_idempotency_key(operation: dict[str, Any], view: Callable[..., Any]) -> None:
    required = getattr(view, IDEMPOTENCY_ATTRIBUTE, None)
    if required is None:
        return
    parameters = operation.setdefault("parameters", [])
    if any(p.get("in") == "header" and p.get("name") == IDEMPOTENCY_HEADER for p in parameters):
        return
    parameters.append(
        {
            "in": "header",
            "name": IDEMPOTENCY_HEADER,
            "required": required == "required",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "example": "5f0c8a4e-3b7d-4a51-9f3e-2c8d1b6a7e90",
            "description": (
                "A new key (a UUID) per request, the same one when retrying it: a retry replays the "
                "first answer."
                + ("" if required == "required" else " Optional here: without one the request runs as it is.")
            ),
        }
    )


# --- problems -----------------------------------------------------------------------------------------


def operation_problems(
    operation: dict[str, Any], view: Callable[..., Any], *, has_path_parameters: bool
) -> list[ProblemCode]:
    """Every code the operation can answer: those of its kind, then those its view names."""
    found: list[ProblemCode] = []
    if _needs_token(operation):
        found += [codes.UNAUTHENTICATED, codes.INVALID_TOKEN, codes.TOKEN_EXPIRED]
    if _needs_scope(operation):
        found.append(codes.INSUFFICIENT_SCOPE)
    body = operation.get("requestBody")
    if body is not None:
        found += [codes.REQUEST_TOO_LARGE, codes.VALIDATION_ERROR]
        if "application/json" in body.get("content", {}):
            found += [codes.MALFORMED_JSON, codes.UNSUPPORTED_MEDIA_TYPE]
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        found.append(codes.VALIDATION_ERROR)
    idempotency = getattr(view, IDEMPOTENCY_ATTRIBUTE, None)
    if idempotency is not None:
        found += [codes.VALIDATION_ERROR, codes.IDEMPOTENCY_KEY_REUSE, codes.IDEMPOTENCY_KEY_IN_PROGRESS]
        if idempotency == "required":
            found.append(codes.IDEMPOTENCY_KEY_MISSING)
    named: tuple[ProblemCode, ...] = getattr(view, _PROBLEMS_ATTRIBUTE, ())
    if has_path_parameters and not any(problem.status == 404 for problem in named):
        found.append(codes.RESOURCE_NOT_FOUND)
    found += [*named, codes.INTERNAL_ERROR, codes.DATABASE_UNAVAILABLE]
    return list(dict.fromkeys(found))


def _document_problems(
    operation: dict[str, Any], view: Callable[..., Any], *, has_path_parameters: bool
) -> None:
    """Replace the generic error answers with one problem+json answer per status, listing its codes."""
    responses = operation.setdefault("responses", {})
    for status in [key for key in responses if str(key) == "default" or int(key) >= 400]:
        del responses[status]
    by_status: dict[int, list[ProblemCode]] = {}
    for problem in operation_problems(operation, view, has_path_parameters=has_path_parameters):
        if problem.status is not None:
            by_status.setdefault(problem.status, []).append(problem)
    for status, answered in sorted(by_status.items()):
        responses[str(status)] = {
            "description": "\n".join(f"- `{problem.code}`: {problem.meaning}" for problem in answered),
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {problem.code: _problem_example(problem) for problem in answered},
                }
            },
        }


def _problem_example(problem: ProblemCode) -> dict[str, Any]:
    status = problem.status or HTTPStatus.BAD_REQUEST
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": http_status_error(status).title,
        "status": status,
        "detail": problem.meaning,
        "code": problem.code,
        "request_id": "req_" + _EXAMPLE_ULID,
    }
    if problem.code == codes.VALIDATION_ERROR.code:
        body["param"] = "amount"
        body["errors"] = [
            {"param": "amount", "message": "Must be greater than or equal to 1.", "location": "json"}
        ]
    return {"summary": problem.action, "value": body}


# --- examples -----------------------------------------------------------------------------------------


def _document_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An example for the request body and for each successful answer's body that has none."""
    bodies = [operation.get("requestBody", {})]
    bodies += [
        r for status, r in operation.get("responses", {}).items() if str(status).startswith(("1", "2", "3"))
    ]
    for body in bodies:
        if not isinstance(body, dict):
            continue
        for media in body.get("content", {}).values():
            if "example" not in media and "examples" not in media and "schema" in media:
                media["example"] = example_of(media["schema"], schemas)


# Id prefixes beyond ``shared.ids.PREFIXES``, by the kind an id field or an object's ``object`` names.
_ID_PREFIXES = {
    "marketplace": "cli",
    "client": "cli",
    "entry": "je",
    "dispute": "dp",
    "review": "rev",
    "kyc_review": "rev",
    "document": "doc",
    "kyc_document": "doc",
    "notification": "ntf",
    "case": "rc",
    "reconciliation_case": "rc",
    "run": "rr",
    "reconciliation_run": "rr",
    "ledger_case": "lc",
    "income_statement": "ist",
    "adjustment": "adj",
    "endpoint": "we",
    "delivery": "whd",
    "account": "acct",
}


def _id_example(kind: str) -> str:
    """An id of ``kind``, named by its last words that are a known kind (``reverses_entry``: je_…);
    an unknown kind takes its words' initials (``statement_line``: sl_…)."""
    words = kind.split("_")
    known = {**_ID_PREFIXES, **PREFIXES}
    suffixes = ("_".join(words[start:]) for start in range(len(words)))
    prefix = next((known[suffix] for suffix in suffixes if suffix in known), None)
    return f"{prefix or ''.join(word[:1] for word in words) or 'id'}_{_EXAMPLE_ULID}"


def _string_example(name: str, schema: dict[str, Any]) -> str:
    formats = {
        "date-time": _EXAMPLE_TIME,
        "date": _EXAMPLE_TIME[:10],
        "email": "amina.tazi@example.ma",
        "uri": "https://marketplace.example.ma/hirfa",
        "url": "https://marketplace.example.ma/hirfa",
        "uuid": "5f0c8a4e-3b7d-4a51-9f3e-2c8d1b6a7e90",
        "binary": "(the file's bytes)",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    by_name = {
        "currency": "MAD",
        "phone": "+212612345678",
        "language": "fr",
        "preferred_language": "fr",
        "country": "MA",
        "bank_code": "145",
        "next_cursor": _id_example("item"),
        "starting_after": _id_example("item"),
    }
    if name in by_name:
        return by_name[name]
    if name.endswith("_id") or name == "id":
        return _id_example(name.removesuffix("_id") or "id")
    if name.endswith(("_at", "_after", "_before")):
        return _EXAMPLE_TIME
    if name.endswith("_url"):
        return "https://marketplace.example.ma/hirfa"
    text = name.replace("_", " ") or "text"
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")


def _number_example(name: str, schema: dict[str, Any]) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    wanted = 25_000 if re.search(r"amount|fee|balance|total|cap|volume|sum", name) else 1
    if low is not None:
        wanted = max(wanted, low)
    if high is not None:
        wanted = min(wanted, high)
    return wanted


def example_of(schema: dict[str, Any], schemas: dict[str, Any], name: str = "", depth: int = 0) -> Any:
    """A value ``schema`` accepts, for the documentation: the schema's own example or default where
    it has one, else one made from the field's name, format and bounds."""
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "example" in schema:
        return schema["example"]
    if len(schema.get("allOf", ())) > 1:
        parts = [example_of(part, schemas, name, depth) for part in schema["allOf"]]
        if all(isinstance(part, dict) for part in parts):
            return {key: value for part in parts for key, value in part.items()}
    for combined in ("allOf", "oneOf", "anyOf"):
        if schema.get(combined):
            return example_of(schema[combined][0], schemas, name, depth)
    if schema.get("enum"):
        return next((value for value in schema["enum"] if value is not None), None)
    if schema.get("default") is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        properties = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return {"key": example_of(schema["additionalProperties"], schemas, "value", depth + 1)}
        # An object's own ``id`` takes the prefix of its kind (``object``: "bank_account" → ba_…).
        kind = properties.get("object", {}).get("default")
        return {
            key: example_of(value, schemas, f"{kind}_id" if key == "id" and kind else key, depth + 1)
            for key, value in properties.items()
        }
    if kind == "array":
        item = example_of(schema.get("items", {}), schemas, name.removesuffix("s"), depth + 1)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "boolean":
        return True
    if kind in {"integer", "number"}:
        return _number_example(name, schema)
    if kind == "string":
        return _string_example(name, schema)
    return None
