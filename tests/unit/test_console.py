"""The console against fakes of the services: sign-in, sessions, CSRF, roles, the review case page,
documents streamed without caching, languages. The real thing, in a browser: tests/e2e/test_console_browser.py."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from services.console.adapters.hirfa_api import ApiError
from services.console.app import create_app
from services.console.config import ConsoleConfig
from services.console.web import charts, dashboard, labels, people, reconciliation, reviews
from services.console.web.sessions import seal, session_key, unseal
from shared.config import PROJECT_ROOT, ConfigError
from tests.console_fakes import CODE, PASSWORD, FakeStaffAuth, fake_apis

TRANSLATIONS = PROJECT_ROOT / "services/console/translations"
REVIEW = {
    "id": "rev_1",
    "artisan_id": "art_1",
    "kind": "tier_upgrade",
    "requested_tier": 3,
    "status": "open",
    "submitted_by": "stf_amina",
    "details": {},
    "created_at": "2026-12-01T09:00:00+00:00",
}
ARTISAN = {
    "id": "art_1",
    "full_name": "Youssef Amrani",
    "region": "fes_meknes",
    "kyc_tier": 2,
    "status": "active",
}
JPEG = b"\xff\xd8\xff\xe0" + b"scan" * 1000


@pytest.fixture
def apis():
    apis = fake_apis()
    onboarding = apis.onboarding
    onboarding.on("GET", "/v1/kyc-reviews", {"data": [REVIEW], "has_more": False, "next_cursor": None})
    onboarding.on("GET", "/v1/kyc-reviews/rev_1", REVIEW)
    onboarding.on("GET", "/v1/artisans/art_1", ARTISAN)
    onboarding.on("GET", "/v1/artisans/art_1/kyc", {"tier": 2, "history": [], "limits": {}})
    onboarding.on(
        "GET",
        "/v1/artisans/art_1/documents",
        {"data": [{"id": "doc_1", "kind": "id_front", "content_type": "image/jpeg", "status": "accepted"}]},
    )
    onboarding.on("GET", "/v1/artisans/art_1/kyc/audit-log", {"data": [], "has_more": False})
    onboarding.documents["/v1/artisans/art_1/documents/doc_1/content"] = ("image/jpeg", JPEG)
    return apis


@pytest.fixture
def staff_auth():
    return FakeStaffAuth()


@pytest.fixture
def config():
    return ConsoleConfig(secure_cookies=False, log_json=False, idle_timeout_seconds=900)


@pytest.fixture
def client(config, apis, staff_auth):
    return create_app(config, apis=apis, staff_auth=staff_auth).test_client()


def csrf_of(html: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()


def sign_in(client, email="amina.compliance@hirfa.test", code=CODE):
    token = csrf_of(client.get("/sign-in").data)
    return client.post(
        "/sign-in", data={"csrf_token": token, "email": email, "password": PASSWORD, "totp_code": code}
    )


def test_signing_in_keeps_the_token_sealed_in_an_http_only_strict_cookie(client):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("hirfa_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "token-of-stf_amina" not in cookie and "Amina" not in cookie
    page = client.get("/")
    assert page.status_code == 200 and b"Amina Compliance" in page.data


def test_secure_cookies_by_default():
    app = create_app(ConsoleConfig(log_json=False), apis=fake_apis(), staff_auth=FakeStaffAuth())
    client = app.test_client()
    response = sign_in(client)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("hirfa_console="))
    assert "Secure" in cookie


def test_wrong_code_gets_one_answer_for_all(client):
    response = sign_in(client, code="000000")
    assert response.status_code == 401
    assert "E-mail, mot de passe ou code incorrect." in response.data.decode()
    assert client.get("/").status_code == 302


def test_a_person_without_a_second_factor_enrols_with_a_qr_code(client, staff_auth):
    staff_auth.not_enrolled.add("amina.compliance@hirfa.test")
    response = sign_in(client)
    assert response.headers["Location"] == "/enrol"
    page = client.get("/enrol")
    assert page.status_code == 200 and b"<svg" in page.data and b"JBSWY3DPEHPK3PXP" in page.data
    wrong = client.post("/enrol", data={"csrf_token": csrf_of(page.data), "totp_code": "999999"})
    assert wrong.status_code == 422 and b"JBSWY3DPEHPK3PXP" in wrong.data
    assert staff_auth.enrolments_started == 1  # one secret per enrolment: a reload or a typo keeps it
    confirmed = client.post("/enrol", data={"csrf_token": csrf_of(page.data), "totp_code": CODE})
    assert confirmed.headers["Location"] == "/sign-in"
    assert sign_in(client).headers["Location"] == "/"


def test_a_form_without_the_csrf_token_is_refused(client, apis):
    sign_in(client)
    forged = client.post(
        "/reviews/rev_1/decision",
        data={"decision": "approve", "reason_code": "documents_verified", "note": "ok"},
    )
    assert forged.status_code == 403 and b'data-reason="csrf"' in forged.data
    assert not [call for call in apis.onboarding.calls if call.method == "POST"]


def test_every_form_post_of_the_console_needs_its_csrf_token(client, apis, staff_auth):
    """Not a list of forms kept by hand: every route taking a POST. Signed in, each is a 403 page
    without the session's token; signed out, so are signing in, enrolling, the language and
    signing out, and the others send to the sign-in page."""
    app = client.application
    targets = sorted(
        # An id where the rule takes one, the first choice where it takes one of a few.
        re.sub(r"<(?:\w+:)?\w+>", "x_1", re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule.rule))
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods
    )
    assert {
        "/sign-in",
        "/enrol",
        "/sign-out",
        "/language",
        "/reviews/x_1/decision",
        "/ledger/adjustments",
    } <= set(targets)
    signed_in = app.test_client()
    sign_in(signed_in)
    for who in (client, signed_in):
        for target in targets:
            for sent in ({}, {"csrf_token": "not-the-sessions-token"}):
                response = who.post(
                    target, data={**sent, "email": "amina.compliance@hirfa.test", "note": "x"}
                )
                if who is client and target not in ("/sign-in", "/enrol", "/language", "/sign-out"):
                    assert response.headers.get("Location", "").startswith("/sign-in"), (
                        target,
                        response.status_code,
                    )
                    continue
                assert response.status_code == 403, target
                assert b'data-reason="csrf"' in response.data, target
    assert not [call for api in (apis.onboarding, apis.payments, apis.accounts) for call in posts(api)]
    assert staff_auth.signed_out == []  # not even signing out goes through without it
    assert signed_in.get("/").status_code == 200


def test_an_idle_session_ends(client, config, monkeypatch):
    sign_in(client)
    assert client.get("/").status_code == 200
    later = time.time() + config.idle_timeout_seconds + 1
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.get("/reviews")
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in")
    assert "inactivité" in client.get("/sign-in").data.decode()


def test_a_decision_posted_after_the_access_token_expired_goes_through_with_a_renewed_one(
    client, apis, staff_auth, monkeypatch
):
    sign_in(client)  # the fake's tokens last 900 s
    decided = []
    apis.onboarding.on("POST", "/v1/kyc-reviews/rev_1/decision", lambda call: decided.append(call) or REVIEW)
    page = client.get("/reviews/rev_1")
    # The officer reads the case for 14 minutes and 50 seconds, then decides (activity in between).
    later = time.time() + 890
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.post(
        "/reviews/rev_1/decision",
        data={
            "csrf_token": csrf_of(page.data),
            "decision": "approve",
            "reason_code": "documents_verified",
            "note": "CIN checked.",
        },
    )
    assert response.status_code == 302 and not response.headers["Location"].startswith("/sign-in")
    [call] = decided
    assert call.token == "token-of-stf_amina-renewed-1"
    assert staff_auth.renewals == 1
    # The renewed token serves the next requests: no second renewal until it nears its own end.
    assert client.get("/").status_code == 200 and staff_auth.renewals == 1
    assert [c.token for c in apis.onboarding.calls][-1] != "token-of-stf_amina"


def test_an_active_session_renews_again_and_again_and_idleness_still_ends_it(
    client, config, staff_auth, monkeypatch
):
    sign_in(client)
    now = time.time()
    for step in range(1, 5):  # an hour of work, a request every 14 minutes and 10 seconds
        monkeypatch.setattr(time, "time", lambda step=step: now + step * 850)
        assert client.get("/").status_code == 200
    assert staff_auth.renewals == 4
    live = list(staff_auth.live_refresh_tokens)
    monkeypatch.setattr(time, "time", lambda: now + 4 * 850 + config.idle_timeout_seconds + 1)
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert staff_auth.signed_out == live  # the staff session ends at onboarding too
    assert "inactivité" in client.get("/sign-in").data.decode()


def test_a_refused_renewal_means_signing_in_again(client, staff_auth, monkeypatch):
    sign_in(client)
    staff_auth.refused = ApiError(401, "refresh_token_revoked")
    later = time.time() + 890
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert "Votre connexion a expiré" in client.get("/sign-in").data.decode()


def test_onboarding_not_answering_a_renewal_keeps_the_session(client, apis, staff_auth, monkeypatch):
    sign_in(client)
    staff_auth.refused = ApiError(0, "service_unavailable")
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + 860)  # renewal due, the old token still good
    assert client.get("/").status_code == 200
    monkeypatch.setattr(time, "time", lambda: start + 890)  # the old token is spent
    unavailable = client.get("/reviews")
    assert unavailable.status_code == 503 and b'data-reason="sign_in_unavailable"' in unavailable.data
    staff_auth.refused = None
    assert client.get("/reviews").status_code == 200  # back: renewed, still signed in
    assert staff_auth.renewals == 1


DOCUMENT = "/reviews/documents/art_1/doc_1"


def test_only_a_page_or_a_form_renews_never_an_answer_the_browser_may_drop(
    client, apis, staff_auth, monkeypatch
):
    """A renewal spends the refresh token; the next one rides back in the answer's cookie. An
    image, a framed document or a prefetch may be dropped by the browser (which would then keep the
    spent token, and its next renewal would look like theft), so none of them renews."""
    sign_in(client)
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + 860)  # renewal due, the old token still good
    for path, headers in (
        (DOCUMENT, {"Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"}),
        (DOCUMENT, {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate"}),
        (DOCUMENT, {}),  # a browser that sends no Sec-Fetch-Dest: a document is embedded, always
        ("/reviews", {"Sec-Fetch-Dest": "document", "Sec-Purpose": "prefetch"}),
        ("/reviews", {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}),
    ):
        served = client.get(path, headers=headers)
        assert served.status_code == 200 and served.data, (path, headers)  # (read: a document streams)
        assert staff_auth.renewals == 0, (path, headers)
    assert apis.onboarding.calls[-1].token == "token-of-stf_amina"  # served with the old token

    # Once the old token is spent, such a request is refused without renewing or signing out...
    monkeypatch.setattr(time, "time", lambda: start + 890)
    image = client.get(DOCUMENT, headers={"Sec-Fetch-Dest": "image"})
    assert image.status_code == 401 and b'data-reason="renew_on_next_page"' in image.data
    assert staff_auth.renewals == 0 and len(staff_auth.live_refresh_tokens) == 1
    # ... and the next page renews, with the refresh token the browser still holds.
    page = client.get("/reviews/rev_1", headers={"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"})
    assert page.status_code == 200 and staff_auth.renewals == 1
    assert client.get(DOCUMENT, headers={"Sec-Fetch-Dest": "image"}).data == JPEG
    assert apis.onboarding.calls[-1].token == "token-of-stf_amina-renewed-1"

    # A document opened in a tab of its own is a page: it renews (a reload there works).
    monkeypatch.setattr(time, "time", lambda: start + 890 + 890)
    opened = client.get(DOCUMENT, headers={"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"})
    assert opened.data == JPEG and staff_auth.renewals == 2


def test_a_form_post_renews_whatever_the_browser_says_it_is_for(client, apis, staff_auth, monkeypatch):
    sign_in(client)
    page = client.get("/reviews/rev_1")
    apis.onboarding.on("POST", "/v1/kyc-reviews/rev_1/decision", REVIEW)
    later = time.time() + 890
    monkeypatch.setattr(time, "time", lambda: later)
    decided = client.post(
        "/reviews/rev_1/decision",
        data={
            "csrf_token": csrf_of(page.data),
            "decision": "approve",
            "reason_code": "documents_verified",
            "note": "ok",
        },
        headers={"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"},
    )
    assert decided.status_code == 302 and staff_auth.renewals == 1


def test_a_token_the_service_refuses_means_signing_in_again(client, apis):
    sign_in(client)
    apis.onboarding.on("GET", "/v1/kyc-reviews", ApiError(401, "invalid_token"))
    assert client.get("/reviews").headers["Location"] == "/sign-in"
    assert client.get("/").status_code == 302


def test_sign_in_says_when_onboarding_does_not_answer(client, staff_auth, monkeypatch):
    def down(*_args):
        raise ApiError(0, "service_unavailable")

    monkeypatch.setattr(staff_auth, "sign_in", down)
    response = sign_in(client)
    assert response.status_code == 401 and "ne répond pas" in response.data.decode()


def test_sign_out_ends_the_session(client, staff_auth):
    page = client.get("/") if sign_in(client) else None
    [refresh_token] = staff_auth.live_refresh_tokens
    response = client.post("/sign-out", data={"csrf_token": csrf_of(page.data)})
    assert response.headers["Location"] == "/sign-in"
    assert client.get("/").status_code == 302
    assert staff_auth.signed_out == [refresh_token]


def session_of(client) -> dict:
    cookie = client.get_cookie("hirfa_console")
    if cookie is None:
        return {}
    return unseal(session_key(client.application.extensions["console"].config.secret_key), cookie.value) or {}


@pytest.mark.parametrize("idle", [False, True])
def test_sign_out_never_renews_and_clears_the_session_even_with_onboarding_down(
    client, config, staff_auth, monkeypatch, idle
):
    page = client.get("/") if sign_in(client) else None
    [refresh_token] = staff_auth.live_refresh_tokens
    staff_auth.refused = ApiError(0, "service_unavailable")  # no renewal would go through

    def down(token):
        staff_auth.signed_out.append(token)
        raise ApiError(0, "service_unavailable")

    monkeypatch.setattr(staff_auth, "sign_out", down)
    later = time.time() + (config.idle_timeout_seconds + 1 if idle else 890)  # the token spent
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.post("/sign-out", data={"csrf_token": csrf_of(page.data)})
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    assert staff_auth.renewals == 0
    assert staff_auth.signed_out == [refresh_token]  # revoking was tried, once
    assert not {"token", "refresh", "staff"} & set(session_of(client))
    assert client.get("/").headers["Location"].startswith("/sign-in")
    assert "Vous êtes déconnecté" in client.get("/sign-in").data.decode()


def test_without_the_compliance_role_no_review_pages(client, apis):
    sign_in(client, email="salma.operator@hirfa.test")
    for path in ("/reviews", "/reviews/rev_1", "/reviews/documents/art_1/doc_1"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b'data-reason="role"' in response.data
    assert b"/reviews" not in client.get("/").data  # not in the navigation either
    assert not [
        call for call in apis.onboarding.calls if "kyc-reviews" in call.path or "content" in call.path
    ]


def test_the_queue_asks_onboarding_to_filter_by_region_and_age(client, apis):
    sign_in(client)
    html = client.get("/reviews?region=oriental&min_age=7&kind=screening_hit").data.decode()
    call = [c for c in apis.onboarding.calls if c.path == "/v1/kyc-reviews"][-1]
    # Onboarding filters before the page is cut: nothing is dropped from a page here.
    assert (call.params["region"], call.params["min_age_days"], call.params["kind"]) == (
        "oriental",
        7,
        "screening_hit",
    )
    assert "rev_1" in html  # whatever onboarding answers is shown
    assert '<option value="dakhla_oued_ed_dahab"' in html  # every region, not only those on the page
    client.get("/reviews?region=atlantis&min_age=2")
    call = [c for c in apis.onboarding.calls if c.path == "/v1/kyc-reviews"][-1]
    assert (call.params["region"], call.params["min_age_days"]) == (None, None)


def test_the_queue_pages_with_its_filters(client, apis):
    apis.onboarding.on("GET", "/v1/kyc-reviews", {"data": [REVIEW], "has_more": True, "next_cursor": "rev_1"})
    sign_in(client)
    html = client.get("/reviews?region=oriental&after=rev_0").data.decode()
    next_page = re.search(r'id="next-page" href="([^"]+)"|href="([^"]+)" id="next-page"', html)
    link = next_page.group(1) or next_page.group(2)
    assert "after=rev_1" in link and "region=oriental" in link and "rev_0" not in link


def test_the_decision_goes_to_onboarding_with_the_persons_token(client, apis):
    sign_in(client)
    decided = []
    apis.onboarding.on("POST", "/v1/kyc-reviews/rev_1/decision", lambda call: decided.append(call) or REVIEW)
    page = client.get("/reviews/rev_1")
    key = re.search(rb'name="idempotency_key" value="([^"]+)"', page.data).group(1).decode()
    response = client.post(
        "/reviews/rev_1/decision",
        data={
            "csrf_token": csrf_of(page.data),
            "idempotency_key": key,
            "decision": "approve",
            "reason_code": "documents_verified",
            "note": "CIN checked.",
        },
    )
    assert response.status_code == 302
    [call] = decided
    assert call.token == "token-of-stf_amina" and call.idempotency_key == key
    assert call.body == {"decision": "approve", "reason_code": "documents_verified", "note": "CIN checked."}


def test_the_four_eyes_refusal_is_a_clear_message_on_the_case_page(client, apis):
    sign_in(client)
    apis.onboarding.on("POST", "/v1/kyc-reviews/rev_1/decision", ApiError(403, "four_eyes_violation", "no"))
    page = client.get("/reviews/rev_1")
    response = client.post(
        "/reviews/rev_1/decision",
        data={
            "csrf_token": csrf_of(page.data),
            "decision": "approve",
            "reason_code": "documents_verified",
            "note": "ok!",
        },
    )
    html = response.data.decode()
    assert response.status_code == 403 and 'id="case-problem"' in html and "double contrôle" in html
    assert 'id="decision-form"' in html  # still the case page, not an error page


def test_documents_stream_with_no_store(client, apis):
    sign_in(client)
    response = client.get("/reviews/documents/art_1/doc_1")
    assert response.status_code == 200 and response.data == JPEG
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert apis.onboarding.closed_streams == ["/v1/artisans/art_1/documents/doc_1/content"]


def test_a_pdf_shows_in_a_frame_and_a_type_a_browser_could_run_is_never_served(client, apis):
    pdf = b"%PDF-1.7\n" + b"scan" * 500
    apis.onboarding.on(
        "GET",
        "/v1/artisans/art_1/documents",
        {
            "data": [
                {"id": "doc_1", "kind": "id_front", "content_type": "image/jpeg", "status": "accepted"},
                {"id": "doc_2", "kind": "selfie", "content_type": "application/pdf", "status": "accepted"},
            ]
        },
    )
    apis.onboarding.documents["/v1/artisans/art_1/documents/doc_2/content"] = ("application/pdf", pdf)
    apis.onboarding.documents["/v1/artisans/art_1/documents/doc_3/content"] = ("text/html", b"<script>")
    sign_in(client)
    html = client.get("/reviews/rev_1").data.decode()
    assert '<img src="/reviews/documents/art_1/doc_1"' in html
    assert '<iframe src="/reviews/documents/art_1/doc_2"' in html
    shown = client.get("/reviews/documents/art_1/doc_2")
    assert shown.status_code == 200 and shown.data == pdf
    assert shown.headers["Content-Type"] == "application/pdf" and shown.headers["Cache-Control"] == "no-store"
    assert shown.headers["Content-Disposition"] == "inline"
    # Anything but JPEG, PNG or PDF is refused, and the download is closed, not read.
    refused = client.get("/reviews/documents/art_1/doc_3")
    assert refused.status_code == 415 and b"<script>" not in refused.data
    assert refused.headers["Cache-Control"] == "no-store"
    assert apis.onboarding.closed_streams[-2:] == [
        "/v1/artisans/art_1/documents/doc_2/content",
        "/v1/artisans/art_1/documents/doc_3/content",
    ]


def test_the_case_page_shows_the_tier_history_and_the_audit_log_by_name(client, apis):
    apis.onboarding.on(
        "GET",
        "/v1/artisans/art_1/kyc",
        {
            "tier": 2,
            "limits": {},
            "history": [
                {
                    "changed_at": "2026-11-30T09:00:00+00:00",
                    "from_tier": 1,
                    "to_tier": 2,
                    "reason_code": "documents_verified",
                    "actor": "system",
                }
            ],
        },
    )
    apis.onboarding.on(
        "GET",
        "/v1/artisans/art_1/kyc/audit-log",
        {
            "data": [
                {
                    "created_at": "2026-12-01T09:00:00+00:00",
                    "action": "document.downloaded",
                    "actor": "stf_amina",
                    "reason_code": None,
                }
            ],
            "has_more": False,
        },
    )
    sign_in(client)
    html = client.get("/reviews/rev_1").data.decode()
    history = html[html.index('id="history-title"') :]
    assert "1 → 2" in history and "Documents vérifiés" in history and "system" in history
    audit = history[history.index('id="audit-log"') :]
    assert "document.downloaded" in audit and "Amina Compliance (stf_amina)" in audit and "None" not in audit


def test_only_an_id_reaches_a_services_url(client, apis):
    sign_in(client)
    for path in ("/reviews/documents/art_1/..", "/reviews/rev_1%2F..%2F..", "/artisans/art_1%3Fx=1"):
        assert client.get(path).status_code == 404, path
    assert not [call for call in apis.onboarding.calls if ".." in call.path or "?" in call.path]


def test_every_page_sends_a_strict_content_security_policy(client):
    sign_in(client)
    for path in ("/", "/reviews", "/reviews/rev_1", "/sign-in"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["Cache-Control"] == "no-store"
        assert b"<script>" not in response.data and b" on" + b"click=" not in response.data


def test_arabic_is_right_to_left_and_english_is_offered(client):
    page = client.get("/sign-in").data.decode()
    switched = client.post(
        "/language", data={"csrf_token": csrf_of(page.encode()), "lang": "ar", "next": "/sign-in"}
    )
    assert switched.headers["Location"] == "/sign-in"
    arabic = client.get("/sign-in").data.decode()
    assert '<html lang="ar" dir="rtl">' in arabic and "دخول الموظفين" in arabic
    client.post("/language", data={"csrf_token": csrf_of(arabic.encode()), "lang": "en", "next": "/sign-in"})
    assert '<html lang="en" dir="ltr">' in client.get("/sign-in").data.decode()


@pytest.mark.parametrize("accept_language", [None, "en-US,en;q=0.9", "ar", "en"])
def test_french_by_default_whatever_the_browser_asks(client, accept_language):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    page = client.get("/sign-in", headers=headers).data.decode()
    assert '<html lang="fr" dir="ltr">' in page and "Connexion du personnel" in page


def test_sign_in_never_redirects_to_another_site(client):
    token = csrf_of(client.get("/sign-in").data)
    response = client.post(
        "/sign-in?next=//evil.example/",
        data={
            "csrf_token": token,
            "email": "amina.compliance@hirfa.test",
            "password": PASSWORD,
            "totp_code": CODE,
        },
    )
    assert response.headers["Location"] == "/"


def test_the_session_cookie_cannot_be_forged_or_read():
    key = session_key("k" * 40)
    sealed = seal(key, {"token": "secret-token"})
    assert "secret-token" not in sealed and unseal(key, sealed) == {"token": "secret-token"}
    assert unseal(session_key("x" * 40), sealed) is None
    assert unseal(key, sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]) is None
    assert unseal(key, "garbage") is None


def test_reason_codes_are_onboardings():
    from services.onboarding.domain import kyc

    assert reviews.APPROVE_REASONS == kyc.APPROVE_REASONS
    assert set(reviews.REJECT_REASONS) == set(kyc.REJECT_REASONS)
    assert people.DOWNGRADE_REASONS == kyc.DOWNGRADE_REASONS


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_every_message_is_translated_and_compiled(lang):
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    catalogue = read_po((TRANSLATIONS / lang / "LC_MESSAGES/messages.po").open("rb"))
    compiled = read_mo((TRANSLATIONS / lang / "LC_MESSAGES/messages.mo").open("rb"))
    wanted = {message.id for message in template if message.id}
    assert set(labels.LABELS.values()) <= wanted  # the words for the services' codes too
    assert {m.id for m in catalogue if m.id and m.string} == wanted
    assert {m.id: m.string for m in compiled if m.id} == {m.id: m.string for m in catalogue if m.id}


def test_the_catalogue_template_holds_every_message_of_the_console():
    """A message added to a page or a view without extracting the catalogues again would show in
    English whatever the person's language: the template (.pot) must be current with the sources."""
    with (PROJECT_ROOT / "services/console/babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    in_sources = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(PROJECT_ROOT / "services/console"), method_map, options_map
        )
    }
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    in_template = {message.id if isinstance(message.id, str) else message.id[0] for message in template}
    assert in_sources - in_template == set()


