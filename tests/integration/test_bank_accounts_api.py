"""Artisans' bank accounts through onboarding's HTTP API: linking by RIB/IBAN, default account,
openings at a partner bank, the bank's signed callbacks, and recovery from outages and lost callbacks.

The partner bank is ``FakeBankPartner`` (in memory, controlled by each test) except in the last
test, which runs the bank sandbox and onboarding as real HTTP servers talking to each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from sandbox.bank.app import create_app as create_bank_sandbox_app
from sandbox.bank.app import stop_background_work
from sandbox.bank.config import SandboxBankConfig
from services.onboarding.adapters.orm import Artisan, BankAccount, OutboxMessage
from services.onboarding.app import create_app as create_onboarding_app
from services.onboarding.domain.ports import AccountOpening
from services.onboarding.service_layer.api_clients import ensure_client
from services.onboarding.service_layer.bank_accounts import sync_openings
from shared.auth.scopes import Role
from shared.banking import KNOWN_BANKS, PARTNER_BANK_CODES, make_rib, parse_rib
from shared.partner_ports import PartnerRegistry
from shared.signatures import sign
from tests.fakes import FakeBankPartner
from tests.integration.conftest import MARKETPLACE, MARKETPLACE_SECRET, OTHER_MARKETPLACE
from tests.support import artisan_body, wait_until

ARTISAN_NAME = "Youssef Amrani"
RIB = "001810007800020110620318"
RIB_AS_IBAN = "MA64001810007800020110620318"
RIB_WITH_WRONG_KEY = RIB[:-1] + "7"
OTHER_RIB = make_rib("007", "780", "0000000000001234")
CALLBACK_SECRET = "test-bank-callback-secret"
PARTNER_BANK = "banque_populaire"
LINKED = "onboarding.bank_account.linked"
DEFAULT_CHANGED = "onboarding.bank_account.default_changed"


# --- fixtures and helpers ------------------------------------------------------------------------


def start_onboarding_app(config, **adapters):
    app = create_onboarding_app(config, **adapters)
    uow_factory = app.extensions["hirfa"].uow_factory
    for client_id in (MARKETPLACE, OTHER_MARKETPLACE):
        ensure_client(
            uow_factory(),
            client_id=client_id,
            client_secret=MARKETPLACE_SECRET,
            name=client_id,
            role=Role.MARKETPLACE,
        )
    return app


@pytest.fixture
def bank() -> FakeBankPartner:
    return FakeBankPartner(CALLBACK_SECRET)


@pytest.fixture
def app(onboarding_config, bank):
    partners = PartnerRegistry({slug: bank for slug in onboarding_config.partner_bank_slugs})
    app = start_onboarding_app(onboarding_config, bank_partners=partners)
    yield app
    app.extensions["hirfa"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def headers(marketplace_headers):
    """headers(client_id=…) with a fresh Idempotency-Key, for the POSTs that require one."""
    return lambda client_id=MARKETPLACE: marketplace_headers(uuid.uuid4().hex, client_id=client_id)


@pytest.fixture
def register(app, client, headers):
    """register(full_name=…, client_id=…, tier=1) -> the id of an artisan at ``tier`` (linking needs 1)."""

    def register_artisan(full_name: str = ARTISAN_NAME, client_id: str = MARKETPLACE, tier: int = 1) -> str:
        response = client.post(
            "/v1/artisans", json=artisan_body(full_name=full_name), headers=headers(client_id)
        )
        assert response.status_code == 201, response.json
        set_tier(app, response.json["id"], tier)
        return response.json["id"]

    return register_artisan


def set_tier(app, artisan_id: str, tier: int) -> None:
    # Reaching a tier through the API takes phone verification, documents and a compliance review;
    # that path is tested in test_kyc_api.py. Here only the tier matters, so it is set directly.
    with app.extensions["hirfa"].session_factory() as session:
        session.get(Artisan, artisan_id).kyc_tier = tier
        session.commit()


def raise_to_tier_2(app, artisan_id: str) -> None:
    set_tier(app, artisan_id, 2)


def link(client, headers, artisan_id: str, client_id: str = MARKETPLACE, **fields):
    body = {"mode": "link", "holder_name": ARTISAN_NAME, **fields}
    return client.post(f"/v1/artisans/{artisan_id}/bank-accounts", json=body, headers=headers(client_id))


def open_at(client, headers, artisan_id: str, bank: str = PARTNER_BANK, **fields):
    body = {"mode": "open", "bank": bank, **fields}
    return client.post(f"/v1/artisans/{artisan_id}/bank-accounts", json=body, headers=headers())


def events(app, event_type: str | None = None) -> list[dict]:
    query = sa.select(OutboxMessage).order_by(OutboxMessage.seq)
    if event_type:
        query = query.where(OutboxMessage.event_type == event_type)
    with app.extensions["hirfa"].session_factory() as session:
        return [json.loads(row.payload) for row in session.scalars(query)]


def bank_account_events(app) -> list[dict]:
    return [event for event in events(app) if event["type"].startswith("onboarding.bank_account.")]


def stored(app, bank_account_id: str) -> BankAccount:
    with app.extensions["hirfa"].session_factory() as session:
        return session.get(BankAccount, bank_account_id)


def all_stored_accounts(app) -> list[BankAccount]:
    with app.extensions["hirfa"].session_factory() as session:
        return list(session.scalars(sa.select(BankAccount).order_by(BankAccount.id)))


def defaults(client, marketplace_headers, artisan_id: str) -> list[str]:
    """The ids of the artisan's usable accounts marked default, as the API lists them.

    Only linked and opened accounts count: on a pending opening ``is_default`` records that the
    default was asked for, to be applied when the bank opens it.
    """
    listed = client.get(f"/v1/artisans/{artisan_id}/bank-accounts", headers=marketplace_headers()).json[
        "data"
    ]
    return [
        account["id"]
        for account in listed
        if account["is_default"] and account["status"] in ("linked", "opened")
    ]


def callback_body(
    opening: AccountOpening, bank: str = PARTNER_BANK, holder_name: str = ARTISAN_NAME
) -> bytes:
    """A callback as the bank sandbox sends it: compact JSON, the opening under ``data``."""
    data = {
        "opening_id": opening.partner_reference,
        "reference": opening.reference,
        "bank": bank,
        "status": opening.status,
    }
    if opening.rib:
        data["rib"] = opening.rib
    data["holder_name"] = holder_name
    if opening.refusal_reason:
        data["refusal_reason"] = opening.refusal_reason
    event = {
        "id": "evt_" + uuid.uuid4().hex[:24],
        "type": f"account_opening.{opening.status}",
        "created": int(time.time()),
        "data": data,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = CALLBACK_SECRET, timestamp: int | None = None) -> dict:
    return {"Content-Type": "application/json", "Bank-Signature": sign(secret, body, timestamp=timestamp)}


def post_callback(client, body: bytes, *, bank: str = PARTNER_BANK, headers: dict | None = None):
    """POST ``body`` to the bank's callback URL, signed with the shared secret unless ``headers`` say otherwise."""
    return client.post(
        f"/v1/banks/{bank}/callbacks", data=body, headers=signed(body) if headers is None else headers
    )


