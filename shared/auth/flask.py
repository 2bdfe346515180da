"""Bearer-token enforcement for Flask views: ``@require_scopes("payments:write")``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, g, request

from shared.auth.principal import Principal
from shared.errors import Forbidden, Unauthenticated

Params = ParamSpec("Params")
Result = TypeVar("Result")
ViewDecorator = Callable[[Callable[Params, Result]], Callable[Params, Result]]


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise Unauthenticated()
    return principal


def authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send an access token as 'Authorization: Bearer <token>'.")
    verifier = current_app.extensions["hirfa"].token_verifier
    principal: Principal = verifier.verify(token.strip())
    g.principal = principal
    return principal


def require_scopes(*scopes: str) -> ViewDecorator[Params, Result]:
    def decorator(view: Callable[Params, Result]) -> Callable[Params, Result]:
        @functools.wraps(view)
        def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            principal = authenticate()
            if not principal.has_scopes(*scopes):
                raise Forbidden(f"This operation needs the scope(s): {', '.join(scopes)}.")
            return view(*args, **kwargs)

        # For the OpenAPI document (shared.openapi): one set of scopes, all needed.
        wrapper.scope_alternatives = (scopes,)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def require_any_scope(*scopes: str) -> ViewDecorator[Params, Result]:
    """Like ``require_scopes`` but one of ``scopes`` is enough (e.g. a marketplace's
    ``artisans:write`` or a compliance officer's ``kyc:review`` for a document upload)."""

    def decorator(view: Callable[Params, Result]) -> Callable[Params, Result]:
        @functools.wraps(view)
        def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            principal = authenticate()
            if not any(principal.has_scopes(scope) for scope in scopes):
                raise Forbidden(f"This operation needs one of the scopes: {', '.join(scopes)}.")
            return view(*args, **kwargs)

        wrapper.scope_alternatives = tuple((scope,) for scope in scopes)  # type: ignore[attr-defined]
        return wrapper

    return decorator
