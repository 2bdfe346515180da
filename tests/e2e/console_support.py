"""What the console's browser tests need besides the stack: the demo staff, their TOTP codes, a
small page on another origin (to forge a form post), and images to upload as documents.

``FakeStaffSignIn`` speaks the staff sign-in interface of issue 14 (``POST /v1/staff-sessions``,
``/v1/staff-enrolments`` and ``/confirm``) for as long as onboarding does not: each demo person
is backed by a demo API client of the same role, so the tokens are onboarding's own.
"""

from __future__ import annotations

import dataclasses
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pyotp
import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from tests.support import free_port

STAFF_PASSWORD = "demo-staff-password"


@dataclasses.dataclass(frozen=True)
class DemoStaff:
    email: str
    name: str
    roles: tuple[str, ...]
    totp_secret: str
    client_id: str
    client_secret: str


DEMO_STAFF = {
    staff.email: staff
    for staff in (
        DemoStaff(
            "amina.compliance@hirfa.test",
            "Amina Benali",
            ("compliance",),
            "JBSWY3DPEHPK3PXPAMINA234",
            "cli_demo_compliance",
            "demo-compliance-secret",
        ),
        DemoStaff(
            "youssef.compliance@hirfa.test",
            "Youssef Alaoui",
            ("compliance",),
            "JBSWY3DPEHPK3PXPYOUSSEF2",
            "cli_demo_compliance_2",
            "demo-compliance-2-secret",
        ),
        DemoStaff(
            "salma.operator@hirfa.test",
            "Salma Idrissi",
            ("operator",),
            "JBSWY3DPEHPK3PXPSALMA234",
            "cli_demo_operator",
            "demo-operator-secret",
        ),
    )
}

_last_code: dict[str, str] = {}


def totp_code(email: str) -> str:
    """A fresh code: never the one this person used last (an issuer may refuse a replayed code)."""
    totp = pyotp.TOTP(DEMO_STAFF[email].totp_secret)
    code = totp.now()
    while code == _last_code.get(email):
        time.sleep(1)
        code = totp.now()
    _last_code[email] = code
    return code


def fake_staff_app(onboarding_url: str) -> Flask:
    app = Flask("fake_staff_sign_in")

    @app.post("/v1/staff-sessions")
    def staff_session():
        body = request.get_json()
        staff = DEMO_STAFF.get(body.get("email", ""))
        valid = staff and body.get("password") == STAFF_PASSWORD
        if not valid or not pyotp.TOTP(staff.totp_secret).verify(body.get("totp_code", ""), valid_window=1):
            return jsonify(code="invalid_credentials", status=401), 401
        token = requests.post(
            f"{onboarding_url}/v1/oauth/token",
            auth=(staff.client_id, staff.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        ).json()
        return jsonify(
            access_token=token["access_token"],
            token_type="Bearer",
            expires_in=token["expires_in"],
            staff={
                "id": staff.client_id,
                "name": staff.name,
                "email": staff.email,
                "roles": list(staff.roles),
            },
        )

    @app.get("/forged")
    def forged_form():
        # Another origin's page posting to the console, as a cross-site request forgery would.
        target = request.args["target"]
        return (
            f'<!doctype html><form method="post" action="{target}">'
            '<input name="decision" value="approve"><input name="reason_code" value="documents_verified">'
            '<input name="note" value="forged"><button id="forge">Win a prize</button></form>'
        )

    return app


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)


def png(marker: bytes, size: int = 48) -> bytes:
    """A real PNG (a grey square) carrying ``marker`` in a text chunk: a browser can draw it, and a
    search for ``marker`` finds any copy of the file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = b"".join(b"\x00" + bytes([128]) * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + marker)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
