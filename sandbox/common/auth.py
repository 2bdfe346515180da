"""The partner's API key, sent as ``Authorization: Bearer <key>`` on every request but the public ones."""

from __future__ import annotations

import hmac
from collections.abc import Collection

from flask import Flask, request

from sandbox.common.errors import ApiError


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(app: Flask, api_key: str, *, realm: str, public_endpoints: Collection[str]) -> None:
    """Refuse (401) every request to ``app`` without ``api_key``, except those to ``public_endpoints``."""
    expected = api_key.encode("utf-8")

    @app.before_request
    def check_api_key() -> None:
        if request.endpoint in public_endpoints:
            return
        token = bearer_token(request.headers.get("Authorization"))
        # Constant-time comparison: response timing must not reveal how much of a guess was right.
        if token is None or not hmac.compare_digest(token.encode("utf-8"), expected):
            raise ApiError(
                401,
                "unauthorized",
                "Send the sandbox API key as Authorization: Bearer <key>.",
                headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
            )