def sync(app, poll_after: dt.timedelta = dt.timedelta(0)) -> dict:
    services = app.extensions["hirfa"]
    return sync_openings(services.uow_factory, services.bank_accounts, poll_after=poll_after)


@pytest.fixture
def pending_opening(app, client, headers, register, bank):
    """A tier-2 artisan with an opening submitted to the bank and not answered yet: (artisan id, account)."""
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    response = open_at(client, headers, artisan_id)
    assert response.status_code == 202, response.json
    return artisan_id, response.json


# --- linking ------------------------------------------------------------------------------------


def test_a_valid_rib_links_as_the_default_account_and_is_announced(app, client, headers, register):
    artisan_id = register()
    response = link(client, headers, artisan_id, rib=RIB)

    assert response.status_code == 201, response.json
    account = response.json
    assert account["id"].startswith("ba_")
    assert (account["mode"], account["status"], account["is_default"]) == ("link", "linked", True)
    assert (account["rib"], account["iban"], account["bank_code"]) == (RIB, RIB_AS_IBAN, "001")
    assert response.headers["Location"] == f"/v1/artisans/{artisan_id}/bank-accounts/{account['id']}"

    row = stored(app, account["id"])
    assert (row.artisan_id, row.rib, row.status, row.is_default) == (artisan_id, RIB, "linked", True)
    (event,) = events(app, LINKED)
    assert event["subject"] == artisan_id
    assert event["data"]["bank_account_id"] == account["id"]
    assert (event["data"]["rib"], event["data"]["iban"], event["data"]["mode"]) == (RIB, RIB_AS_IBAN, "link")
    assert event["data"]["bank_name"] == KNOWN_BANKS["001"].name
    assert event["data"]["is_default"] is True


