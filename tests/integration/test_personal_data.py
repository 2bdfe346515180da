"""An artisan's personal data (law 09-08): the export of everything Hirfa holds about them, as one
archive gathered from the three services over HTTP (payments and accounts served on free ports,
read with the token onboarding mints itself), and who may have it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import socket
import uuid
import zipfile

import pytest
import sqlalchemy as sa

from services.onboarding.adapters.orm import Artisan, ArtisanSignIn, BankAccount, KycDocument
from services.onboarding.adapters.orm import OutboxMessage as OnboardingOutbox
from services.onboarding.adapters.service_apis import HttpPersonalDataSource
from services.onboarding.bootstrap import SERVICE_TOKEN_TTL_SECONDS
from services.onboarding.service_layer.documents import associated_data
from services.onboarding.service_layer.erasure import erase_due_artisans
from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.domain.gateway import GatewayRegistry, TokeniseRequest
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer
from shared.crypto import DecryptionError, SealedBlob
from shared.runtime import make_event_consumer
from tests.http_support import ServedApp
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE, add_payee
from tests.ledger_support import (
    RIB,
    LedgerDriver,
    bank_account_linked,
    payment_succeeded,
    registered,
    tier_changed,
)
from tests.support import artisan_body

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"a scan of an identity card " * 20
OFFICER = "stf_01JD8Z6W5Q0T2C7S9K3M4N5P6R"


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def payments_app(make_payments_app, gateway):
    return make_payments_app(gateways=GatewayRegistry({"fake": gateway}), default_gateway="fake")


@pytest.fixture
def served(payments_app, accounts_app):
    apps = {name: ServedApp(app) for name, app in (("payments", payments_app), ("accounts", accounts_app))}
    for app in apps.values():
        app.start()
    yield apps
    for app in apps.values():
        app.stop()


@pytest.fixture
def onboarding_config(onboarding_config, served):
    """Onboarding reading payments' and accounts' parts from the apps served for the test."""
    return dataclasses.replace(
        onboarding_config, payments_url=served["payments"].url, accounts_url=served["accounts"].url
    )


@pytest.fixture
def tokens(issue_token):
    class Tokens:
        def artisan(self, artisan_id: str) -> dict:
            return self._bearer(Role.ARTISAN, artisan_id)

        def marketplace(self, client_id: str = MARKETPLACE) -> dict:
            return self._bearer(Role.MARKETPLACE, client_id)

        def compliance(self, client_id: str = "cli_test_compliance") -> dict:
            return self._bearer(Role.COMPLIANCE, client_id)

        def officer(self, staff_id: str = OFFICER) -> dict:
            """A compliance officer signed in to the console (staff token, compliance role)."""
            return {
                "Authorization": "Bearer "
                + issue_token(Role.STAFF, client_id=staff_id, scopes=ROLE_SCOPES[Role.COMPLIANCE])
            }

        def _bearer(self, role: Role, client_id: str) -> dict:
            return {"Authorization": "Bearer " + issue_token(role, client_id=client_id)}

    return Tokens()


@pytest.fixture
def hirfa(onboarding, payments_app, accounts_app, gateway, tokens, issue_token):
    """An artisan as the three services know them: registered with a document, paid once (the
    payment succeeded at the gateway), and the payment in their ledger."""

    class Hirfa:
        ledger = LedgerDriver(accounts_app)
        token = staticmethod(issue_token)

        def register(self, **overrides) -> str:
            response = onboarding.post(
                "/v1/artisans",
                json=artisan_body(**overrides),
                headers={**tokens.marketplace(), "Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code == 201, response.json
            return response.json["id"]

        def upload(self, artisan_id: str, data: bytes = JPEG) -> str:
            response = onboarding.post(
                f"/v1/artisans/{artisan_id}/documents",
                data={"kind": "id_front", "file": (io.BytesIO(data), "front.jpg", "image/jpeg")},
                headers={**tokens.marketplace(), "Idempotency-Key": str(uuid.uuid4())},
                content_type="multipart/form-data",
            )
            assert response.status_code == 201, response.json
            return response.json["id"]

        def pay(self, artisan_id: str, amount: int = 15_000, fee: int = 1_500) -> str:
            """A card payment that succeeds at the gateway, then its posting in the ledger."""
            payments = payments_app.test_client()
            headers = {**tokens.marketplace(), "Idempotency-Key": str(uuid.uuid4())}
            created = payments.post(
                "/v1/payments",
                json={
                    "artisan_id": artisan_id,
                    "amount": amount,
                    "currency": "MAD",
                    "application_fee": fee,
                    "payment_method_type": "card",
                    "description": "Tajine, hand-painted",
                },
                headers=headers,
            )
            assert created.status_code == 201, created.json
            card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
            confirmed = payments.post(
                f"/v1/payments/{created.json['id']}/confirm",
                json={"card_token": card},
                headers=tokens.marketplace(),
            )
            assert confirmed.json["status"] == "succeeded", confirmed.json
            self.ledger.deliver(payment_succeeded(artisan_id, amount, fee, payment_id=created.json["id"]))
            return created.json["id"]

        def artisan(self) -> str:
            artisan_id = self.register()
            self.upload(artisan_id)
            add_payee(payments_app.extensions["hirfa"], artisan_id=artisan_id)
            self.ledger.deliver(registered(artisan_id))
            self.ledger.deliver(tier_changed(artisan_id, 3, version=1))
            self.pay(artisan_id)
            return artisan_id

        def export(self, artisan_id: str, headers: dict, **query):
            return onboarding.get(
                f"/v1/artisans/{artisan_id}/personal-data", query_string=query, headers=headers
            )

        def audit_actions(self, artisan_id: str) -> list[tuple[str, str]]:
            response = onboarding.get(
                f"/v1/artisans/{artisan_id}/kyc/audit-log",
                query_string={"limit": 100},
                headers=tokens.compliance(),
            )
            assert response.status_code == 200, response.json
            return [(entry["action"], entry["actor"]) for entry in response.json["data"]]

    return Hirfa()


def unzip(response) -> dict[str, bytes]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def part(files: dict[str, bytes], name: str):
    return json.loads(files[name])


def test_an_artisan_exports_everything_the_three_services_hold_about_them_as_one_archive(hirfa, tokens):
    artisan_id = hirfa.artisan()
    response = hirfa.export(artisan_id, tokens.artisan(artisan_id))
    files = unzip(response)

    assert response.headers["Cache-Control"] == "no-store"
    assert f"hirfa-personal-data-{artisan_id}" in response.headers["Content-Disposition"]
    manifest = part(files, "manifest.json")
    assert manifest["artisan_id"] == artisan_id and manifest["requested_by"] == artisan_id
    assert manifest["services"] == ["onboarding", "payments", "accounts"]
    assert sorted(manifest["files"]) == sorted(name for name in files if name != "manifest.json")

    profile = part(files, "onboarding/profile.json")
    assert profile["id"] == artisan_id and profile["full_name"] == "Fatima Zahra El Idrissi"
    assert profile["cin"] and profile["phone"].startswith("+212") and profile["date_of_birth"] == "1985-04-12"
    assert [link["marketplace_id"] for link in profile["marketplaces"]] == [MARKETPLACE]
    [document] = part(files, "onboarding/documents.json")
    assert document["kind"] == "id_front" and document["size_bytes"] == len(JPEG)
    assert not any(name.startswith("onboarding/documents/") for name in files)  # only when asked for
    assert {"tier_changes", "phone_verifications", "screenings", "reviews"} <= set(
        part(files, "onboarding/kyc.json")
    )
    assert ("document.uploaded", MARKETPLACE) in [
        (entry["action"], entry["actor"]) for entry in part(files, "onboarding/kyc_audit_log.json")
    ]
    for name in ("bank_accounts", "notifications", "devices"):
        assert part(files, f"onboarding/{name}.json") == []

    [payment] = part(files, "payments/payments.json")
    assert payment["status"] == "succeeded" and payment["description"] == "Tajine, hand-painted"
    assert payment["net"] == {"amount": 13_500, "currency": "MAD"}
    assert part(files, "payments/payee.json")["kyc_tier"] == 3
    assert part(files, "payments/marketplaces.json") == [MARKETPLACE]

    ledger = {account["account"]: account for account in part(files, "accounts/ledger_accounts.json")}
    assert set(ledger) == {"pending", "available"}
    [line] = ledger["pending"]["lines"]
    assert line["cause"] == "payment" and line["cause_id"] == payment["id"]
    assert line["amount"] == line["running_balance"] == {"amount": 13_500, "currency": "MAD"}
    assert ledger["pending"]["balance"] == {"amount": 13_500, "currency": "MAD"}
    assert part(files, "accounts/payouts.json") == []

    # The export itself is audited, under the artisan's name; their documents were not opened.
    assert hirfa.audit_actions(artisan_id)[-1] == ("personal_data.exported", artisan_id)
    assert ("document.downloaded", artisan_id) not in hirfa.audit_actions(artisan_id)


def test_compliance_exports_with_the_documents_each_download_audited_under_the_officer(hirfa, tokens):
    artisan_id = hirfa.artisan()
    second = hirfa.upload(artisan_id, JPEG + b"second scan")

    files = unzip(hirfa.export(artisan_id, tokens.officer(), include="documents"))

    documents = {name: content for name, content in files.items() if name.startswith("onboarding/documents/")}
    assert len(documents) == 2
    assert documents[f"onboarding/documents/{second}.jpg"] == JPEG + b"second scan"
    assert part(files, "manifest.json")["documents_included"] is True
    actions = hirfa.audit_actions(artisan_id)
    assert actions.count(("document.downloaded", OFFICER)) == 2
    assert actions[-1] == ("personal_data.exported", OFFICER)


def test_another_artisan_gets_404_and_marketplaces_or_banks_403(hirfa, tokens, issue_token):
    artisan_id = hirfa.artisan()
    someone_else = hirfa.register()

    other = hirfa.export(artisan_id, tokens.artisan(someone_else))
    assert other.status_code == 404 and other.json["code"] == "resource_not_found"
    # Not even the marketplace that registered them, nor another one, nor a bank or an operator.
    for headers in (
        tokens.marketplace(),
        tokens.marketplace(OTHER_MARKETPLACE),
        {"Authorization": "Bearer " + issue_token(Role.BANK_PARTNER, client_id="cli_bank")},
        {"Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_operator")},
    ):
        refused = hirfa.export(artisan_id, headers)
        assert refused.status_code == 403 and refused.json["code"] == "insufficient_scope"
    unknown = hirfa.export("art_01JD8Z6W5Q0T2C7S9K3M4N5P6R", tokens.compliance())
    assert unknown.status_code == 404
    # An artisan asks for their own documents too, and their download is theirs in the log.
    files = unzip(hirfa.export(artisan_id, tokens.artisan(artisan_id), include="documents"))
    assert any(name.startswith("onboarding/documents/") for name in files)
    assert ("document.downloaded", artisan_id) in hirfa.audit_actions(artisan_id)
    assert hirfa.export(artisan_id, tokens.artisan(artisan_id), include="everything").status_code == 422


def test_the_other_services_parts_are_read_only_with_onboardings_own_token(served, issue_token):
    """payments and accounts give an artisan's data to no client, whatever its role: only to a
    token carrying personal_data:collect, which no client is granted."""
    import requests

    for name, app in served.items():
        url = f"{app.url}/v1/artisans/art_01JD8Z6W5Q0T2C7S9K3M4N5P6R/personal-data"
        for role in (Role.MARKETPLACE, Role.OPERATOR, Role.SERVICE, Role.COMPLIANCE):
            answer = requests.get(url, headers={"Authorization": "Bearer " + issue_token(role)}, timeout=5)
            assert answer.status_code == 403, (name, role)
        assert "personal_data:collect" not in set().union(*ROLE_SCOPES.values())


def dead_source(name: str, signing_keys, timeout: float = 0.3) -> HttpPersonalDataSource:
    """A service that takes the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    dead_source.listeners.append(listener)
    return HttpPersonalDataSource(
        name=name,
        base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        issuer=TokenIssuer(signing_keys, "https://auth.hirfa.ma", SERVICE_TOKEN_TTL_SECONDS),
        timeout=timeout,
    )


