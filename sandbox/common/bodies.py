"""Request bodies of the sandboxes' APIs, validated; a fault is a 422 in the sandboxes' error shape.

Codes: ``invalid_body`` (not a JSON object), ``missing_field``, ``invalid_field`` (wrong type, empty,
too long, out of range); ``param`` names the field.
"""

from __future__ import annotations

from typing import Any

from sandbox.common.errors import ApiError

# The largest amount a sandbox takes, in minor units (10 000 000 000.00 MAD): every total built from
# such amounts still fits a statement's amount fields.
MAX_AMOUNT = 10**12


def json_object(payload: Any, *, optional: bool = False) -> dict[str, Any]:
    """The body as a dict; with ``optional``, no body at all reads as ``{}``."""
    if payload is None and optional:
        return {}
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object.")
    return payload


def text(
    payload: dict[str, Any], name: str, *, required: bool = True, limit: int | None = None
) -> str | None:
    """A non-empty string, trimmed, of at most ``limit`` characters; None when optional and absent."""
    value = payload.get(name)
    if value is None:
        if required:
            raise ApiError(422, "missing_field", f"{name} is required.", param=name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{name} must be a non-empty string.", param=name)
    value = value.strip()
    if limit is not None and len(value) > limit:
        raise ApiError(422, "invalid_field", f"{name} is longer than {limit} characters.", param=name)
    return value


def amount(payload: dict[str, Any], name: str = "amount", *, required: bool = True) -> int | None:
    """A positive integer of minor units, at most ``MAX_AMOUNT``."""
    value = payload.get(name)
    if value is None:
        if required:
            raise ApiError(422, "missing_field", f"{name} is required.", param=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        raise ApiError(422, "invalid_field", f"{name} must be a positive integer of minor units.", param=name)
    return value
