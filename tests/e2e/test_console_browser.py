"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright), against
the whole stack started from deploy/Procfile: officers clear reviews under four-eyes, an operator
works the ledger, and the browser-side guards hold (CSRF, timeout, roles, no-store, no document on
the console's disk, right-to-left Arabic, no critical axe-core violation). Screenshots of each
main page land in the test's temporary directory."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import assert_ledger_sound
from tests.e2e.console_support import NAMES, STAFF_PASSWORD, other_origin_app, png, serve, totp_code
from tests.e2e.stack import Stack
from tests.e2e.test_kyc_path import Client, last_sms_code, verify_phone
from tests.e2e.test_ledger_path import ready_artisan
from tests.e2e.test_payments_path import card_token
from tests.support import ROOT, artisan_body, free_port, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
AXE = ROOT / ".venv/node/node_modules/axe-core/axe.min.js"
AMINA, YOUSSEF, SALMA, KARIM = (
    "amina.compliance@hirfa.test",
    "youssef.compliance@hirfa.test",
    "salma.operator@hirfa.test",
    "karim.operator@hirfa.test",
)

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("no Chromium: `make browsers` installs it", allow_module_level=True)

from playwright import sync_api  # noqa: E402 - a dev dependency: missing, the module fails, never skips

# --- the stack, with staff sign-in ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(databases, tmp_path_factory):
    urls = {name: databases.create(f"e2e_{name}") for name in ("onboarding", "payments", "accounts")}
    stack = Stack(tmp_path_factory.mktemp("stack"), urls)
    with serve(other_origin_app()) as other_origin:
        stack.other_origin = other_origin
        stack.init()
        stack.start_all()
        try:
            stack.wait_ready(60)
            yield stack
            assert_ledger_sound(stack)
        finally:
            stack.stop_all()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path):
    """Screenshots of the main pages: a test artifact, in the test's temporary directory."""
    folder = tmp_path / "screenshots"
    folder.mkdir()

    def shoot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path

    return shoot


def new_page(browser, **options):
    context = browser.new_context(locale="fr-FR", **options)
    return context.new_page()


class People:
    """Each demo person signs in once per module (a TOTP code is taken once: signing in again and
    again would mean waiting for new codes); later pages reuse their session cookie."""

    def __init__(self, stack: Stack, browser) -> None:
        self.stack, self.browser = stack, browser
        self.states: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}

    def page(self, email: str):
        if email in self.states:
            return new_page(self.browser, storage_state=self.states[email])
        page = new_page(self.browser)
        sign_in(page, self.stack, email)
        self.states[email] = page.context.storage_state()
        return page

    def session(self, email: str) -> dict:
        if email not in self.sessions:
            self.sessions[email] = staff_session(self.stack, email)
        return self.sessions[email]


@pytest.fixture(scope="module")
def people(stack, browser):
    return People(stack, browser)


def sign_in(page, stack: Stack, email: str) -> None:
    page.goto(f"{stack.console_url}/sign-in")
    page.fill("#email", email)
    page.fill("#password", STAFF_PASSWORD)
    page.fill("#totp_code", totp_code(email))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{stack.console_url}/")
    assert NAMES[email] in page.inner_text("header")


# --- the API side: artisans waiting for review ------------------------------------------------------


