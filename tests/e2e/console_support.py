"""What the console's browser tests need besides the stack: the demo staff's TOTP codes, a small
page on another origin (to forge a form post from), and images to upload as documents."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pyotp
from flask import Flask, request
from werkzeug.serving import make_server

from services.onboarding.cli import DEMO_STAFF, DEMO_STAFF_PASSWORD
from tests.support import free_port

STAFF_PASSWORD = DEMO_STAFF_PASSWORD
TOTP_SECRETS = {email: secret for email, _name, _roles, secret in DEMO_STAFF}
NAMES = {email: name for email, name, _roles, _secret in DEMO_STAFF}

_last_step: dict[str, int] = {}


def totp_code(email: str, secret: str | None = None) -> str:
    """A code onboarding will take: each code is taken once, so a person signing in again within
    the same 30 seconds uses the next step's code (onboarding accepts one step either side), and
    waits only when that one is used too.

    Never the previous step's code: taken at the end of a step, it would be two steps old by the
    time a slow machine's request reaches onboarding, and refused as ``wrong_code``."""
    totp = pyotp.TOTP(secret or TOTP_SECRETS[email])
    while True:
        now = int(time.time()) // 30
        step = max(now, _last_step.get(email, now - 1) + 1)
        if step <= now + 1:
            _last_step[email] = step
            return totp.at(step * 30)
        time.sleep(1)


def other_origin_app() -> Flask:
    app = Flask("other_origin")

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