def test_production_refuses_development_settings():
    with pytest.raises(ConfigError, match="CONSOLE_SECRET_KEY"):
        ConsoleConfig.from_env({"CONSOLE_ENVIRONMENT": "production"})
    with pytest.raises(ConfigError, match="SECURE_COOKIES"):
        ConsoleConfig.from_env(
            {
                "CONSOLE_ENVIRONMENT": "production",
                "CONSOLE_SECRET_KEY": "s" * 40,
                "CONSOLE_SECURE_COOKIES": "false",
            }
        )
    assert "s" * 40 not in repr(ConsoleConfig(secret_key="s" * 40))


def test_a_rate_chart_is_scaled_to_a_hundred_and_a_missing_rate_reads_as_a_dash():
    chart = charts.bar_chart("t", [("Carte", 75), ("Portefeuille mobile", None)], top=100, unit=" %")
    assert [(bar.length, bar.text) for bar in chart.bars] == [(round(charts.WIDTH * 0.75), "75 %"), (0, "—")]
    # A long label moves the bars along instead of running under them.
    assert chart.label_width > charts.MIN_LABEL_WIDTH
    assert chart.label_width >= charts.LABEL_CHARACTER * len("Portefeuille mobile")
    assert chart.total_width == chart.label_width + charts.WIDTH + charts.VALUE_WIDTH