def test_an_iban_printed_in_groups_links_the_same_account(app, client, headers, register):
    artisan_id = register()
    response = link(client, headers, artisan_id, iban="MA64 0018 1000 7800 0201 1062 0318")

    assert response.status_code == 201, response.json
    assert (response.json["rib"], response.json["iban"]) == (RIB, RIB_AS_IBAN)
    (event,) = events(app, LINKED)
    assert event["data"]["rib"] == RIB


@pytest.mark.parametrize(
    ("number", "code", "param"),
    [
        pytest.param({"rib": RIB_WITH_WRONG_KEY}, "invalid_rib", "rib", id="rib-with-a-mistyped-digit"),
        pytest.param(
            {"iban": "MA64 0018 1000 7800 0201 1062 0317"},
            "invalid_iban",
            "iban",
            id="iban-with-a-mistyped-digit",
        ),
        pytest.param(
            {"rib": make_rib("999", "780", "0000000000001234")},
            "unknown_bank",
            "rib",
            id="rib-of-an-unknown-bank",
        ),
        pytest.param({"rib": RIB[:-2]}, "invalid_rib", "rib", id="rib-too-short"),
        pytest.param({"rib": RIB + "0"}, "invalid_rib", "rib", id="rib-too-long"),
        pytest.param({"rib": "00181000780002011062031A"}, "invalid_rib", "rib", id="rib-with-a-letter"),
        pytest.param({"rib": RIB, "iban": RIB_AS_IBAN}, "validation_error", "iban", id="rib-and-iban"),
    ],
)
def test_a_wrong_account_number_is_refused_with_its_code(app, client, headers, register, number, code, param):
    artisan_id = register()
    response = link(client, headers, artisan_id, **number)

    assert response.status_code == 422
    assert (response.json["code"], response.json["param"]) == (code, param)
    assert all_stored_accounts(app) == []
    assert bank_account_events(app) == []


def test_a_holder_who_is_not_the_artisan_is_refused(app, client, headers, register):
    artisan_id = register()
    response = link(client, headers, artisan_id, rib=RIB, holder_name="Karim Benjelloun")

    assert response.status_code == 422
    assert (response.json["code"], response.json["param"]) == ("holder_name_mismatch", "holder_name")
    assert all_stored_accounts(app) == []
    assert bank_account_events(app) == []


@pytest.mark.parametrize("holder_name", ["AMRANI YOUSSEF", "youssef amrani", "يوسف العمراني"])
def test_the_holder_name_may_be_reordered_or_in_arabic_script(app, client, headers, register, holder_name):
    artisan_id = register()
    response = link(client, headers, artisan_id, rib=RIB, holder_name=holder_name)

    assert response.status_code == 201, response.json
    assert response.json["holder_name"] == holder_name


def test_linking_the_same_rib_again_returns_the_account_and_another_artisan_cannot_take_it(
    app, client, headers, register
):
    owner = register()
    first = link(client, headers, owner, rib=RIB)
    again = link(client, headers, owner, iban=RIB_AS_IBAN)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]

    someone_else = register(full_name=ARTISAN_NAME)  # a namesake: the name matches, the account is taken
    taken = link(client, headers, someone_else, rib=RIB)
    # The account stays with its holder; the second link waits for compliance (a claim), it does
    # not take the account (see test_bank_account_claims.py).
    assert taken.status_code == 202
    assert (taken.json["status"], taken.json["id"]) == ("pending_review", first.json["id"])

    assert [row.id for row in all_stored_accounts(app)] == [first.json["id"]]
    assert len(events(app, LINKED)) == 1