def api(stack: Stack, token: str, method: str, service: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    return requests.request(method, f"{stack.urls[service]}{path}", headers=headers, timeout=10, **kwargs)


def staff_session(stack: Stack, email: str) -> dict:
    """The person's own token and profile, from the staff sign-in endpoint the console uses."""
    response = requests.post(
        f"{stack.urls['onboarding']}/v1/staff-sessions",
        json={"email": email, "password": STAFF_PASSWORD, "totp_code": totp_code(email)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def artisan_at_tier_2(stack: Stack, name: str, marker: bytes, *, last_upload_by: dict | None = None) -> dict:
    """An artisan with a verified phone and three documents: the tier-3 review opens, submitted by
    whoever uploaded the last one (the marketplace, or an officer at a branch)."""
    marketplace = stack.token()
    artisan = api(
        stack, marketplace, "POST", "onboarding", "/v1/artisans", json=artisan_body(full_name=name)
    ).json()
    base = f"/v1/artisans/{artisan['id']}"
    assert api(stack, marketplace, "POST", "onboarding", f"{base}/phone-verification").status_code == 201
    code = last_sms_code(stack, artisan["phone"])  # what the SMS-gateway sandbox received
    assert api(
        stack, marketplace, "POST", "onboarding", f"{base}/phone-verification/confirm", json={"code": code}
    ).ok
    for kind in ("id_front", "id_back", "selfie"):
        uploader = last_upload_by["access_token"] if kind == "selfie" and last_upload_by else marketplace
        uploaded = api(
            stack,
            uploader,
            "POST",
            "onboarding",
            f"{base}/documents",
            data={"kind": kind},
            files={"file": ("scan.png", png(marker + kind.encode()))},
        )
        assert uploaded.status_code == 201, uploaded.text
    return artisan


# --- the tests --------------------------------------------------------------------------------------


def test_two_officers_take_artisans_to_tier_3_under_four_eyes(stack, people, shots):
    started = time.time()
    marker = b"console-no-disk-" + secrets.token_hex(8).encode()
    first = artisan_at_tier_2(stack, "Khadija Berrada", marker)
    caused = artisan_at_tier_2(stack, "Omar Tazi", marker, last_upload_by=people.session(AMINA))
    amina_id = people.session(AMINA)["staff"]["id"]
    youssef_id = people.session(YOUSSEF)["staff"]["id"]
    assert amina_id.startswith("stf_") and youssef_id.startswith("stf_")

    # Amina signs in with her password and a TOTP code, and opens the oldest review.
    amina = people.page(AMINA)
    shots(amina, "dashboard")
    amina.click("nav >> text=Revues KYC")
    shots(amina, "review-queue")
    amina.click("#review-queue tbody tr:first-child a.open-case")
    assert amina.inner_text("#artisan-name") == "Khadija Berrada"

    # The documents show inline, streamed through the console from the audited download.
    images = amina.locator("img.document")
    assert images.count() == 3
    for index in range(3):
        images.nth(index).scroll_into_view_if_needed()
        wait_until(
            lambda index=index: images.nth(index).evaluate("img => img.complete && img.naturalWidth > 0"),
            timeout=10,
            message="the document is drawn",
        )
    document_url = images.first.get_attribute("src")
    fetched = amina.context.request.get(f"{stack.console_url}{document_url}")
    assert fetched.status == 200 and fetched.headers["cache-control"] == "no-store"
    assert fetched.headers["content-type"] == "image/png" and marker in fetched.body()
    shots(amina, "review-case")

    # She approves it.
    amina.check("#decision-approve")
    amina.select_option("#reason_code", "documents_verified")
    amina.fill("#note", "CIN et selfie concordent.")
    amina.click("#decide")
    assert "Décision enregistrée" in amina.inner_text("#case-notice")
    assert amina.get_attribute("#review-status", "data-status") == "approved"

    # The case she caused (she uploaded the selfie at a branch): refused, with a clear message.
    amina.click("nav >> text=Revues KYC")
    amina.click("#review-queue tbody tr:first-child a.open-case")
    assert amina.inner_text("#artisan-name") == "Omar Tazi"
    case_url = amina.url
    amina.check("#decision-approve")
    amina.fill("#note", "Je valide mon propre dossier.")
    amina.click("#decide")
    assert "double contrôle" in amina.inner_text("#case-problem")
    assert amina.get_attribute("#review-status", "data-status") == "open"
    shots(amina, "four-eyes-refusal")

    # Youssef decides it, with the keyboard alone.
    youssef = people.page(YOUSSEF)
    youssef.goto(case_url)
    youssef.focus("#decision-approve")
    youssef.keyboard.press("Space")
    assert youssef.is_checked("#decision-approve")
    for expected in ("reason_code", "note"):
        youssef.keyboard.press("Tab")
        assert youssef.evaluate("document.activeElement.id") == expected
    youssef.keyboard.type("Dossier complet, vérifié au guichet.")
    youssef.keyboard.press("Tab")
    assert youssef.evaluate("document.activeElement.id") == "decide"
    youssef.keyboard.press("Enter")
    youssef.wait_for_selector("#case-notice")
    assert youssef.get_attribute("#review-status", "data-status") == "approved"

    # Tier 3 on the profile page, and the audit log names the people.
    youssef.click("text=Profil de l’artisan")
    assert youssef.inner_text("#artisan-tier") == "3"
    audit = youssef.inner_text("#audit-title + table")
    assert youssef_id in audit and amina_id in audit
    shots(youssef, "artisan-profile")
    youssef.goto(f"{stack.console_url}/artisans/{first['id']}")
    assert youssef.inner_text("#artisan-tier") == "3"
    assert caused["id"] != first["id"]

    # No document bytes reached the console's disk (nor any file this run wrote).
    assert (
        files_containing(
            marker, since=started, roots=[stack.workdir, ROOT / "var", Path(tempfile.gettempdir())]
        )
        == []
    )


def files_containing(marker: bytes, *, since: float, roots: list[Path]) -> list[Path]:
    found = []
    for root in roots:
        for dirpath, _dirs, filenames in os.walk(root):
            for filename in filenames:
                path = Path(dirpath) / filename
                try:
                    if path.is_symlink() or path.stat().st_mtime < since or path.stat().st_size > 50_000_000:
                        continue
                    if marker in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def test_an_operator_works_the_ledger_and_sees_no_review_pages(stack, people, shots):
    salma = people.page(SALMA)
    assert salma.locator("nav >> text=Revues KYC").count() == 0
    salma.click("nav >> text=Grand livre")
    assert "Sain" in salma.inner_text("#integrity-result")
    assert salma.locator("#ledger-cases").count() == 1
    shots(salma, "ledger")
    salma.click("nav >> text=Paiements")
    for section in ("reversals", "stuck", "disputes", "webhooks"):
        assert salma.locator(f"#{section}-list").count() == 1, section
    salma.click("nav >> text=Artisans")
    assert salma.locator("table.list tbody tr").count() >= 2
    shots(salma, "artisans")

    # Without the compliance role: no review pages, no documents.
    for path in ("/reviews", "/reviews/rev_x", "/reviews/documents/art_x/doc_x"):
        response = salma.goto(f"{stack.console_url}{path}")
        assert response.status == 403
        assert salma.locator('[data-reason="role"]').count() == 1


# --- payments needing attention and the day's figures, from payments made through the stack --------

CARD_APPROVED, CARD_DECLINED, CARD_DISPUTED, CARD_GATEWAY_ERROR = (
    "4242424242424242",
    "4000000000009995",
    "4000000000000259",  # approved, then the buyer's bank opens a dispute
    "4000000000000119",  # every authorisation answers 500: the outcome stays unknown
)


def paying_artisan(stack: Stack, marketplace: Client) -> str:
    """An artisan at tier 1 (a verified phone), known to payments as a payee who can be paid."""
    artisan = marketplace.call(
        "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(full_name="Hassan Ouazzani")
    ).json()
    verify_phone(stack, marketplace, artisan)

    def can_be_paid() -> bool:
        payee = marketplace.call("GET", "payments", f"/v1/payees/{artisan['id']}")
        return payee.ok and payee.json()["can_accept_payments"]

    wait_until(can_be_paid, timeout=30, message="payments knows the artisan at tier 1")
    return artisan["id"]


def pay(
    stack: Stack, marketplace: Client, artisan_id: str, *, card: str | None = None, phone: str | None = None
) -> dict:
    created = marketplace.call(
        "POST",
        "payments",
        "/v1/payments",
        idempotent=True,
        json={
            "artisan_id": artisan_id,
            "amount": 1000,
            "currency": "MAD",
            "application_fee": 100,
            "payment_method_type": "card" if card else "mobile_wallet",
        },
    )
    assert created.status_code == 201, created.text
    body = {"card_token": card_token(stack, card)} if card else {"phone": phone}
    confirmed = marketplace.call(
        "POST", "payments", f"/v1/payments/{created.json()['id']}/confirm", json=body
    )
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()


def test_an_operator_sees_the_days_payments_and_what_needs_attention(stack, people, shots):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    artisan_id = paying_artisan(stack, marketplace)
    # The marketplace's webhook endpoint answers nothing: each delivery fails and is tried again later.
    endpoint = marketplace.call(
        "POST",
        "payments",
        "/v1/webhook-endpoints",
        idempotent=True,
        json={"url": f"http://127.0.0.1:{free_port()}/hooks", "event_types": ["*"]},
    )
    assert endpoint.status_code == 201, endpoint.text

    # The day's payments: two cards approved, one declined, one approved then disputed, a wallet.
    for card, status in (
        (CARD_APPROVED, "succeeded"),
        (CARD_APPROVED, "succeeded"),
        (CARD_DECLINED, "failed"),
    ):
        assert pay(stack, marketplace, artisan_id, card=card)["status"] == status
    disputed = pay(stack, marketplace, artisan_id, card=CARD_DISPUTED)
    wallet = pay(stack, marketplace, artisan_id, phone="+212600000001")

    def status_of(payment_id: str) -> str:
        return marketplace.call("GET", "payments", f"/v1/payments/{payment_id}").json()["status"]

    def disputes() -> list:
        return marketplace.call(
            "GET", "payments", "/v1/disputes", params={"payment_id": disputed["id"]}
        ).json()["data"]

    def failed_attempts() -> bool:
        listed = marketplace.call(
            "GET", "payments", "/v1/webhook-deliveries", params={"endpoint_id": endpoint.json()["id"]}
        ).json()["data"]
        return any(d["status"] == "pending" and d["attempt_count"] > 0 for d in listed)

    wait_until(
        lambda: status_of(wallet["id"]) == "succeeded", timeout=30, message="the buyer approves in the wallet"
    )
    wait_until(lambda: len(disputes()) == 1, timeout=30, message="the gateway opens a dispute")
    wait_until(failed_attempts, timeout=30, message="a webhook delivery fails and waits for its next attempt")
    [dispute] = disputes()

    # With the payments worker (recovery) down, a payment whose gateway call failed stays processing
    # past the recovery time (3 s on this stack).
    stack.stop("payments_worker")
    try:
        stuck = pay(stack, marketplace, artisan_id, card=CARD_GATEWAY_ERROR)
        assert stuck["status"] == "processing"
        time.sleep(4)

        salma = people.page(SALMA)
        salma.goto(f"{stack.console_url}/payments")
        assert salma.locator(f'#stuck-list tr[data-payment="{stuck["id"]}"]').count() == 1
        assert salma.locator(f'#disputes-list tr[data-dispute="{dispute["id"]}"]').count() == 1
        failing = salma.locator('#webhooks-list tr[data-marketplace="cli_demo_marketplace"]')
        assert failing.count() == 1 and int(failing.locator("td.retrying").inner_text()) >= 1
        assert salma.locator("#reversals-list").count() == 1
        shots(salma, "payments-attention")

        # The dashboard counts them: six payments today, four of them succeeded (40 MAD).
        salma.goto(f"{stack.console_url}/")
        today = salma.locator("#payments-today")
        assert today.locator(".count").inner_text() == "6 paiements"
        assert "40,00" in today.locator(".volume").inner_text()
        card = today.locator('tr[data-method="card"] td')
        assert [card.nth(i).inner_text() for i in range(1, 4)] == ["5", "3", "1"]
        rates = today.locator("svg desc").text_content()
        assert "Carte: 75 %" in rates and "Portefeuille mobile: 100 %" in rates
        assert salma.locator("#payments-week .count").inner_text() == "6 paiements"
        assert "Niveau 1:" in salma.locator("#funnel svg desc").text_content()
        assert salma.locator("#payouts svg").count() == 2  # today's and this week's
        shots(salma, "dashboard-operator")
    finally:
        stack.start("payments_worker")

    # Recovery back: the gateway has no record of the payment, so it fails and is no longer stuck.
    wait_until(lambda: status_of(stuck["id"]) == "failed", timeout=60, message="recovery settles the payment")
    salma.goto(f"{stack.console_url}/payments")
    assert salma.locator(f'#stuck-list tr[data-payment="{stuck["id"]}"]').count() == 0


def test_an_officer_filters_the_queue_by_region_and_rescreens_an_artisan(stack, people, shots):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    # A name on the sample sanctions list: registration opens a screening-hit case.
    listed = marketplace.call(
        "POST",
        "onboarding",
        "/v1/artisans",
        idempotent=True,
        json=artisan_body(full_name="Khadija Amraoui", region="oriental"),
    ).json()
    assert listed["screening_status"] == "hit"

    amina = people.page(AMINA)
    amina.goto(f"{stack.console_url}/reviews")
    amina.select_option("#region", "oriental")
    amina.select_option("#kind", "screening_hit")
    amina.click("form.filters button[type=submit]")
    rows = amina.locator("#review-queue tbody tr")
    assert rows.count() >= 1 and all("oriental" in rows.nth(i).inner_text() for i in range(rows.count()))
    shots(amina, "review-queue-oriental")
    amina.click("#review-queue tbody tr:last-child a.open-case")
    assert amina.inner_text("#artisan-name") == "Khadija Amraoui"
    assert amina.inner_text("td.list-reference") == "ZZi.004"
    shots(amina, "screening-hit")

    # On the profile: screened again against the lists in force, still a possible match.
    amina.click("text=Profil de l’artisan")
    amina.click("#rescreen")
    assert amina.get_attribute("#rescreen-notice", "data-outcome") == "hit"
    assert "correspondance possible" in amina.inner_text("#rescreen-notice")
    assert "screening.rerun" in amina.inner_text("#audit-title + table")
    assert amina.locator("#devices").count() == 0  # devices are an operator's (devices:manage)
    shots(amina, "artisan-rescreened")


SETTLEMENT_COLUMNS = (
    "settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,"
    "currency,gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at"
)


def settlement_with_unknown_payment(stack: Stack, token: str, payment_id: str, gross: int) -> dict:
    """An acquirer's settlement file with one capture no payment in Hirfa explains, uploaded
    through accounts' API as the operator: the run opens a reconciliation case for it."""
    fee = 20
    line = (
        f"{time.strftime('%Y-%m-%d', time.gmtime())},B-console,capture,tx_{payment_id[-8:]},{payment_id},,,"
        f"MAD,{gross},{fee},{gross - fee},visa,domestic,{int(time.time())}"
    )
    uploaded = api(
        stack,
        token,
        "POST",
        "accounts",
        "/v1/reconciliation/runs",
        data={"source": "gateway_settlement", "gateway": "m2t"},
        files={"file": (f"settlement-{payment_id}.csv", f"{SETTLEMENT_COLUMNS}\r\n{line}\r\n".encode())},
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()


def test_an_operator_writes_off_a_reconciliation_case(stack, people, shots):
    axe = AXE.read_text(encoding="utf-8")
    payment_id = "pay_console_" + secrets.token_hex(4)
    run = settlement_with_unknown_payment(stack, people.session(SALMA)["access_token"], payment_id, 900)
    assert run["status"] == "completed"

    # Salma finds the run and its case in the console, and opens the case.
    salma = people.page(SALMA)
    salma.goto(f"{stack.console_url}/")
    salma.click("nav >> text=Rapprochement")
    assert run["id"] in salma.inner_text("#recon-runs")
    shots(salma, "reconciliation-runs")
    salma.click(f"#recon-runs a:has-text('{run['id']}')")
    salma.wait_for_url(f"{stack.console_url}/reconciliation/runs/{run['id']}")
    # The run page lists the cases this run opened (accounts filters them by run): the unknown
    # capture's, beside any payment of earlier tests the file does not name.
    assert salma.locator(f"#run-cases tbody tr[data-case]:has-text('{payment_id}')").count() == 1
    shots(salma, "reconciliation-run")
    assert critical_violations(salma, axe) == []
    salma.click(f"#run-cases tr:has-text('{payment_id}') a.open-case")
    assert salma.get_attribute("#case-state", "data-state") == "open"
    assert payment_id in salma.inner_text("#case-items")
    assert critical_violations(salma, axe) == []
    case_url = salma.url

    # She notes what she found, then writes the case off below the four-eyes amount.
    salma.fill("#note-text", "Capture de test de l’acquéreur, sans paiement Hirfa.")
    salma.click("#add-note")
    assert "La note est ajoutée" in salma.inner_text("#case-notice")
    salma.fill("#write-off-reason", "Capture de test réglée par l’acquéreur")
    for row, (kind, side) in enumerate((("bank:145", "debit"), ("revenue", "credit"))):
        salma.fill(f"#line-{row}-kind", kind)
        salma.select_option(f"#line-{row}-side", side)
        salma.fill(f"#line-{row}-amount", "9,00")
    salma.click("#write-off")
    assert "Passé en perte" in salma.inner_text("#case-notice")
    assert salma.get_attribute("#case-state", "data-state") == "written_off"
    assert "adjustment_id" in salma.inner_text("#case-resolution")
    history = salma.inner_text("#case-history")
    assert "written_off" in history and people.session(SALMA)["staff"]["id"] in history
    shots(salma, "reconciliation-case-written-off")

    # The cases list, filtered to the written-off ones: this case is there.
    salma.goto(f"{stack.console_url}/reconciliation/cases")
    salma.select_option("#state", "written_off")
    salma.click("form.filters button[type=submit]")
    assert payment_id in salma.inner_text("#recon-cases")
    shots(salma, "reconciliation-cases")
    salma.goto(case_url)

    # The three-way view of the payment shows the acquirer's leg and no ledger leg.
    salma.click("#three-way-link")
    assert "Pas entièrement rapproché" in salma.inner_text("#three-way-result")
    shots(salma, "three-way")
    assert critical_violations(salma, axe) == []

    # Above the four-eyes amount, an adjustment waits; its proposer cannot approve it.
    salma.goto(f"{stack.console_url}/ledger/adjustments/new")
    shots(salma, "adjustment-new")
    salma.check("#kind-manual")
    for row, (kind, side) in enumerate((("bank:145", "debit"), ("revenue", "credit"))):
        salma.fill(f"#line-{row}-kind", kind)
        salma.select_option(f"#line-{row}-side", side)
        salma.fill(f"#line-{row}-amount", "2500")
    salma.fill("#reason", "Correction importante")
    salma.click("#propose")
    assert "attend l’approbation" in salma.inner_text("#adjustment-notice")
    salma.click("#pending-adjustments tbody tr:last-child button.approve")
    assert "double contrôle" in salma.inner_text("#adjustment-problem")
    shots(salma, "adjustment-four-eyes-refusal")
    salma.goto(case_url)
    assert salma.get_attribute("#case-state", "data-state") == "written_off"


def reserve_below_zero_case(stack: Stack, operator_token: str) -> dict:
    """A real open ledger case, made by the running processes: an artisan's card payment is paid
    out to their bank, then refunded in full; the artisan holds nothing any more, so the
    marketplace's reserve covers their share and goes below zero."""
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    artisan_id = ready_artisan(stack, marketplace)

    def accounts(method: str, path: str, **kwargs) -> requests.Response:
        return api(stack, operator_token, method, "accounts", path, **kwargs)

    wait_until(
        lambda: (
            (answer := marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")).ok
            and answer.json()["kyc_tier"] == 1
        ),
        timeout=30,
        message="payments knows tier 1",
    )
    created = marketplace.call(
        "POST",
        "payments",
        "/v1/payments",
        idempotent=True,
        json={
            "artisan_id": artisan_id,
            "amount": 15_000,
            "currency": "MAD",
            "application_fee": 1_500,
            "payment_method_type": "card",
        },
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    confirmed = marketplace.call(
        "POST",
        "payments",
        f"/v1/payments/{payment_id}/confirm",
        json={"card_token": card_token(stack, "4242424242424242")},
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text
    wait_until(
        lambda: (
            accounts("GET", f"/v1/artisans/{artisan_id}/balance").json().get("available", {}).get("amount")
            == 13_500
        ),
        timeout=30,
        message="the payment is released to available",
    )
    payout = accounts(
        "POST", "/v1/payouts", json={"artisan_id": artisan_id, "amount": 13_500, "currency": "MAD"}
    )
    assert payout.status_code in (201, 202), payout.text
    wait_until(
        lambda: accounts("GET", f"/v1/payouts/{payout.json()['id']}").json()["status"] == "paid",
        timeout=30,
        message="the bank sandbox pays the payout",
    )
    refund = marketplace.call(
        "POST", "payments", "/v1/refunds", idempotent=True, json={"payment_id": payment_id}
    )
    assert refund.status_code == 201, refund.text

    def open_reserve_case() -> dict | None:
        cases = accounts("GET", "/v1/ledger/cases", params={"status": "open", "limit": 100}).json()["data"]
        return next((case for case in cases if case["kind"] == "reserve_below_zero"), None)

    return wait_until(open_reserve_case, timeout=30, message="the refund takes the reserve below zero")


def test_an_operator_resolves_a_ledger_case_a_second_operator_approving(stack, people, shots):
    axe = AXE.read_text(encoding="utf-8")
    salma_session, karim_session = people.session(SALMA), people.session(KARIM)
    case = reserve_below_zero_case(stack, salma_session["access_token"])
    shortfall = -case["details"]["balance"]["amount"]
    assert shortfall > 0

    # Salma sees the platform's balances and the case on the ledger page, and opens the case.
    salma = people.page(SALMA)
    salma.goto(f"{stack.console_url}/ledger")
    platform = salma.inner_text("#platform-accounts")
    assert (
        "gateway_receivable:m2t" in platform and "bank:145" in platform and "payouts_in_transit" in platform
    )
    assert "reserve" in salma.inner_text("#marketplace-accounts")
    shots(salma, "ledger-platform-accounts")
    salma.click(f"#ledger-cases a:has-text('{case['id']}')")
    assert salma.get_attribute("#case-status", "data-status") == "open"
    assert "Réserve de la place de marché sous zéro" in salma.inner_text("main")
    assert salma.locator("#resolve-form").count() == 1
    assert critical_violations(salma, axe) == []
    shots(salma, "ledger-case")
    case_url = salma.url

    # The marketplace's transfer refunds the shortfall and pre-funds its reserve: 1,500.00 MAD,
    # above the four-eyes amount. Salma proposes it for the case; it waits for another operator.
    salma.click("#propose-for-case")
    assert case["id"] in salma.inner_text("#for-case")
    salma.check("#kind-manual")
    salma.fill("#line-0-kind", "bank:145")
    salma.select_option("#line-0-side", "debit")
    salma.fill("#line-0-amount", "1500")
    salma.select_option("#line-1-owner_type", "marketplace")
    salma.fill("#line-1-owner_id", "cli_demo_marketplace")
    salma.fill("#line-1-kind", "reserve")
    salma.select_option("#line-1-side", "credit")
    salma.fill("#line-1-amount", "1500")
    salma.fill("#reason", "Virement de la place de marché : découvert de la réserve et avance")
    salma.click("#propose")
    assert salma.url == case_url
    assert "attend l’approbation" in salma.inner_text("#case-notice")
    assert salma.get_attribute("#case-status", "data-status") == "open"
    adjustment_id = salma.inner_text("#case-adjustments tbody tr:first-child td.id").strip()
    assert adjustment_id.startswith("adj_")

    # She cannot approve her own: the four-eyes refusal is a message on the list.
    salma.goto(f"{stack.console_url}/ledger/adjustments")
    row = f"#adjustment-{adjustment_id}"
    assert salma_session["staff"]["name"] in salma.inner_text(row)  # proposed by, named
    shots(salma, "adjustments")
    salma.click(f"{row} button.approve")
    assert "double contrôle" in salma.inner_text("#adjustment-problem")
    assert salma.locator(row).count() == 1

    # Karim, a second operator, approves it: posted, and the case is resolved by it.
    karim = people.page(KARIM)
    karim.goto(f"{stack.console_url}/ledger/adjustments")
    assert "Salma Idrissi" in karim.inner_text(row)  # another person's name, from onboarding
    karim.fill(f"#note-{adjustment_id}", "Virement vu sur le relevé du jour.")
    karim.click(f"{row} button.approve")
    assert "passé" in karim.inner_text("#adjustment-notice")
    assert karim.locator(row).count() == 0
    karim.goto(case_url)
    assert karim.get_attribute("#case-status", "data-status") == "resolved"
    resolution = karim.inner_text("#case-resolution")
    assert "La réserve a été alimentée" in resolution and adjustment_id in resolution
    assert f"Karim Fassi ({karim_session['staff']['id']})" in karim.inner_text("#resolved-by")
    assert karim.locator("#resolve-form").count() == 0
    shots(karim, "ledger-case-resolved")

    # The API agrees: resolved, by Karim, and the reserve is back above zero.
    resolved = api(
        stack, karim_session["access_token"], "GET", "accounts", f"/v1/ledger/cases/{case['id']}"
    ).json()
    assert (resolved["status"], resolved["resolved_by"], resolved["details"]["adjustment_id"]) == (
        "resolved",
        karim_session["staff"]["id"],
        adjustment_id,
    )


def test_a_new_staff_member_enrols_with_the_qr_code_then_signs_in(stack, browser, shots):
    email, password = "nadia.operator@hirfa.test", "a long enough staff password"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "hirfa"),
            "onboarding",
            "staff",
            "create",
            "--email",
            email,
            "--name",
            "Nadia Chraibi",
            "--role",
            "operator",
        ],
        cwd=ROOT,
        env={**stack.env, "HIRFA_STAFF_PASSWORD": password},
        check=True,
        capture_output=True,
        timeout=60,
    )
    page = new_page(browser)
    page.goto(f"{stack.console_url}/sign-in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{stack.console_url}/enrol")
    assert page.locator(".qr svg").count() == 1
    shots(page, "enrolment")
    assert critical_violations(page, AXE.read_text(encoding="utf-8")) == []
    secret = page.inner_text("code.secret").strip()
    page.reload()  # the same secret, not a new one, until it is confirmed
    assert page.inner_text("code.secret").strip() == secret
    page.fill("#totp_code", totp_code(email, secret))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{stack.console_url}/sign-in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#totp_code", totp_code(email, secret))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{stack.console_url}/")
    assert "Nadia Chraibi" in page.inner_text("header")


def test_a_forged_form_post_is_refused(stack, people):
    amina = people.page(AMINA)
    target = f"{stack.console_url}/reviews/rev_forged/decision"
    amina.goto(f"{stack.other_origin}/forged?target={target}")
    with amina.expect_navigation() as navigation:
        amina.click("#forge")
    assert navigation.value.status == 403
    assert amina.locator('[data-reason="csrf"]').count() == 1


def test_arabic_renders_right_to_left(stack, browser, shots):
    # A browser set up in English still gets the console in French until the person picks.
    page = browser.new_context(locale="en-US").new_page()
    page.goto(f"{stack.console_url}/sign-in")
    assert page.get_attribute("html", "lang") == "fr"
    assert page.inner_text("h1") == "Connexion du personnel"
    shots(page, "sign-in")
    page.click("button[lang=ar]")
    assert page.get_attribute("html", "dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.inner_text("h1") == "دخول الموظفين"
    # Laid out from the right: the brand sits to the right of the language buttons.
    brand, tools = page.locator(".brand").bounding_box(), page.locator(".tools").bounding_box()
    assert brand["x"] > tools["x"]
    shots(page, "sign-in-arabic")


def test_a_signed_in_operator_works_in_arabic_right_to_left(stack, people, shots):
    salma = people.page(SALMA)  # a context of its own: the others stay in French
    salma.goto(f"{stack.console_url}/ledger")
    salma.click("button[lang=ar]")
    salma.wait_for_url(f"{stack.console_url}/ledger")
    assert (salma.get_attribute("html", "lang"), salma.get_attribute("html", "dir")) == ("ar", "rtl")
    assert salma.inner_text("h1") == "دفتر الأستاذ"
    # The navigation reads from the right: the dashboard's link right of the ledger's.
    dashboard = salma.locator("nav >> text=لوحة القيادة").bounding_box()
    ledger = salma.locator("nav >> text=دفتر الأستاذ").bounding_box()
    assert dashboard["x"] > ledger["x"]
    assert critical_violations(salma, AXE.read_text(encoding="utf-8")) == []
    shots(salma, "ledger-arabic")
    salma.click("nav >> text=لوحة القيادة")
    assert salma.get_attribute("html", "dir") == "rtl" and salma.locator("svg").count() >= 1
    shots(salma, "dashboard-arabic")


MAIN_PAGES = {
    AMINA: ["/", "/reviews", "/artisans"],
    SALMA: [
        "/",
        "/ledger",
        "/ledger/adjustments",
        "/ledger/adjustments/new",
        "/payments",
        "/artisans",
        "/reconciliation",
        "/reconciliation/cases",
        "/reconciliation/three-way?object_id=pay_none",
    ],
}


def test_no_critical_accessibility_violations_on_the_main_pages(stack, browser, people):
    axe = AXE.read_text(encoding="utf-8")
    problems = {}
    page = new_page(browser)
    page.goto(f"{stack.console_url}/sign-in")
    problems["/sign-in"] = critical_violations(page, axe)
    blocked: list[str] = []  # what the strict Content-Security-Policy refused: nothing, or a page broke
    for email, paths in MAIN_PAGES.items():
        page = people.page(email)
        page.on(
            "console",
            lambda message: "Content Security Policy" in message.text and blocked.append(message.text),
        )
        if email == AMINA:
            # An open case (with its decision form), and that artisan's profile.
            waiting = artisan_at_tier_2(stack, "Zineb Lahlou", b"a11y")
            reviews = requests.get(
                f"{stack.urls['onboarding']}/v1/kyc-reviews",
                params={"artisan_id": waiting["id"]},
                headers={"Authorization": f"Bearer {people.session(AMINA)['access_token']}"},
                timeout=10,
            ).json()["data"]
            paths = [*paths, f"/reviews/{reviews[0]['id']}", f"/artisans/{waiting['id']}"]
        for path in paths:
            page.goto(f"{stack.console_url}{path}")
            problems[f"{email} {path}"] = critical_violations(page, axe)
        if email == AMINA:
            the_decision_form_is_worked_with_the_keyboard_alone(page, f"{stack.console_url}{paths[-2]}")
    assert {where: found for where, found in problems.items() if found} == {}
    assert blocked == []


def the_decision_form_is_worked_with_the_keyboard_alone(page, case_url: str) -> None:
    """From the top of an open case page: the skip link, then Tab to the decision, each focused
    control visibly outlined; the arrow keys choose among the decisions and the reasons."""

    def focused(expression: str = "id") -> str:
        return page.evaluate(f"document.activeElement.{expression}")

    def outlined() -> bool:
        return page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    page.goto(case_url)
    page.keyboard.press("Tab")
    assert focused("className") == "skip" and outlined()
    page.keyboard.press("Enter")  # to the page's content, past the header and its navigation
    for _ in range(40):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('header') === null")
        if focused() == "decision-approve":
            break
    else:
        pytest.fail("the decision form cannot be reached with the Tab key")
    assert outlined()
    page.keyboard.press("ArrowRight")
    assert page.is_checked("#decision-reject") and focused() == "decision-reject"
    page.keyboard.press("Tab")
    assert focused() == "reason_code" and outlined()
    page.keyboard.press("End")
    assert page.eval_on_selector("#reason_code", "select => select.value") == "other"
    page.keyboard.press("Tab")
    assert focused() == "note" and outlined()
    page.keyboard.press("Tab")
    assert focused() == "decide" and outlined()


def critical_violations(page, axe_source: str) -> list[str]:
    page.evaluate(axe_source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] == "critical"]


def test_an_idle_session_ends(stack, browser):
    """Last in the module: the console is restarted with a short inactivity timeout."""
    stack.stop("console")
    stack.start("console", CONSOLE_IDLE_TIMEOUT_SECONDS="4")
    wait_until(lambda: _up(stack.console_url), timeout=30, message="the console restarts")
    page = new_page(browser)
    sign_in(page, stack, SALMA)
    time.sleep(2)
    page.goto(f"{stack.console_url}/ledger")
    assert page.url == f"{stack.console_url}/ledger"  # activity keeps the session alive
    time.sleep(5)
    page.goto(f"{stack.console_url}/ledger")
    assert page.url.startswith(f"{stack.console_url}/sign-in")
    assert "inactivité" in page.inner_text("main")


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
