"""An encrypted session cookie: the staff token rides in it, unreadable and unforgeable.

Flask's own cookie is signed but readable; this one is sealed with AES-256-GCM under a key
derived from ``CONSOLE_SECRET_KEY``, so the token inside is never visible to the browser's scripts
(the cookie is HttpOnly too), to a proxy's log, or to anyone holding the cookie file.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SessionInterface

_PURPOSE = b"hirfa-console-session-v1"


def session_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret.encode())


def seal(key: bytes, data: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), _PURPOSE)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes, value: str) -> dict[str, Any] | None:
    """The session's data, or None for a cookie that is not ours (tampered, old key, garbage)."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], _PURPOSE))
    except (ValueError, InvalidTag):
        return None
    return data if isinstance(data, dict) else None


class EncryptedCookieSessionInterface(SessionInterface):
    def __init__(self, secret: str) -> None:
        self._key = session_key(secret)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession:
        value = request.cookies.get(self.get_cookie_name(app))
        data = unseal(self._key, value) if value else None
        return SecureCookieSession(data or {})

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:  # type: ignore[override]
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if not session:
            if session.modified:
                response.delete_cookie(name, domain=domain, path=path)
            return
        response.vary.add("Cookie")
        if not self.should_set_cookie(app, session):
            return
        response.set_cookie(
            name,
            seal(self._key, dict(session)),
            httponly=True,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            domain=domain,
            path=path,
        )