# --- default account ---------------------------------------------------------------------------


def test_a_second_account_becomes_default_only_when_asked(
    app, client, headers, register, marketplace_headers
):
    artisan_id = register()
    first = link(client, headers, artisan_id, rib=RIB).json
    second = link(client, headers, artisan_id, rib=OTHER_RIB).json
    assert second["is_default"] is False
    assert defaults(client, marketplace_headers, artisan_id) == [first["id"]]

    third_rib = make_rib("230", "780", "0000000000005678")
    third = link(client, headers, artisan_id, rib=third_rib, make_default=True).json
    assert third["is_default"] is True
    assert defaults(client, marketplace_headers, artisan_id) == [third["id"]]
    assert [event["data"]["is_default"] for event in events(app, LINKED)] == [True, False, True]


def test_switching_the_default_account_leaves_exactly_one_and_is_announced(
    app, client, headers, register, marketplace_headers
):
    artisan_id = register()
    first = link(client, headers, artisan_id, rib=RIB).json
    second = link(client, headers, artisan_id, rib=OTHER_RIB).json

    switched = client.post(
        f"/v1/artisans/{artisan_id}/bank-accounts/{second['id']}/default", headers=marketplace_headers()
    )
    assert switched.status_code == 200, switched.json
    assert switched.json["is_default"] is True
    assert defaults(client, marketplace_headers, artisan_id) == [second["id"]]
    assert stored(app, first["id"]).is_default is False
    (event,) = events(app, DEFAULT_CHANGED)
    assert (event["data"]["artisan_id"], event["data"]["bank_account_id"]) == (artisan_id, second["id"])

    # Asking again changes nothing and announces nothing.
    again = client.post(
        f"/v1/artisans/{artisan_id}/bank-accounts/{second['id']}/default", headers=marketplace_headers()
    )
    assert again.status_code == 200
    assert len(events(app, DEFAULT_CHANGED)) == 1


def test_an_opening_still_pending_cannot_be_the_default(app, client, marketplace_headers, pending_opening):
    artisan_id, opening = pending_opening
    response = client.post(
        f"/v1/artisans/{artisan_id}/bank-accounts/{opening['id']}/default", headers=marketplace_headers()
    )
    assert response.status_code == 409
    assert response.json["code"] == "bank_account_not_usable"
    assert events(app, DEFAULT_CHANGED) == []


# --- opening at a partner bank -----------------------------------------------------------------


def test_opening_needs_kyc_tier_2_and_nothing_reaches_the_bank_before(app, client, headers, register, bank):
    artisan_id = register()
    response = open_at(client, headers, artisan_id)

    assert response.status_code == 409
    assert (response.json["code"], response.json["param"]) == ("kyc_tier_too_low", "mode")
    assert bank.requests == []
    assert all_stored_accounts(app) == []


def test_opening_at_a_bank_that_is_not_a_partner_is_refused(app, client, headers, register, bank):
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    response = open_at(client, headers, artisan_id, bank="attijariwafa_bank")

    assert response.status_code == 422
    assert (response.json["code"], response.json["param"]) == ("unknown_partner_bank", "bank")
    assert bank.requests == []
    assert all_stored_accounts(app) == []


def test_an_opening_is_pending_until_the_bank_answers(app, client, headers, bank, pending_opening):
    artisan_id, opening = pending_opening
    assert (opening["mode"], opening["status"], opening["partner_bank"]) == ("open", "pending", PARTNER_BANK)
    assert (opening["rib"], opening["iban"], opening["is_default"]) == (None, None, False)

    (sent,) = bank.requests
    assert (sent.reference, sent.bank, sent.holder_name) == (opening["id"], PARTNER_BANK, ARTISAN_NAME)
    assert sent.callback_url.endswith(f"/v1/banks/{PARTNER_BANK}/callbacks")
    row = stored(app, opening["id"])
    assert row.partner_reference == bank.opening_for(opening["id"]).partner_reference
    assert row.submitted_at is not None
    assert bank_account_events(app) == []

    again = open_at(client, headers, artisan_id)
    assert again.status_code == 200
    assert (again.json["id"], again.json["status"]) == (opening["id"], "pending")
    assert len(bank.requests) == 1


