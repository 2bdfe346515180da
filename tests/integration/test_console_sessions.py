"""The console against the real onboarding, served on a free port: a staff member who keeps working
stays signed in past their 15-minute access token (the console renews it with onboarding's refresh
token), and signing out ends the staff session at onboarding too."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import sqlalchemy as sa

from services.console.app import create_app as create_console_app
from services.console.config import ConsoleConfig
from services.onboarding.adapters.orm import StaffRefreshToken
from services.onboarding.cli import DEMO_STAFF, DEMO_STAFF_PASSWORD
from services.onboarding.service_layer.staff import ensure_demo_staff
from tests.http_support import ServedApp

SALMA = "salma.operator@hirfa.test"
SECRETS = {email: secret for email, _name, _roles, secret in DEMO_STAFF}


@pytest.fixture
def onboarding_url(onboarding_app):
    context = onboarding_app.extensions["hirfa"]
    for email, name, roles, secret in DEMO_STAFF:
        ensure_demo_staff(
            context.uow_factory(),
            email=email,
            name=name,
            roles=list(roles),
            password=DEMO_STAFF_PASSWORD,
            totp_secret=secret,
            policy=context.staff,
        )
    served = ServedApp(onboarding_app)
    served.start()
    yield served.url
    served.stop()


@pytest.fixture
def console(onboarding_url):
    """The console with its real adapters (HTTP to onboarding); the other services are not needed."""
    config = ConsoleConfig(
        secure_cookies=False,
        log_json=False,
        onboarding_url=onboarding_url,
        payments_url="http://127.0.0.1:9",
        accounts_url="http://127.0.0.1:9",
        http_timeout_seconds=5,
    )
    return create_console_app(config).test_client()


def refresh_tokens(onboarding_app) -> list[tuple[str, str | None]]:
    """(status, revoked reason) of every staff refresh token, oldest first."""
    with onboarding_app.extensions["hirfa"].session_factory() as session:
        rows = session.scalars(sa.select(StaffRefreshToken).order_by(StaffRefreshToken.created_at))
        return [(row.status, row.revoked_reason) for row in rows]


def csrf_of(html: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()


def test_work_past_the_access_tokens_end_goes_on_with_a_renewed_token_and_sign_out_ends_it(
    console, onboarding_app, monkeypatch
):
    signed_in = console.post(
        "/sign-in",
        data={
            "csrf_token": csrf_of(console.get("/sign-in").data),
            "email": SALMA,
            "password": DEMO_STAFF_PASSWORD,
            "totp_code": pyotp.TOTP(SECRETS[SALMA]).now(),
        },
    )
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    assert refresh_tokens(onboarding_app) == [("active", None)]

    # Fourteen minutes and fifty seconds later (she kept working), the next page still answers:
    # the console renewed the token at onboarding before calling it.
    later = time.time() + 890
    monkeypatch.setattr(time, "time", lambda: later)
    page = console.get("/artisans")
    assert page.status_code == 200, page.headers.get("Location")
    html = page.data.decode()
    assert "Salma Idrissi" in html and "data-unavailable" not in html
    assert refresh_tokens(onboarding_app) == [("rotated", None), ("active", None)]

    # Signing out ends the staff session at onboarding: its refresh tokens are revoked.
    out = console.post("/sign-out", data={"csrf_token": csrf_of(page.data)})
    assert out.headers["Location"] == "/sign-in"
    assert refresh_tokens(onboarding_app) == [("revoked", "signed_out"), ("revoked", "signed_out")]
    assert console.get("/artisans").headers["Location"].startswith("/sign-in")