dead_source.listeners = []


@pytest.mark.parametrize("down", ["payments", "accounts"])
def test_a_service_that_does_not_answer_refuses_the_export_never_a_half_archive(
    hirfa, tokens, onboarding_app, signing_keys, down
):
    artisan_id = hirfa.artisan()
    context = onboarding_app.extensions["hirfa"]
    context.personal_data_sources = tuple(
        dead_source(source.name, signing_keys) if source.name == down else source
        for source in context.personal_data_sources
    )
    try:
        response = hirfa.export(artisan_id, tokens.officer(), include="documents")
    finally:
        for listener in dead_source.listeners:
            listener.close()
        dead_source.listeners.clear()

    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.json["code"] == "personal_data_unavailable" and response.json["service"] == down
    assert response.headers["Retry-After"] == "30"
    # Nothing handed out, so nothing audited: no export, no document opened.
    actions = {action for action, _ in hirfa.audit_actions(artisan_id)}
    assert not actions & {"personal_data.exported", "document.downloaded"}


def test_the_export_and_the_reads_behind_it_are_in_the_api_documents(onboarding, served):
    import requests
    from openapi_spec_validator import validate

    documents = {
        "onboarding": onboarding.get("/openapi.json").json,
        **{name: requests.get(f"{app.url}/openapi.json", timeout=5).json() for name, app in served.items()},
    }
    for name, document in documents.items():
        validate(document)
        assert "/v1/artisans/{artisan_id}/personal-data" in document["paths"], name
    export = documents["onboarding"]["paths"]["/v1/artisans/{artisan_id}/personal-data"]["get"]
    assert "application/zip" in export["responses"]["200"]["content"]


