"""Demo staff sign in against the running processes (made by `hirfa stack init`, already enrolled):
password and a TOTP code computed from the published secret; the token is verified by accounts
through onboarding's JWKS like any other, and reaches what the person's roles allow."""

from __future__ import annotations

import pyotp
import pytest
import requests

from services.onboarding.cli import DEMO_STAFF, DEMO_STAFF_PASSWORD

pytestmark = pytest.mark.e2e

SECRETS = {email: secret for email, _name, _roles, secret in DEMO_STAFF}


def sign_in(stack, email: str, password: str = DEMO_STAFF_PASSWORD) -> requests.Response:
    body = {"email": email, "password": password, "totp_code": pyotp.TOTP(SECRETS[email]).now()}
    return requests.post(f"{stack.urls['onboarding']}/v1/staff-sessions", json=body, timeout=10)


def test_demo_staff_sign_in_and_act_within_their_roles(stack):
    amina = sign_in(stack, "amina.compliance@hirfa.test")
    assert amina.status_code == 200, amina.text
    assert amina.json()["staff"]["roles"] == ["compliance"]
    officer = {"Authorization": f"Bearer {amina.json()['access_token']}"}
    reviews = requests.get(f"{stack.urls['onboarding']}/v1/kyc-reviews", headers=officer, timeout=10)
    assert reviews.status_code == 200, reviews.text

    salma = sign_in(stack, "salma.operator@hirfa.test")
    assert salma.status_code == 200, salma.text
    operator = {"Authorization": f"Bearer {salma.json()['access_token']}"}
    integrity = requests.get(f"{stack.urls['accounts']}/v1/ledger/integrity", headers=operator, timeout=30)
    assert integrity.status_code == 200, integrity.text
    no_reviews = requests.get(f"{stack.urls['onboarding']}/v1/kyc-reviews", headers=operator, timeout=10)
    assert no_reviews.status_code == 403
    # A compliance officer is no operator in accounts.
    refused = requests.get(f"{stack.urls['accounts']}/v1/ledger/integrity", headers=officer, timeout=10)
    assert refused.status_code == 403

    wrong = sign_in(stack, "youssef.compliance@hirfa.test", password="not the demo password")
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