# --- the bank's callbacks ----------------------------------------------------------------------


def test_a_signed_callback_opens_the_account_once(app, client, marketplace_headers, bank, pending_opening):
    artisan_id, opening = pending_opening
    decided = bank.decide(opening["id"])
    assert decided.rib[:3] == PARTNER_BANK_CODES[PARTNER_BANK]
    body = callback_body(decided)

    response = post_callback(client, body)
    assert response.status_code == 200, response.json
    assert response.json == {"received": True, "applied": True, "status": "opened"}

    account = client.get(
        f"/v1/artisans/{artisan_id}/bank-accounts/{opening['id']}", headers=marketplace_headers()
    ).json
    assert (account["status"], account["rib"], account["is_default"]) == ("opened", decided.rib, True)
    assert account["iban"] == parse_rib(decided.rib).iban
    assert account["bank_code"] == PARTNER_BANK_CODES[PARTNER_BANK]
    (event,) = events(app, LINKED)
    assert (event["data"]["bank_account_id"], event["data"]["mode"]) == (opening["id"], "open")
    assert event["data"]["rib"] == decided.rib

    # Banks deliver some callbacks twice: the duplicate is acknowledged and changes nothing.
    updated_at = stored(app, opening["id"]).updated_at
    duplicate = post_callback(client, body)
    assert duplicate.status_code == 200
    assert duplicate.json == {"received": True, "applied": False, "status": "opened"}
    assert stored(app, opening["id"]).updated_at == updated_at
    assert len(events(app, LINKED)) == 1


def _wrong_secret(body: bytes) -> tuple[bytes, dict]:
    return body, signed(body, secret="not-the-bank-secret")


def _tampered_body(body: bytes) -> tuple[bytes, dict]:
    return body.replace(b'"status":"opened"', b'"status":"opened" '), signed(body)


def _no_signature(body: bytes) -> tuple[bytes, dict]:
    return body, {"Content-Type": "application/json"}


def _stale_timestamp(body: bytes) -> tuple[bytes, dict]:
    return body, signed(body, timestamp=int(time.time()) - 3600)


@pytest.mark.parametrize("forge", [_wrong_secret, _tampered_body, _no_signature, _stale_timestamp])
def test_a_callback_without_a_valid_signature_is_refused_and_changes_nothing(
    app, client, bank, pending_opening, forge
):
    _, opening = pending_opening
    body, headers = forge(callback_body(bank.decide(opening["id"])))

    response = post_callback(client, body, headers=headers)
    assert response.status_code == 401
    assert response.json["code"] == "invalid_signature"
    assert (stored(app, opening["id"]).status, stored(app, opening["id"]).rib) == ("pending", None)
    assert bank_account_events(app) == []


def test_a_refused_opening_records_the_reason_and_is_not_announced(app, client, bank, pending_opening):
    _, opening = pending_opening
    response = post_callback(
        client, callback_body(bank.decide(opening["id"], refusal_reason="duplicate_customer"))
    )

    assert response.status_code == 200, response.json
    assert response.json["status"] == "refused"
    row = stored(app, opening["id"])
    assert (row.status, row.refusal_reason, row.rib, row.is_default) == (
        "refused",
        "duplicate_customer",
        None,
        False,
    )
    assert bank_account_events(app) == []


def test_a_callback_for_an_unknown_opening_is_404(app, client, bank, pending_opening):
    _, opening = pending_opening
    decided = bank.decide(opening["id"])
    unknown = dataclasses.replace(decided, reference="ba_01J0000000000000000000000Z")

    response = post_callback(client, callback_body(unknown))
    assert response.status_code == 404
    assert (response.json["code"], response.json["param"]) == ("resource_not_found", "reference")
    # The right opening, but announced on another bank's callback URL: not ours to settle either.
    elsewhere = post_callback(client, callback_body(decided, bank="cih_bank"), bank="cih_bank")
    assert elsewhere.status_code == 404
    assert stored(app, opening["id"]).status == "pending"
    assert bank_account_events(app) == []