# --- erasure requests: restricted until the anti-money-laundering duty ends ------------------------


def outbox_events(app, event_type: str) -> list:
    with app.extensions["hirfa"].session_factory() as session:
        return list(
            session.scalars(
                sa.select(OnboardingOutbox)
                .where(OnboardingOutbox.event_type == event_type)
                .order_by(OnboardingOutbox.seq)
            )
        )


def deliver_to_payments(onboarding_app, payments_app, event_type: str) -> list[bool]:
    """Onboarding's ``event_type`` events, applied by payments' consumer as it runs (schema check,
    inbox, handler): whether each was applied (a second delivery is not)."""
    consumer = make_event_consumer(payments_app.extensions["hirfa"], PAYMENTS_HANDLERS, ["onboarding.events"])
    return [
        consumer.apply(consumer.decode(row.payload.encode(), row.key.encode()))
        for row in outbox_events(onboarding_app, event_type)
    ]


def ask_erasure(onboarding, artisan_id: str, headers: dict, key: str | None = None):
    return onboarding.post(
        f"/v1/artisans/{artisan_id}/erasure-requests",
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


def test_an_erasure_request_restricts_the_artisan_until_the_aml_duty_ends(
    hirfa, tokens, onboarding, onboarding_app
):
    artisan_id = hirfa.artisan()
    first = ask_erasure(onboarding, artisan_id, tokens.artisan(artisan_id), key="erase-me")

    assert first.status_code == 201, first.json
    request = first.json
    assert request["status"] == "restricted" and request["requested_by"] == artisan_id
    requested_at = dt.datetime.fromisoformat(request["requested_at"])
    # The relationship ends with the request, and the duty ten years (the setting) after it.
    assert request["relationship_ended_at"] == request["requested_at"]
    assert dt.datetime.fromisoformat(request["retain_until"]) == requested_at.replace(
        year=requested_at.year + 10
    )
    # The same key replays the answer; another key (or compliance) finds the same request.
    replayed = ask_erasure(onboarding, artisan_id, tokens.artisan(artisan_id), key="erase-me")
    assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
    again = ask_erasure(onboarding, artisan_id, tokens.compliance())
    assert again.status_code == 200 and again.json["id"] == request["id"]

    [event] = outbox_events(onboarding_app, "onboarding.artisan.processing_restricted")
    assert json.loads(event.payload)["data"] == {
        "artisan_id": artisan_id,
        "erasure_request_id": request["id"],
        "restricted_at": request["requested_at"].replace("Z", "+00:00"),
        "retain_until": request["retain_until"].replace("Z", "+00:00"),
    }
    assert ("personal_data.erasure_requested", artisan_id) in hirfa.audit_actions(artisan_id)

    # Shown to compliance (and the artisan themself) only.
    assert onboarding.get(f"/v1/artisans/{artisan_id}", headers=tokens.marketplace()).status_code == 404
    listed = onboarding.get("/v1/artisans", query_string={"limit": 100}, headers=tokens.marketplace()).json
    assert artisan_id not in [artisan["id"] for artisan in listed["data"]]
    operator = {"Authorization": "Bearer " + hirfa.token(Role.OPERATOR)}
    assert onboarding.get(f"/v1/artisans/{artisan_id}", headers=operator).status_code == 404
    seen = onboarding.get(f"/v1/artisans/{artisan_id}", headers=tokens.officer())
    assert seen.status_code == 200 and seen.json["restricted_at"] == request["requested_at"]
    assert onboarding.get(f"/v1/artisans/{artisan_id}", headers=tokens.artisan(artisan_id)).status_code == 200
    listed = onboarding.get(f"/v1/artisans/{artisan_id}/erasure-requests", headers=tokens.compliance())
    assert listed.json["data"] == [request]
    # Registering the same person again is refused like any reuse of an identity.
    with onboarding_app.extensions["hirfa"].session_factory() as session:
        artisan = session.get(Artisan, artisan_id)
        person = {"cin": artisan.cin, "phone": "0" + artisan.phone[4:], "date_of_birth": "1985-04-12"}
    again = onboarding.post(
        "/v1/artisans",
        json=artisan_body(**person),
        headers={**tokens.marketplace(), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert again.status_code == 409 and again.json["code"] == "duplicate_identity"
    # Their phone no longer signs in: no code is sent to it.
    sign_in = onboarding.post("/v1/artisan-sessions", json={"phone": person["phone"]})
    assert sign_in.status_code == 202
    with onboarding_app.extensions["hirfa"].session_factory() as session:
        assert (
            session.scalar(sa.select(ArtisanSignIn.artisan_id).where(ArtisanSignIn.id == sign_in.json["id"]))
            is None
        )


def test_payments_refuse_new_payments_to_a_restricted_artisan(
    hirfa, tokens, onboarding, onboarding_app, payments_app
):
    artisan_id = hirfa.artisan()
    payments = payments_app.test_client()

    def create():
        return payments.post(
            "/v1/payments",
            json={
                "artisan_id": artisan_id,
                "amount": 5_000,
                "currency": "MAD",
                "application_fee": 500,
                "payment_method_type": "card",
            },
            headers={**tokens.marketplace(), "Idempotency-Key": str(uuid.uuid4())},
        )

    waiting = create()  # created before the request, confirmed after it
    assert waiting.status_code == 201
    assert ask_erasure(onboarding, artisan_id, tokens.officer()).status_code == 201
    assert deliver_to_payments(onboarding_app, payments_app, "onboarding.artisan.processing_restricted") == [
        True
    ]
    # Delivered again (a replay), it changes nothing.
    assert deliver_to_payments(onboarding_app, payments_app, "onboarding.artisan.processing_restricted") == [
        False
    ]

    refused = create()
    assert refused.status_code == 409 and refused.json["code"] == "payee_restricted"
    assert refused.json["param"] == "artisan_id"
    confirmed = payments.post(
        f"/v1/payments/{waiting.json['id']}/confirm",
        json={"card_token": "tok_unused"},
        headers=tokens.marketplace(),
    )
    assert confirmed.status_code == 409 and confirmed.json["code"] == "payee_restricted"
    assert payments.get(f"/v1/payees/{artisan_id}", headers=tokens.marketplace()).status_code == 404
    # Payments still holds what it held: the export shows the payee, restricted.
    files = unzip(hirfa.export(artisan_id, tokens.officer()))
    payee = part(files, "payments/payee.json")
    assert payee["restricted_at"] is not None and payee["can_accept_payments"] is False
    assert len(part(files, "payments/payments.json")) == 2


def test_an_artisan_or_compliance_asks_for_erasure_nobody_else(hirfa, tokens, onboarding, issue_token):
    artisan_id = hirfa.register()
    someone_else = hirfa.register()

    assert ask_erasure(onboarding, artisan_id, tokens.artisan(someone_else)).status_code == 404
    for role in (Role.MARKETPLACE, Role.OPERATOR, Role.BANK_PARTNER):
        refused = ask_erasure(onboarding, artisan_id, {"Authorization": "Bearer " + issue_token(role)})
        assert refused.status_code == 403 and refused.json["code"] == "insufficient_scope", role
    unkeyed = onboarding.post(
        f"/v1/artisans/{artisan_id}/erasure-requests", headers=tokens.artisan(artisan_id)
    )
    assert unkeyed.status_code == 400 and unkeyed.json["code"] == "idempotency_key_missing"
    assert onboarding.get(
        f"/v1/artisans/{artisan_id}/erasure-requests", headers=tokens.compliance()
    ).json == {"data": []}
    # Nothing was restricted by the refused requests.
    assert onboarding.get(f"/v1/artisans/{artisan_id}", headers=tokens.marketplace()).status_code == 200


# --- the erasure job: once the duty is over ---------------------------------------------------------


def applied_by(consumer, onboarding_app, event_type: str) -> list[bool]:
    return [
        consumer.apply(consumer.decode(row.payload.encode(), row.key.encode()))
        for row in outbox_events(onboarding_app, event_type)
    ]


def test_the_erasure_job_pseudonymises_every_service_shreds_the_documents_and_the_books_still_balance(
    hirfa, tokens, onboarding, onboarding_app, payments_app, accounts_app, issue_token
):
    artisan_id = hirfa.artisan()
    document_id = hirfa.upload(artisan_id)
    context = onboarding_app.extensions["hirfa"]
    with context.uow_factory() as uow:
        uow.session.add(
            BankAccount(
                id="ba_01JD8Z6W5Q0T2C7S9K3M4N5P6R",
                artisan_id=artisan_id,
                mode="link",
                status="linked",
                bank_code=RIB[:3],
                rib=RIB,
                iban="MA64" + RIB,
                holder_name="Fatima Zahra El Idrissi",
                is_default=True,
                created_by=MARKETPLACE,
            )
        )
        linked = bank_account_linked(artisan_id, bank_account_id="ba_01JD8Z6W5Q0T2C7S9K3M4N5P6R")
        uow.add_event(linked)  # as onboarding announced it: kept in its outbox for replays
        uow.commit()
    hirfa.ledger.deliver(linked)
    request = ask_erasure(onboarding, artisan_id, tokens.officer()).json
    deliver_to_payments(onboarding_app, payments_app, "onboarding.artisan.processing_restricted")
    retain_until = dt.datetime.fromisoformat(request["retain_until"])

    # Not before the duty is over: a day before, nothing is erased.
    assert erase_due_artisans(context.uow_factory, now=retain_until - dt.timedelta(days=1)) == 0
    assert outbox_events(onboarding_app, "onboarding.artisan.erased") == []
    assert erase_due_artisans(context.uow_factory, now=retain_until) == 1
    assert erase_due_artisans(context.uow_factory, now=retain_until + dt.timedelta(days=1)) == 0

    # Onboarding: the person is gone from every row, the documents crypto-shredded.
    with context.session_factory() as session:
        artisan = session.get(Artisan, artisan_id)
        assert (artisan.full_name, artisan.date_of_birth) == ("Erased artisan", dt.date(1900, 1, 1))
        assert artisan.cin == artisan.phone == "ERASED" + artisan_id[-14:]
        account = session.get(BankAccount, "ba_01JD8Z6W5Q0T2C7S9K3M4N5P6R")
        assert (account.rib, account.iban, account.holder_name) == (None, None, "Erased artisan")
        documents = session.scalars(sa.select(KycDocument).where(KycDocument.artisan_id == artisan_id)).all()
        assert len(documents) == 2
        for document in documents:
            assert document.shredded_at is not None
            assert (document.wrapped_key, document.nonce, document.ciphertext) == (b"", b"", b"")
            with pytest.raises(DecryptionError):  # no data key is left to unwrap, whatever the master keys
                context.cipher.decrypt(
                    SealedBlob(document.key_id, document.wrapped_key, document.nonce, document.ciphertext),
                    associated_data(document.id, artisan_id, document.kind),
                )
    # The events kept for replays no longer carry the RIB (and still match their schema).
    [kept] = outbox_events(onboarding_app, "onboarding.bank_account.linked")
    assert RIB not in kept.payload and json.loads(kept.payload)["data"]["holder_name"] == "Erased artisan"
    gone = onboarding.get(
        f"/v1/artisans/{artisan_id}/documents/{document_id}/content", headers=tokens.officer()
    )
    assert gone.status_code == 410 and gone.json["code"] == "document_shredded"
    assert ("personal_data.erased", "system") in hirfa.audit_actions(artisan_id)
    listed = onboarding.get(f"/v1/artisans/{artisan_id}/erasure-requests", headers=tokens.compliance()).json
    assert listed["data"][0]["status"] == "erased" and listed["data"][0]["erased_at"] is not None

    # Payments and accounts erase theirs when the event reaches them (once).
    payments_consumer = make_event_consumer(
        payments_app.extensions["hirfa"], PAYMENTS_HANDLERS, ["onboarding.events"]
    )
    assert applied_by(payments_consumer, onboarding_app, "onboarding.artisan.erased") == [True]
    assert applied_by(hirfa.ledger.consumer, onboarding_app, "onboarding.artisan.erased") == [True]
    assert applied_by(hirfa.ledger.consumer, onboarding_app, "onboarding.artisan.erased") == [False]
    # A replay of the bank account's news brings no RIB back.
    assert hirfa.ledger.deliver(
        bank_account_linked(artisan_id, bank_account_id="ba_01JD8Z6W5Q0T2C7S9K3M4N5P6S")
    )

    files = unzip(hirfa.export(artisan_id, tokens.officer(), include="documents"))
    profile = part(files, "onboarding/profile.json")
    assert profile["full_name"] == "Erased artisan" and profile["cin"].startswith("ERASED")
    assert not any(name.startswith("onboarding/documents/") for name in files)
    everything = b"".join(files.values())
    for trace in (b"Fatima Zahra", RIB.encode(), b"Tajine", JPEG[:40]):
        assert trace not in everything, trace
    [payment] = part(files, "payments/payments.json")
    assert payment["description"] is None and payment["status"] == "succeeded"
    assert part(files, "accounts/payout_destinations.json") == []
    # The ledger keeps the amounts under the artisan id, and the books still balance.
    ledger = {account["account"]: account for account in part(files, "accounts/ledger_accounts.json")}
    assert ledger["pending"]["balance"] == {"amount": 13_500, "currency": "MAD"}
    integrity = accounts_app.test_client().get(
        "/v1/ledger/integrity", headers={"Authorization": "Bearer " + issue_token(Role.OPERATOR)}
    )
    assert integrity.status_code == 200 and integrity.json["differences"] == [], integrity.json