def test_open_cases_by_age():
    assert charts.by_age([0, 0, 2, 5, 40]) == [("< 1 d", 2), ("1–3 d", 1), ("3–7 d", 1), ("> 7 d", 1)]
    chart = charts.bar_chart("t", [("a", 10), ("b", 5), ("c", 0)])
    assert [bar.length for bar in chart.bars] == [charts.WIDTH, charts.WIDTH // 2, 0]


PAYMENT_STATS = {
    "object": "payment_stats",
    "count": 5,
    "volume": [{"amount": 17_500, "currency": "MAD"}],
    "by_method": [
        {
            "payment_method_type": "card",
            "count": 3,
            "succeeded": 1,
            "failed": 1,
            "success_rate": 0.5,
            "volume": [{"amount": 15_000, "currency": "MAD"}],
        },
        {
            "payment_method_type": "mobile_wallet",
            "count": 2,
            "succeeded": 1,
            "failed": 0,
            "success_rate": 1.0,
            "volume": [{"amount": 2_500, "currency": "MAD"}],
        },
    ],
}


def figures(sent: int, paid: int, failed: int) -> dict:
    def step(count: int) -> dict:
        return {"count": count, "amount": [{"amount": 1000 * count, "currency": "MAD"}] if count else []}

    return {"object": "payout_stats", "sent": step(sent), "paid": step(paid), "failed": step(failed)}


@pytest.fixture
def dashboard_apis(apis, monkeypatch):
    # A Wednesday: on a Monday (in Casablanca), today and this week start at the same midnight and
    # the week's figures are the day's.
    now = dt.datetime(2026, 12, 9, 10, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(dashboard, "current_time", lambda: now)
    apis.payments.on(
        "GET",
        "/v1/back-office/payment-stats",
        lambda call: PAYMENT_STATS if call.params["created_gte"] else ApiError(422, "validation_error"),
    )
    apis.accounts.on(
        "GET",
        "/v1/payout-stats",
        # This week's payouts include today's.
        lambda call: (
            figures(4, 3, 1)
            if dt.datetime.fromisoformat(call.params["since"]) < now - dt.timedelta(days=1)
            else figures(2, 1, 1)
        ),
    )
    apis.onboarding.on(
        "GET",
        "/v1/artisans/kyc-funnel",
        {
            "object": "kyc_funnel",
            "tiers": [{"tier": t, "count": c} for t, c in enumerate((12, 7, 4, 3))],
            "rejected": 1,
            "suspended": 0,
        },
    )
    apis.accounts.on(
        "GET",
        "/v1/ledger/cases",
        lambda call: {
            "data": [{"created_at": now.isoformat()}] if call.params["status"] == "open" else [],
            "has_more": False,
        },
    )
    old = (now - dt.timedelta(days=10)).isoformat()
    apis.accounts.on(
        "GET",
        "/v1/reconciliation/cases",
        lambda call: {
            "data": [{"created_at": old}] * (2 if call.params["state"] == "open" else 1),
            "has_more": False,
        },
    )
    return apis


def test_the_dashboard_draws_the_services_figures(client, dashboard_apis):
    sign_in(client, email="salma.operator@hirfa.test")
    html = client.get("/").data.decode()
    # Payments: the count, the volume in French, the success rate per method as SVG bars.
    assert "5 paiements" in html and "175,00" in html
    assert "Carte: 50 %" in html and "Portefeuille mobile: 100 %" in html
    # The KYC funnel, tier 0 to 3.
    assert "Niveau 0: 12" in html and "Niveau 3: 3" in html and "Rejetés : 1" in html
    # Payouts today, then this week: never all time.
    assert "Envoyés: 2; Payés: 1; Échoués: 1" in html and "Envoyés: 4; Payés: 3; Échoués: 1" in html
    # Open cases by age: one ledger case today, three reconciliation cases ten days old.
    assert "&lt; 1 j: 1" in html and "&gt; 7 j: 3" in html
    assert "Dossiers du grand livre : 1" in html and "Dossiers de rapprochement : 3" in html
    # Today and this week start at Moroccan midnight (and Monday), with their offset.
    [today, week] = [c.params["created_gte"] for c in dashboard_apis.payments.calls]
    assert today.endswith("T00:00:00+01:00") and week <= today
    assert dt.datetime.fromisoformat(week).weekday() == 0


def test_the_dashboard_of_a_compliance_officer_has_no_payment_cards(client, dashboard_apis):
    dashboard_apis.onboarding.on("GET", "/v1/kyc-reviews", {"data": [REVIEW], "has_more": False})
    sign_in(client)
    html = client.get("/").data.decode()
    assert 'id="payments-today"' not in html and 'id="payouts"' not in html
    assert dashboard_apis.payments.calls == [] and dashboard_apis.accounts.calls == []
    assert "Niveau 1: 7" in html and "Revues KYC : 1" in html


def test_periods_are_moroccan_days_and_weeks():
    from services.console.web.dashboard import periods

    # 23:30 UTC on Sunday 2026-12-06 is already Monday 00:30 in Casablanca (UTC+1).
    starts = periods(dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.UTC))
    assert starts["today"].isoformat() == "2026-12-07T00:00:00+01:00"
    assert starts["week"] == starts["today"]


def test_the_payments_page_lists_what_needs_attention_across_marketplaces(client, apis):
    payment = {
        "id": "pay_1",
        "marketplace_id": "cli_souk",
        "artisan_id": "art_1",
        "amount": {"amount": 12_000, "currency": "MAD"},
        "status": "failed",
        "reversal_status": "failed",
        "payment_method_type": "card",
        "waiting_since": "2026-12-06T09:00:00+00:00",
        "gateway_checked_at": "2026-12-06T09:30:00+00:00",
        "updated_at": "2026-12-06T09:00:00+00:00",
    }
    apis.payments.on(
        "GET",
        "/v1/back-office/reversals-to-review",
        {"data": [payment], "has_more": True, "next_cursor": "pay_1"},
    )
    apis.payments.on(
        "GET",
        "/v1/back-office/stuck-payments",
        {
            "data": [{**payment, "id": "pay_2", "status": "processing"}],
            "has_more": False,
            "next_cursor": None,
        },
    )
    dispute = {
        "id": "dp_1",
        "marketplace_id": "cli_other",
        "payment_id": "pay_3",
        "amount": {"amount": 500, "currency": "MAD"},
        "reason": "fraudulent",
        "opened_at": "2026-12-06T09:00:00+00:00",
    }
    apis.payments.on(
        "GET", "/v1/back-office/disputes", {"data": [dispute], "has_more": False, "next_cursor": None}
    )
    apis.payments.on(
        "GET",
        "/v1/back-office/webhook-failures",
        {
            "data": [{"marketplace_id": "cli_souk", "failed": 2, "retrying": 5, "last_attempt_at": None}],
            "has_more": False,
            "next_cursor": None,
        },
    )
    sign_in(client, email="salma.operator@hirfa.test")
    html = client.get("/payments?stuck_after=pay_0").data.decode()
    assert 'data-payment="pay_1"' in html and "La passerelle a refusé de la rendre" in html
    assert 'data-payment="pay_2"' in html and 'data-dispute="dp_1"' in html and "cli_other" in html
    assert '<td class="failed">2</td><td class="retrying">5</td>' in html
    assert "reversals_after=pay_1" in html  # that list has more
    calls = {c.path: c.params for c in apis.payments.calls}
    assert calls["/v1/back-office/stuck-payments"]["starting_after"] == "pay_0"
    response = client.get("/payments")
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert all(c.token == "token-of-stf_salma" for c in apis.payments.calls)


def test_the_payments_page_is_for_operators(client, apis):
    sign_in(client)
    response = client.get("/payments")
    assert response.status_code == 403 and b'data-reason="role"' in response.data
    assert apis.payments.calls == []


def test_a_part_the_roles_do_not_cover_says_so_in_place(client, apis):
    sign_in(client)
    apis.accounts.on("GET", "/v1/artisans/art_1/balance", ApiError(403, "forbidden"))
    html = client.get("/artisans/art_1").data.decode()
    assert 'data-unavailable="forbidden"' in html and "Youssef Amrani" in html
    assert 'action="/artisans/art_1/downgrade"' in html  # compliance may downgrade


def test_rescreening_goes_to_onboarding_with_the_forms_key_and_says_what_it_found(client, apis):
    screenings = []

    def screened(call):
        screenings.append(call)
        return {
            "id": "scr_1",
            "outcome": "hit",
            "list_version": "2026-11-30",
            "review_id": "rev_hit",
            "kyc_tier": 0,
        }

    apis.onboarding.on("POST", "/v1/artisans/art_1/screenings", screened)
    sign_in(client)
    page = client.get("/artisans/art_1")
    html = page.data.decode()
    assert 'id="rescreen-form"' in html and "hirfa onboarding screening rescreen" not in html
    key = re.search(r'name="rescreen_key" value="([^"]+)"', html).group(1)
    response = client.post(
        "/artisans/art_1/rescreen", data={"csrf_token": csrf_of(page.data), "rescreen_key": key}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/artisans/art_1"
    [call] = screenings
    assert call.token == "token-of-stf_amina" and call.idempotency_key == key
    after = client.get("/artisans/art_1").data.decode()
    assert (
        'data-outcome="hit"' in after and "correspondance possible" in after and "/reviews/rev_hit" in after
    )
    assert 'id="rescreen-notice"' not in client.get("/artisans/art_1").data.decode()  # said once


def test_a_rescreening_without_a_list_is_a_message_on_the_profile(client, apis):
    apis.onboarding.on(
        "POST", "/v1/artisans/art_1/screenings", ApiError(409, "screening_list_unavailable", "no list")
    )
    sign_in(client)
    page = client.get("/artisans/art_1")
    response = client.post(
        "/artisans/art_1/rescreen", data={"csrf_token": csrf_of(page.data), "rescreen_key": "k"}
    )
    html = response.data.decode()
    assert response.status_code == 409 and "Aucune liste de sanctions" in html and "Youssef Amrani" in html


def test_rescreening_is_for_compliance_and_needs_the_csrf_token(client, apis):
    sign_in(client)
    assert client.post("/artisans/art_1/rescreen", data={"rescreen_key": "k"}).status_code == 403
    client.post("/sign-out", data={"csrf_token": csrf_of(client.get("/").data)})
    sign_in(client, email="salma.operator@hirfa.test")
    token = csrf_of(client.get("/").data)
    assert client.post("/artisans/art_1/rescreen", data={"csrf_token": token}).status_code == 403
    assert not [call for call in apis.onboarding.calls if call.method == "POST"]


def test_the_profile_lists_the_artisans_devices(client, apis):
    devices = [
        {
            "device_id": "dev_phone_1",
            "first_signed_in_at": "2026-12-01T09:00:00+00:00",
            "last_signed_in_at": "2026-12-05T09:00:00+00:00",
            "last_refreshed_at": None,
            "signed_in": True,
            "revoked_at": None,
        },
        {
            "device_id": "dev_lost",
            "first_signed_in_at": "2026-11-01T09:00:00+00:00",
            "last_signed_in_at": "2026-11-02T09:00:00+00:00",
            "last_refreshed_at": None,
            "signed_in": False,
            "revoked_at": "2026-11-03T09:00:00+00:00",
        },
    ]
    apis.onboarding.on("GET", "/v1/artisans/art_1/devices", {"data": devices})
    sign_in(client, email="salma.operator@hirfa.test")
    html = client.get("/artisans/art_1").data.decode()
    assert 'data-device="dev_phone_1"' in html and "Connecté" in html
    assert 'data-device="dev_lost"' in html and "Déconnecté par Hirfa le" in html


def mad(amount: int) -> dict:
    return {"amount": amount, "currency": "MAD"}


def test_the_profile_shows_tiers_bank_accounts_balance_statement_and_payouts(client, apis):
    onboarding, accounts = apis.onboarding, apis.accounts
    onboarding.on(
        "GET",
        "/v1/artisans/art_1/kyc",
        {
            "tier": 2,
            "limits": {"balance_cap": mad(2_000_000)},
            "history": [
                {
                    "changed_at": "2026-12-01T09:00:00+00:00",
                    "from_tier": 1,
                    "to_tier": 2,
                    "reason_code": "documents_verified",
                    "actor": "stf_amina",
                }
            ],
        },
    )
    onboarding.on(
        "GET",
        "/v1/artisans/art_1/bank-accounts",
        {
            "data": [
                {
                    "id": "ba_1",
                    "partner_bank": "cih",
                    "bank_code": "230",
                    "rib": "230780000000000000000012",
                    "status": "linked",
                    "is_default": True,
                }
            ]
        },
    )
    accounts.on(
        "GET",
        "/v1/artisans/art_1/balance",
        {"artisan_id": "art_1", "available": mad(45_000), "pending": mad(9_000), "cap": mad(2_000_000)},
    )
    accounts.on(
        "GET",
        "/v1/artisans/art_1/transactions",
        {
            "data": [
                {
                    "id": "sl_1",
                    "posted_at": "2026-12-02T10:00:00+00:00",
                    "description": "Commande 4412",
                    "amount": mad(9_000),
                }
            ],
            "has_more": False,
        },
    )
    accounts.on(
        "GET",
        "/v1/payouts",
        {
            "data": [
                {
                    "id": "po_1",
                    "created_at": "2026-12-03T10:00:00+00:00",
                    "amount": mad(30_000),
                    "status": "paid",
                }
            ],
            "has_more": False,
        },
    )
    onboarding.on(
        "GET",
        "/v1/staff/stf_amina",
        {"object": "staff_member", "id": "stf_amina", "name": "Amina Compliance", "roles": ["compliance"]},
    )
    sign_in(client, email="salma.operator@hirfa.test")
    html = client.get("/artisans/art_1").data.decode()
    # Tiers and their history, by name.
    tiers = html[html.index('id="tiers-title"') : html.index('id="banks-title"')]
    assert "20\u202f000,00" in tiers and "1 → 2" in tiers and "Documents vérifiés" in tiers
    assert "Amina Compliance (stf_amina)" in tiers
    # The bank account, the balance (its parts named in French) and the statement, the payouts.
    banks = html[html.index('id="banks-title"') : html.index('id="balance-title"')]
    assert "cih" in banks and "230780000000000000000012" in banks and "par défaut" in banks
    assert "Rattaché" in banks and "linked" not in banks  # its status in words, not the API's code
    balance = html[html.index('id="balance-title"') : html.index('id="payouts-title"')]
    assert "450,00" in balance and "90,00" in balance and "Commande 4412" in balance
    assert ">Disponible<" in balance and ">En attente<" in balance and ">Plafond<" in balance
    payouts = html[html.index('id="payouts-title"') : html.index('id="devices-title"')]
    assert "300,00" in payouts and "Versé" in payouts and "paid" not in payouts
    # Each part asked of its service with the person's own token, the payouts for this artisan.
    [payouts_call] = [c for c in accounts.calls if c.path == "/v1/payouts"]
    assert payouts_call.params["artisan_id"] == "art_1"
    assert {c.token for c in accounts.calls + onboarding.calls} == {"token-of-stf_salma"}


def test_a_downgrade_goes_to_onboarding_with_its_reason_and_a_refusal_is_a_message_on_the_profile(
    client, apis
):
    downgrades = []
    apis.onboarding.on(
        "POST",
        "/v1/artisans/art_1/kyc/downgrades",
        lambda call: downgrades.append(call) or {"artisan_id": "art_1", "tier": 1, "kyc_version": 4},
    )
    sign_in(client)
    page = client.get("/artisans/art_1")
    html = page.data.decode()
    # Tier 2: the tiers below it, and onboarding's downgrade reasons in words.
    assert '<option value="0">0</option><option value="1">1</option></select>' in html
    assert "Document falsifié" in html
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    form = {"csrf_token": csrf_of(page.data), "idempotency_key": key, "tier": "1", "note": " Faux CIN. "}
    response = client.post("/artisans/art_1/downgrade", data={**form, "reason_code": "document_forged"})
    assert response.status_code == 302 and response.headers["Location"] == "/artisans/art_1"
    [call] = downgrades
    assert (call.token, call.idempotency_key) == ("token-of-stf_amina", key)
    assert call.body == {"tier": 1, "reason_code": "document_forged", "note": "Faux CIN."}
    assert "Rétrogradation enregistrée." in client.get("/artisans/art_1").data.decode()

    # Onboarding's refusal is said on the profile, with a new key for the next attempt.
    apis.onboarding.on(
        "POST",
        "/v1/artisans/art_1/kyc/downgrades",
        ApiError(422, "validation_error", "reason_code: Must be one of …"),
    )
    refused = client.post("/artisans/art_1/downgrade", data={**form, "reason_code": "bored"})
    html = refused.data.decode()
    assert refused.status_code == 422 and "La rétrogradation a été refusée : reason_code" in html
    assert "Youssef Amrani" in html and f'value="{key}"' not in html

    # An operator may not downgrade: no form, and a post is refused before reaching onboarding.
    client.post("/sign-out", data={"csrf_token": csrf_of(client.get("/").data)})
    sign_in(client, email="salma.operator@hirfa.test")
    page = client.get("/artisans/art_1")
    assert 'action="/artisans/art_1/downgrade"' not in page.data.decode()
    attempt = client.post(
        "/artisans/art_1/downgrade", data={**form, "csrf_token": csrf_of(page.data), "reason_code": "other"}
    )
    assert attempt.status_code == 403 and len(posts(apis.onboarding)) == 2


def test_a_screening_hit_shows_the_list_entry_beside_the_artisan(client, apis):
    hit = {
        **REVIEW,
        "id": "rev_hit",
        "kind": "screening_hit",
        "requested_tier": None,
        "submitted_by": "screening",
        "details": {
            "list_version": "2026-11-30",
            "matches": [
                {
                    "reference": "QDi.042",
                    "list_type": "sanctions",
                    "entry_name": "AMRANI, Youssef",
                    "matched_name": "youssef amrani",
                    "score": 97.5,
                }
            ],
        },
    }
    apis.onboarding.on("GET", "/v1/kyc-reviews/rev_hit", hit)
    sign_in(client)
    html = client.get("/reviews/rev_hit").data.decode()
    assert "AMRANI, Youssef" in html and "97.5" in html and "youssef amrani" in html and "2026-11-30" in html
    assert '<td class="list-reference">QDi.042</td>' in html
    assert "Youssef Amrani" in html  # the artisan's identity on the same page
    assert "Alerte de filtrage" in html and "Faux positif" in html  # codes in the person's language


def test_a_decided_case_links_its_documents_instead_of_downloading_them_again(client, apis):
    apis.onboarding.on(
        "GET", "/v1/kyc-reviews/rev_1", {**REVIEW, "status": "approved", "decided_by": "stf_x"}
    )
    sign_in(client)
    html = client.get("/reviews/rev_1").data.decode()
    assert 'class="view-document"' in html and 'class="document"' not in html
    assert 'id="decision-form"' not in html


# --- the ledger's adjustments and reconciliation, for operators ---------------------------------------

RECON_CASE = {
    "id": "rc_1",
    "kind": "missing_in_ledger",
    "state": "open",
    "amount": {"amount": 900, "currency": "MAD"},
    "object_id": "pay_unknown",
    "bank_code": "145",
    "gateway": "m2t",
    "run_id": "rr_1",
    "assignee": None,
    "resolution": None,
    "created_at": "2026-12-06T09:00:00+00:00",
    "updated_at": "2026-12-06T09:00:00+00:00",
    "items": [],
    "history": [{"action": "opened", "actor": "system", "detail": {}, "at": "2026-12-06T09:00:00+00:00"}],
    "notes": [],
}
PENDING = {
    "id": "adj_1",
    "kind": "manual",
    "status": "pending_approval",
    "reason": "large fix",
    "amount": {"amount": 250_000, "currency": "MAD"},
    "lines": [],
    "proposed_by": "stf_salma",
    "proposed_at": "2026-12-06T09:00:00+00:00",
}
LINES_FORM = {
    "line-0-owner_type": "platform",
    "line-0-kind": "bank:145",
    "line-0-side": "debit",
    "line-0-amount": "12,50",
    "line-1-owner_type": "platform",
    "line-1-kind": "revenue",
    "line-1-side": "credit",
    "line-1-amount": "12.50",
}


@pytest.fixture
def operator(client, apis):
    """Salma, signed in, with accounts answering the ledger's and reconciliation's reads."""
    accounts = apis.accounts
    accounts.on("GET", "/v1/ledger/adjustments", {"data": [PENDING], "has_more": False})
    accounts.on("GET", "/v1/reconciliation/cases", {"data": [RECON_CASE], "has_more": False})
    accounts.on("GET", "/v1/reconciliation/cases/rc_1", RECON_CASE)
    sign_in(client, email="salma.operator@hirfa.test")
    return client


def posts(api) -> list:
    return [call for call in api.calls if call.method == "POST"]


def test_an_adjustment_goes_to_accounts_in_signed_minor_units_with_the_forms_key(operator, apis):
    apis.accounts.on("POST", "/v1/ledger/adjustments", {**PENDING, "status": "posted"})
    page = operator.get("/ledger/adjustments/new?case_id=lc_1")
    html = page.data.decode()
    assert "lc_1" in html  # the case it is about, in the reason
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    response = operator.post(
        "/ledger/adjustments",
        data={
            "csrf_token": csrf_of(page.data),
            "idempotency_key": key,
            "kind": "manual",
            "reason": "fix",
            **LINES_FORM,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/ledger/adjustments"
    [call] = posts(apis.accounts)
    assert call.token == "token-of-stf_salma" and call.idempotency_key == key
    assert call.body == {
        "reason": "fix",
        "lines": [
            {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": 1250},
            {"owner_type": "platform", "owner_id": "platform", "kind": "revenue", "amount": -1250},
        ],
    }
    assert "L’ajustement est passé" in operator.get("/ledger/adjustments").data.decode()


def test_a_reversal_names_its_entry_and_a_bad_amount_is_said_before_anything_is_sent(operator, apis):
    apis.accounts.on("POST", "/v1/ledger/adjustments", {**PENDING, "kind": "reversal"})
    token = csrf_of(operator.get("/ledger/adjustments/new").data)
    bad = operator.post(
        "/ledger/adjustments",
        data={
            "csrf_token": token,
            "kind": "manual",
            "reason": "fix",
            **LINES_FORM,
            "line-1-amount": "12.505",
        },
    )
    assert bad.status_code == 422 and 'id="adjustment-problem"' in bad.data.decode()
    assert 'value="12.505"' in bad.data.decode()  # the form comes back as typed
    assert posts(apis.accounts) == []
    reversed_ = operator.post(
        "/ledger/adjustments",
        data={
            "csrf_token": token,
            "kind": "reversal",
            "reason": "double capture",
            "reverses_entry_id": "je_9",
        },
    )
    assert reversed_.status_code == 302
    assert posts(apis.accounts)[0].body == {"reason": "double capture", "reverses_entry_id": "je_9"}
    assert "attend l’approbation" in operator.get("/ledger/adjustments").data.decode()


def test_approving_ones_own_adjustment_is_refused_with_a_clear_message(operator, apis):
    apis.accounts.on(
        "POST", "/v1/ledger/adjustments/adj_1/approve", ApiError(403, "four_eyes_required", "no")
    )
    page = operator.get("/ledger/adjustments")
    assert 'id="adjustment-adj_1"' in page.data.decode()
    response = operator.post("/ledger/adjustments/adj_1/approve", data={"csrf_token": csrf_of(page.data)})
    html = response.data.decode()
    assert response.status_code == 403 and 'id="adjustment-problem"' in html and "double contrôle" in html
    assert 'id="pending-adjustments"' in html  # still the list, not an error page
    rejected = []
    apis.accounts.on(
        "POST", "/v1/ledger/adjustments/adj_1/reject", lambda call: rejected.append(call) or PENDING
    )
    operator.post("/ledger/adjustments/adj_1/reject", data={"csrf_token": csrf_of(page.data), "note": "no"})
    assert rejected[0].body == {"note": "no"}


def test_the_ledger_page_lists_reserves_below_zero(operator, apis):
    apis.accounts.on("GET", "/v1/ledger/cases", {"data": [], "has_more": False})
    apis.accounts.on("GET", "/v1/ledger/integrity", {"ok": True, "accounts_checked": 1, "entries_checked": 1})
    reserve = {
        "account_id": "acc_1",
        "marketplace_id": "mkt_1",
        "balance": {"amount": -500, "currency": "MAD"},
    }
    apis.accounts.on("GET", "/v1/ledger/reserves", {"data": [reserve], "has_more": False})
    html = operator.get("/ledger").data.decode()
    assert "mkt_1" in html and "-5,00" in html
    [call] = [c for c in apis.accounts.calls if c.path == "/v1/ledger/reserves"]
    assert call.params["below_zero"] == "true"


def test_a_case_is_written_off_with_lines_and_shows_written_off(operator, apis):
    state = {"case": RECON_CASE}

    def write_off(call):
        state["case"] = {**RECON_CASE, "state": "written_off", "resolution": {"adjustment_id": "adj_2"}}
        return state["case"]

    apis.accounts.on("GET", "/v1/reconciliation/cases/rc_1", lambda call: state["case"])
    apis.accounts.on("POST", "/v1/reconciliation/cases/rc_1/write-off", write_off)
    page = operator.get("/reconciliation/cases/rc_1")
    html = page.data.decode()
    assert 'id="write-off-form"' in html and "Manquant dans le grand livre" in html
    response = operator.post(
        "/reconciliation/cases/rc_1/write-off",
        data={
            "csrf_token": csrf_of(page.data),
            "idempotency_key": "k1",
            "reason": "test charge",
            **LINES_FORM,
        },
    )
    assert response.status_code == 302
    [call] = posts(apis.accounts)
    assert call.path == "/v1/reconciliation/cases/rc_1/write-off" and call.idempotency_key == "k1"
    assert call.body["reason"] == "test charge" and [line["amount"] for line in call.body["lines"]] == [
        1250,
        -1250,
    ]
    after = operator.get("/reconciliation/cases/rc_1").data.decode()
    assert 'data-state="written_off"' in after and "Passé en perte" in after
    assert 'id="write-off-form"' not in after  # a final case takes no more actions


def test_a_write_off_above_the_four_eyes_amount_waits_and_the_case_page_links_its_approval(operator, apis):
    waiting = {**PENDING, "id": "adj_9", "case_id": "rc_1"}
    state = {"pending": []}

    def write_off(call):
        state["pending"] = [waiting]  # accounts keeps the case open until another operator approves
        return RECON_CASE

    apis.accounts.on("POST", "/v1/reconciliation/cases/rc_1/write-off", write_off)
    apis.accounts.on(
        "GET", "/v1/ledger/adjustments", lambda call: {"data": state["pending"], "has_more": False}
    )
    page = operator.get("/reconciliation/cases/rc_1")
    assert 'id="write-off-waiting"' not in page.data.decode()
    response = operator.post(
        "/reconciliation/cases/rc_1/write-off",
        data={"csrf_token": csrf_of(page.data), "idempotency_key": "k2", "reason": "large", **LINES_FORM},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/reconciliation/cases/rc_1"
    html = operator.get("/reconciliation/cases/rc_1").data.decode()
    assert "attend l’approbation d’un autre opérateur (règle du double contrôle)" in html
    waiting_notice = html[html.index('id="write-off-waiting"') :]
    assert 'href="/ledger/adjustments"' in waiting_notice and "adj_9" in waiting_notice
    assert 'data-state="open"' in html
    [asked] = [
        c for c in apis.accounts.calls if c.path == "/v1/ledger/adjustments" and c.params.get("case_id")
    ][-1:]
    assert (asked.params["case_id"], asked.params["status"]) == ("rc_1", "pending_approval")


def test_assign_note_and_resolve_send_what_accounts_expects(operator, apis):
    sent = []
    for action in ("assign", "note", "resolve"):
        apis.accounts.on(
            "POST", f"/v1/reconciliation/cases/rc_1/{action}", lambda call: sent.append(call) or RECON_CASE
        )
    token = csrf_of(operator.get("/reconciliation/cases/rc_1").data)
    operator.post("/reconciliation/cases/rc_1/assign", data={"csrf_token": token, "assignee": "stf_salma"})
    operator.post("/reconciliation/cases/rc_1/note", data={"csrf_token": token, "note": "asked M2T"})
    operator.post(
        "/reconciliation/cases/rc_1/resolve", data={"csrf_token": token, "note": "in run 2", "run_id": "rr_2"}
    )
    assert [call.body for call in sent] == [
        {"assignee": "stf_salma"},
        {"note": "asked M2T"},
        {"note": "in run 2", "run_id": "rr_2"},
    ]
    empty = operator.post("/reconciliation/cases/rc_1/note", data={"csrf_token": token, "note": " "})
    assert empty.status_code == 422 and len(sent) == 3
    apis.accounts.on(
        "POST", "/v1/reconciliation/cases/rc_1/resolve", ApiError(409, "case_state_conflict", "final")
    )
    refused = operator.post("/reconciliation/cases/rc_1/resolve", data={"csrf_token": token, "note": "x"})
    assert refused.status_code == 409 and 'id="case-problem"' in refused.data.decode()


def test_case_filters_reach_accounts_and_the_three_way_view_shows_the_legs(operator, apis):
    html = operator.get("/reconciliation/cases?state=open&kind=bogus&bank_code=145").data.decode()
    assert "rc_1" in html
    call = [c for c in apis.accounts.calls if c.path == "/v1/reconciliation/cases"][-1]
    assert (
        call.params["state"] == "open" and call.params["kind"] is None and call.params["bank_code"] == "145"
    )
    view = {
        "object_id": "pay_1",
        "fully_matched": False,
        "breaks": [{}],
        "legs": {
            "ledger": [
                {
                    "entry_id": "je_1",
                    "cause": "payment",
                    "posting_key": "k",
                    "posted_at": "2026-12-06T09:00:00+00:00",
                }
            ],
            "acquirer": [],
            "bank": [],
        },
    }
    apis.accounts.on("GET", "/v1/reconciliation/items", view)
    html = operator.get("/reconciliation/three-way?object_id=pay_1").data.decode()
    assert "je_1" in html and 'id="three-way-result"' in html
    assert [c.params for c in apis.accounts.calls if c.path == "/v1/reconciliation/items"] == [
        {"object_id": "pay_1"}
    ]


def test_a_run_page_asks_accounts_for_that_runs_cases_a_page_at_a_time(operator, apis):
    run = {
        "id": "rr_1",
        "source": "gateway_settlement",
        "gateway": "m2t",
        "bank_code": "145",
        "format": "csv",
        "day": "2026-12-06",
        "status": "completed",
        "closing_balance": None,
        "expected_balance": None,
        "currency": None,
        "file": None,
        "progress": {"lines_total": 1, "lines_done": 1, "percent": 100},
        "counts": {"missing_in_ledger": 1},
        "requested_by": "stf_salma",
        "created_at": "2026-12-06T09:00:00+00:00",
        "completed_at": "2026-12-06T09:00:01+00:00",
    }
    apis.accounts.on("GET", "/v1/reconciliation/runs/rr_1", run)
    apis.accounts.on(
        "GET",
        "/v1/reconciliation/cases",
        lambda call: {
            "data": [{**RECON_CASE, "id": "rc_2" if call.params.get("starting_after") else "rc_1"}],
            "has_more": not call.params.get("starting_after"),
            "next_cursor": None if call.params.get("starting_after") else "rc_1",
        },
    )
    first = operator.get("/reconciliation/runs/rr_1").data.decode()
    next_page = 'href="/reconciliation/runs/rr_1?after=rc_1"'
    assert 'data-case="rc_1"' in first and next_page in first
    second = operator.get("/reconciliation/runs/rr_1?after=rc_1").data.decode()
    assert 'data-case="rc_2"' in second and 'data-case="rc_1"' not in second and next_page not in second
    asked = [c.params for c in apis.accounts.calls if c.path == "/v1/reconciliation/cases"]
    assert asked == [
        {"run_id": "rr_1", "limit": 50, "starting_after": None},
        {"run_id": "rr_1", "limit": 50, "starting_after": "rc_1"},
    ]


def test_forged_ledger_and_case_forms_are_refused(operator, apis):
    for path in (
        "/ledger/adjustments",
        "/ledger/adjustments/adj_1/approve",
        "/reconciliation/cases/rc_1/write-off",
        "/reconciliation/cases/rc_1/resolve",
        "/ledger/cases/lc_2/resolve",
    ):
        forged = operator.post(
            path, data={"kind": "reversal", "reason": "x", "reverses_entry_id": "je_1", "note": "x"}
        )
        assert forged.status_code == 403 and b'data-reason="csrf"' in forged.data, path
    assert posts(apis.accounts) == []


def test_without_the_operator_role_no_ledger_actions_or_reconciliation(client, apis):
    sign_in(client)  # Amina: compliance only
    token = csrf_of(client.get("/").data)
    for path in (
        "/ledger/adjustments",
        "/ledger/adjustments/new",
        "/ledger/cases/lc_1",
        "/reconciliation",
        "/reconciliation/cases/rc_1",
        "/reconciliation/three-way",
    ):
        response = client.get(path)
        assert response.status_code == 403 and b'data-reason="role"' in response.data, path
    for path in (
        "/ledger/adjustments",
        "/ledger/adjustments/adj_1/approve",
        "/ledger/cases/lc_1/resolve",
        "/reconciliation/cases/rc_1/write-off",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert b"/reconciliation" not in client.get("/").data
    assert apis.accounts.calls == [] or all(
        "reconciliation" not in c.path and "adjustments" not in c.path for c in apis.accounts.calls
    )


def test_case_kinds_and_states_are_accounts():
    from services.accounts.domain import reconciliation as domain

    assert reconciliation.CASE_KINDS == domain.CASE_KINDS
    assert reconciliation.CASE_STATES == tuple(str(state) for state in domain.CaseState)


def test_amounts_are_read_exactly_into_minor_units(config, apis, staff_auth):
    from services.console.web.entry_forms import FormProblem, minor_units

    assert [minor_units(text) for text in ("0.5", "1,05", "12.50", "1 000")] == [50, 105, 1250, 100_000]
    with create_app(config, apis=apis, staff_auth=staff_auth).test_request_context():
        for bad in ("-1", "1.234", "12.5e3", ""):
            with pytest.raises(FormProblem):
                minor_units(bad)


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\r\nX: y"])
def test_sign_in_never_follows_a_next_a_browser_reads_as_another_site_or_a_header_cannot_carry(
    client, target
):
    token = csrf_of(client.get("/sign-in").data)
    response = client.post(
        "/sign-in",
        query_string={"next": target},
        data={
            "csrf_token": token,
            "email": "amina.compliance@hirfa.test",
            "password": PASSWORD,
            "totp_code": CODE,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_proposal_whose_outcome_is_unknown_keeps_its_key_and_is_a_bad_gateway(operator, apis):
    def times_out(call):
        raise ApiError(0, "service_unavailable", "accounts did not answer")

    apis.accounts.on("POST", "/v1/ledger/adjustments", times_out)
    page = operator.get("/ledger/adjustments/new")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.data.decode()).group(1)
    form = {
        "csrf_token": csrf_of(page.data),
        "idempotency_key": key,
        "kind": "manual",
        "reason": "fix",
        **LINES_FORM,
    }
    response = operator.post("/ledger/adjustments", data=form)
    # Sent again, the same key: accounts applies it once, whether or not the first one arrived.
    assert response.status_code == 502
    assert re.search(r'name="idempotency_key" value="([^"]+)"', response.data.decode()).group(1) == key

    apis.accounts.on("POST", "/v1/ledger/adjustments", ApiError(422, "unbalanced_entry"))
    refused = operator.post("/ledger/adjustments", data=form)
    assert refused.status_code == 422
    assert re.search(r'name="idempotency_key" value="([^"]+)"', refused.data.decode()).group(1) != key


# --- ledger cases, platform accounts, people's names ------------------------------------------------

WAITING_CASE = {
    "id": "lc_1",
    "object": "ledger_case",
    "kind": "tier_cap_exceeded",
    "status": "waiting",
    "cause": "payment",
    "cause_id": "pay_1",
    "event_id": "evt_1",
    "artisan_id": "art_1",
    "details": {"cap": 20_000, "total_after": 35_000},
    "created_at": "2026-12-06T09:00:00+00:00",
    "parked_event": {
        "event_id": "evt_1",
        "event_type": "payments.payment.succeeded",
        "waiting_for": "tier_cap_exceeded",
        "attempts": 3,
        "parked_at": "2026-12-06T09:00:00+00:00",
        "last_attempt_at": "2026-12-06T09:30:00+00:00",
    },
    "resolution": None,
    "resolved_at": None,
    "resolved_by": None,
}
OPEN_CASE = {
    **WAITING_CASE,
    "id": "lc_2",
    "kind": "reserve_below_zero",
    "status": "open",
    "cause": "reserve",
    "cause_id": "mkt_1",
    "artisan_id": None,
    "details": {"balance": {"amount": -1_500, "currency": "MAD"}},
    "parked_event": None,
}


@pytest.fixture
def ledger_cases(apis):
    state = {"lc_1": WAITING_CASE, "lc_2": OPEN_CASE}
    apis.accounts.on("GET", r"/v1/ledger/cases/(?P<case_id>lc_\w+)", lambda call, case_id: state[case_id])
    apis.accounts.on("GET", "/v1/ledger/adjustments", {"data": [], "has_more": False})
    return state


def test_a_ledger_case_page_shows_the_parked_event_and_a_waiting_case_takes_no_note(
    operator, apis, ledger_cases
):
    html = operator.get("/ledger/cases/lc_1").data.decode()
    assert 'data-status="waiting"' in html and "payments.payment.succeeded" in html and "evt_1" in html
    assert "Au-dessus du plafond de l’artisan" in html
    assert 'id="takes-the-place"' in html  # an adjustment would release the parked event: said first
    assert 'id="resolve-form"' not in html and 'id="no-note-resolve"' in html
    assert 'href="/ledger/adjustments/new?case_id=lc_1"' in html


def test_an_operator_resolves_an_open_case_with_a_note(operator, apis, ledger_cases):
    def resolve(call):
        ledger_cases["lc_2"] = {
            **OPEN_CASE,
            "status": "resolved",
            "resolution": "noted",
            "resolved_at": "2026-12-06T10:00:00+00:00",
            "resolved_by": "stf_salma",
            "details": {**OPEN_CASE["details"], "note": call.body["note"]},
        }
        return ledger_cases["lc_2"]

    apis.accounts.on("POST", "/v1/ledger/cases/lc_2/resolve", resolve)
    page = operator.get("/ledger/cases/lc_2")
    html = page.data.decode()
    assert 'id="resolve-form"' in html and "-15,00" in html
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    response = operator.post(
        "/ledger/cases/lc_2/resolve",
        data={"csrf_token": csrf_of(page.data), "idempotency_key": key, "note": "Top-up on Monday."},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/ledger/cases/lc_2"
    [call] = posts(apis.accounts)
    assert (call.token, call.body, call.idempotency_key) == (
        "token-of-stf_salma",
        {"note": "Top-up on Monday."},
        key,
    )
    after = operator.get("/ledger/cases/lc_2").data.decode()
    assert 'data-status="resolved"' in after and "Top-up on Monday." in after
    assert "Salma Operator (stf_salma)" in after  # who, by name
    assert 'id="resolve-form"' not in after


def test_a_resolve_the_ledger_refuses_is_a_message_on_the_case_page(operator, apis, ledger_cases):
    apis.accounts.on("POST", "/v1/ledger/cases/lc_2/resolve", ApiError(409, "ledger_case_resolved", "x"))
    page = operator.get("/ledger/cases/lc_2")
    response = operator.post(
        "/ledger/cases/lc_2/resolve", data={"csrf_token": csrf_of(page.data), "note": "done"}
    )
    html = response.data.decode()
    assert response.status_code == 409 and 'id="case-problem"' in html and "déjà résolu" in html
    assert "done" in html  # the note comes back as typed
    empty = operator.post("/ledger/cases/lc_2/resolve", data={"csrf_token": csrf_of(page.data), "note": " "})
    assert empty.status_code == 422 and len(posts(apis.accounts)) == 1


def test_a_reserve_still_below_zero_is_a_message_on_the_case_page(operator, apis, ledger_cases):
    apis.accounts.on(
        "POST", "/v1/ledger/cases/lc_2/resolve", ApiError(409, "reserve_still_below_zero", "still owed")
    )
    page = operator.get("/ledger/cases/lc_2")
    response = operator.post(
        "/ledger/cases/lc_2/resolve", data={"csrf_token": csrf_of(page.data), "note": "promised"}
    )
    problem = re.search(r'id="case-problem">([^<]+)<', response.data.decode()).group(1)
    assert (
        response.status_code == 409 and "toujours sous zéro" in problem and "réapprovisionnement" in problem
    )


def test_approving_an_adjustment_whose_case_was_resolved_another_way_says_to_reject_it(operator, apis):
    apis.accounts.on(
        "POST", "/v1/ledger/adjustments/adj_1/approve", ApiError(409, "ledger_case_resolved", "resolved")
    )
    page = operator.get("/ledger/adjustments")
    response = operator.post("/ledger/adjustments/adj_1/approve", data={"csrf_token": csrf_of(page.data)})
    html = response.data.decode()
    problem = re.search(r'id="adjustment-problem">([^<]+)<', html).group(1)
    assert response.status_code == 409 and "Rejetez-le" in problem and "résolu autrement" in problem
    assert 'id="adjustment-adj_1"' in html  # the list, with the row to reject it from
    # In Arabic and English too.
    for lang, words in (("ar", "ارفضها"), ("en", "Reject it")):
        operator.post("/language", data={"csrf_token": csrf_of(page.data), "lang": lang})
        answer = operator.post("/ledger/adjustments/adj_1/approve", data={"csrf_token": csrf_of(page.data)})
        assert words in answer.data.decode(), lang


def test_an_adjustment_for_a_case_names_it_and_comes_back_to_the_case(operator, apis, ledger_cases):
    apis.accounts.on("POST", "/v1/ledger/adjustments", {**PENDING, "status": "posted", "case_id": "lc_2"})
    page = operator.get("/ledger/adjustments/new?case_id=lc_2")
    html = page.data.decode()
    assert 'name="case_id" value="lc_2"' in html and 'id="for-case"' in html
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    response = operator.post(
        "/ledger/adjustments",
        data={
            "csrf_token": csrf_of(page.data),
            "idempotency_key": key,
            "case_id": "lc_2",
            "kind": "manual",
            "reason": "Reserve top-up",
            **LINES_FORM,
        },
    )
    assert response.headers["Location"] == "/ledger/cases/lc_2"
    [call] = posts(apis.accounts)
    assert call.body["case_id"] == "lc_2" and call.body["reason"] == "Reserve top-up"
    # Only a ledger case's id rides along: anything else in the address is dropped.
    assert 'name="case_id"' not in operator.get("/ledger/adjustments/new?case_id=rc_9").data.decode()


def test_the_ledger_page_shows_the_platform_and_marketplace_balances(operator, apis):
    apis.accounts.on("GET", "/v1/ledger/cases", {"data": [OPEN_CASE], "has_more": False})
    apis.accounts.on("GET", "/v1/ledger/integrity", {"ok": True, "accounts_checked": 1, "entries_checked": 1})
    apis.accounts.on("GET", "/v1/ledger/reserves", {"data": [], "has_more": False})

    def account(owner_type, owner_id, kind, amount, side="credit"):
        return {
            "object": "ledger_account",
            "id": f"acct_{kind}",
            "owner_type": owner_type,
            "owner_id": owner_id,
            "kind": kind,
            "currency": "MAD",
            "normal_side": side,
            "balance": {"amount": amount, "currency": "MAD"},
        }

    platform = [
        account("platform", "platform", "revenue", 35_000),
        account("platform", "platform", "bank:145", 1_234_500, "debit"),
    ]
    marketplace = [account("marketplace", "mkt_1", "reserve", -1_500)]
    apis.accounts.on(
        "GET",
        "/v1/ledger/accounts",
        lambda call: {
            "data": platform if call.params["owner_type"] == "platform" else marketplace,
            "has_more": False,
        },
    )
    html = operator.get("/ledger").data.decode()
    platform_table = html[html.index('id="platform-accounts"') : html.index('id="marketplace-accounts"')]
    assert "bank:145" in platform_table and "12\u202f345,00" in platform_table and "350,00" in platform_table
    assert "mkt_1" in html and "-15,00" in html
    assert 'href="/ledger/cases/lc_2"' in html and "Réserve de la place de marché sous zéro" in html


def test_people_are_named_where_the_console_shows_who_did_what(operator, apis):
    apis.onboarding.on(
        "GET",
        "/v1/staff/stf_karim",
        {"object": "staff_member", "id": "stf_karim", "name": "Karim Fassi", "roles": ["operator"]},
    )
    apis.accounts.on(
        "GET",
        "/v1/ledger/adjustments",
        {
            "data": [
                {**PENDING, "proposed_by": "stf_karim"},
                {**PENDING, "id": "adj_2", "proposed_by": "stf_gone"},
            ],
            "has_more": False,
        },
    )
    for _ in range(2):
        html = operator.get("/ledger/adjustments").data.decode()
        assert "Karim Fassi (stf_karim)" in html
        assert ">stf_gone<" in html  # not found at onboarding: the id, as it is
    # Names are kept a while (and one onboarding does not know, a minute): the second page asked
    # onboarding nothing new.
    assert len([c for c in apis.onboarding.calls if c.path == "/v1/staff/stf_karim"]) == 1
    assert len([c for c in apis.onboarding.calls if c.path == "/v1/staff/stf_gone"]) == 1