# --- bank outage and lost callbacks --------------------------------------------------------------


def test_an_opening_during_a_bank_outage_is_kept_and_submitted_when_the_bank_is_back(
    app, client, headers, register, bank
):
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    bank.down = True
    response = open_at(client, headers, artisan_id)
    assert response.status_code == 202, response.json
    assert response.json["status"] == "pending"
    assert stored(app, response.json["id"]).partner_reference is None

    sync(app)  # the bank is still down: the opening waits
    assert bank.requests == []
    assert stored(app, response.json["id"]).partner_reference is None

    bank.down = False
    sync(app)
    (sent,) = bank.requests
    assert sent.reference == response.json["id"]
    row = stored(app, response.json["id"])
    assert row.partner_reference == bank.opening_for(response.json["id"]).partner_reference
    assert (row.status, row.submitted_at is not None) == ("pending", True)


def test_an_opening_whose_callback_never_comes_is_settled_by_polling(app, bank, pending_opening):
    _, opening = pending_opening
    assert sync(app, poll_after=dt.timedelta(hours=1))["polled"] == 0  # not overdue yet

    bank.down = True
    assert sync(app)["settled"] == 0  # cannot poll during an outage; tried again next time
    bank.down = False
    assert sync(app) == {"submitted": 0, "polled": 1, "settled": 0}  # still undecided at the bank

    decided = bank.decide(opening["id"])
    assert sync(app) == {"submitted": 0, "polled": 1, "settled": 1}
    row = stored(app, opening["id"])
    assert (row.status, row.rib, row.is_default) == ("opened", decided.rib, True)
    (event,) = events(app, LINKED)
    assert event["data"]["bank_account_id"] == opening["id"]

    assert sync(app) == {"submitted": 0, "polled": 0, "settled": 0}
    assert len(events(app, LINKED)) == 1


def test_a_refused_opening_does_not_keep_the_default_from_a_later_account(
    app, client, headers, register, bank, marketplace_headers
):
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    opening = open_at(client, headers, artisan_id, make_default=True).json
    post_callback(
        client, callback_body(bank.decide(opening["id"], refusal_reason="customer_due_diligence_failed"))
    )

    linked = link(client, headers, artisan_id, rib=RIB)
    assert linked.json["is_default"] is True
    assert defaults(client, marketplace_headers, artisan_id) == [linked.json["id"]]


def test_an_account_linked_while_an_opening_waits_to_become_default_is_the_default_meanwhile(
    app, client, headers, register, bank, marketplace_headers
):
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    opening = open_at(client, headers, artisan_id, make_default=True).json

    linked = link(client, headers, artisan_id, rib=RIB)
    assert linked.json["is_default"] is True
    assert defaults(client, marketplace_headers, artisan_id) == [linked.json["id"]]

    post_callback(client, callback_body(bank.decide(opening["id"])))
    assert defaults(client, marketplace_headers, artisan_id) == [opening["id"]]


def test_an_opening_asked_to_be_default_takes_over_when_the_bank_opens_it(
    app, client, headers, register, bank, marketplace_headers
):
    artisan_id = register()
    raise_to_tier_2(app, artisan_id)
    linked = link(client, headers, artisan_id, rib=RIB).json
    opening = open_at(client, headers, artisan_id, make_default=True).json

    post_callback(client, callback_body(bank.decide(opening["id"])))
    assert defaults(client, marketplace_headers, artisan_id) == [opening["id"]]
    assert stored(app, linked["id"]).is_default is False


# --- visibility ---------------------------------------------------------------------------------


def test_another_marketplace_cannot_see_or_change_the_artisans_bank_accounts(
    client, headers, register, marketplace_headers
):
    artisan_id = register()
    account = link(client, headers, artisan_id, rib=RIB).json
    theirs = marketplace_headers(client_id=OTHER_MARKETPLACE)
    base = f"/v1/artisans/{artisan_id}/bank-accounts"

    for response in (
        client.get(base, headers=theirs),
        client.get(f"{base}/{account['id']}", headers=theirs),
        client.post(f"{base}/{account['id']}/default", headers=theirs),
        link(client, headers, artisan_id, client_id=OTHER_MARKETPLACE, rib=OTHER_RIB),
    ):
        assert response.status_code == 404
        assert (response.json["code"], response.json["param"]) == ("resource_not_found", "artisan_id")


# --- against the bank sandbox, over real HTTP ---------------------------------------------------


class LocalServer:
    """A WSGI app served from a background thread on a free local port.

    The port is bound first and the app attached by ``serve``, so an app whose configuration needs
    its own URL (onboarding's callback URL) can be built once the port is known.
    """

    def __init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, app=None, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(self, app) -> None:
        self._server.app = app
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def test_an_account_opened_at_the_sandbox_bank_arrives_by_its_signed_callback(
    onboarding_config, marketplace_headers
):
    sandbox_config = SandboxBankConfig(
        callback_secret=onboarding_config.bank_callback_secret,
        api_key=onboarding_config.bank_partner_api_key,
        callback_delay_seconds=0.2,
        callback_retries=3,
        callback_backoff_seconds=0.1,
    )
    sandbox = create_bank_sandbox_app(sandbox_config)
    sandbox_server, onboarding_server = LocalServer(), LocalServer()
    config = dataclasses.replace(
        onboarding_config, bank_partner_url=sandbox_server.url, public_url=onboarding_server.url
    )
    onboarding = start_onboarding_app(config)  # the real HTTP adapter, as in production
    try:
        sandbox_server.serve(sandbox)
        onboarding_server.serve(onboarding)

        registered = requests.post(
            f"{onboarding_server.url}/v1/artisans",
            json=artisan_body(full_name=ARTISAN_NAME),
            headers=marketplace_headers("sandbox-register"),
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        artisan_id = registered.json()["id"]
        raise_to_tier_2(onboarding, artisan_id)

        accounts_url = f"{onboarding_server.url}/v1/artisans/{artisan_id}/bank-accounts"
        opened = requests.post(
            accounts_url,
            json={"mode": "open", "bank": "al_barid_bank"},
            headers=marketplace_headers("sandbox-open"),
            timeout=10,
        )
        assert opened.status_code == 202, opened.text
        account_url = f"{accounts_url}/{opened.json()['id']}"

        def opened_account():
            account = requests.get(account_url, headers=marketplace_headers(), timeout=10).json()
            return account if account["status"] != "pending" else None

        account = wait_until(opened_account, timeout=15, interval=0.1, message="the sandbox bank's callback")
        assert account["status"] == "opened"
        number = parse_rib(account["rib"])
        assert number.bank_code == PARTNER_BANK_CODES["al_barid_bank"]
        assert (account["iban"], account["is_default"]) == (number.iban, True)

        # The sandbox delivers every callback twice; once both are in, there is still one account.
        stop_background_work(sandbox)
        (event,) = events(onboarding, LINKED)
        assert event["data"]["rib"] == account["rib"]
    finally:
        stop_background_work(sandbox)
        onboarding_server.stop()
        sandbox_server.stop()
        onboarding.extensions["hirfa"].engine.dispose()


def test_a_bank_opening_a_rib_already_linked_elsewhere_is_refused_not_a_crash(
    app, client, headers, register, bank, pending_opening
):
    artisan_id, opening = pending_opening
    decided = bank.decide(opening["id"])
    other = register(full_name="Amina Tazi")
    assert link(client, headers, other, rib=decided.rib, holder_name="Amina Tazi").status_code == 201
    response = post_callback(client, callback_body(decided))
    assert response.status_code == 200 and response.json["status"] == "refused"
    account = stored(app, opening["id"])
    assert (account.status, account.refusal_reason, account.rib) == ("refused", "rib_already_linked", None)
    assert [e["data"]["bank_account_id"] for e in events(app, LINKED)] != [opening["id"]]


def test_a_callback_naming_another_bank_opening_is_refused(app, client, bank, pending_opening):
    _, opening = pending_opening
    decided = dataclasses.replace(bank.decide(opening["id"]), partner_reference="aop_someone_else")
    response = post_callback(client, callback_body(decided))
    assert response.status_code == 404
    assert stored(app, opening["id"]).status == "pending"
