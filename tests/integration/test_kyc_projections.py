"""Onboarding's KYC and bank-account events, as payments and accounts project them.

Events go through the real consumer path (consumer-side schema check, inbox, handler, commit in
one transaction) with the handlers each service's ``consume`` command wires, and the effects are
read back through the HTTP APIs (the payout destinations, which no API serves yet, from the table).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import LedgerAccount, PayoutDestination
from services.accounts.adapters.orm import OutboxMessage as AccountsOutbox
from services.accounts.cli import _handlers as accounts_cli_handlers
from services.accounts.config import AccountsConfig
from services.accounts.service_layer.projections import make_handlers as make_accounts_handlers
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.auth.scopes import Role
from shared.events import Event, make_event
from shared.events.consumer import EventConsumer
from shared.ids import new_id
from shared.runtime import make_event_consumer
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE

# Onboarding's default caps (TIER_CAPS_CENTIMES), in centimes.
CAPS = {0: 0, 1: 20_000, 2: 500_000, 3: 2_000_000}
ALL_ONBOARDING_TYPES = {
    "onboarding.artisan.registered",
    "onboarding.artisan.marketplace_linked",
    "onboarding.artisan.kyc_tier_changed",
    "onboarding.artisan.kyc_rejected",
    "onboarding.bank_account.linked",
    "onboarding.bank_account.default_changed",
    "onboarding.artisan.processing_restricted",
    "onboarding.artisan.erased",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _cap(tier: int) -> dict:
    return {"amount": CAPS[tier], "currency": "MAD"}


def _balance_cap(tier: int) -> dict:
    """The cap as the balance shows it: in dirhams too."""
    return {**_cap(tier), "amount_decimal": f"{CAPS[tier] // 100}.{CAPS[tier] % 100:02d}"}


# -- events, built and checked against their schemas as onboarding does --------------------------


def registered(artisan_id: str, marketplace_id: str = MARKETPLACE) -> Event:
    return make_event(
        "onboarding.artisan.registered",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "kyc_tier": 0,
            "tier_cap": _cap(0),
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": _now(),
        },
    )


def marketplace_linked(artisan_id: str, marketplace_id: str, kyc_tier: int = 0) -> Event:
    return make_event(
        "onboarding.artisan.marketplace_linked",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "kyc_tier": kyc_tier,
            "tier_cap": _cap(kyc_tier),
            "linked_at": _now(),
        },
    )


def tier_changed(artisan_id: str, previous: int, tier: int, version: int, status: str = "active") -> Event:
    return make_event(
        "onboarding.artisan.kyc_tier_changed",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "previous_tier": previous,
            "kyc_tier": tier,
            "direction": "up" if tier > previous else "down",
            "tier_cap": _cap(tier),
            "reason_code": "test",
            "actor": "cli_test_officer",
            "kyc_status": status,
            "kyc_version": version,
            "changed_at": _now(),
        },
    )


def kyc_rejected(artisan_id: str, tier: int, version: int, status: str) -> Event:
    return make_event(
        "onboarding.artisan.kyc_rejected",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "review_id": new_id("rev"),
            "review_kind": "tier_upgrade",
            "reason_code": "document_forged",
            "kyc_tier": tier,
            "kyc_status": status,
            "kyc_version": version,
            "rejected_at": _now(),
        },
    )


def bank_account_linked(artisan_id: str, bank_account_id: str, rib: str, is_default: bool) -> Event:
    return make_event(
        "onboarding.bank_account.linked",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "bank_account_id": bank_account_id,
            "mode": "link",
            "rib": rib,
            "iban": "MA64" + rib,
            "bank_code": rib[:3],
            "bank_name": "Attijariwafa bank",
            "holder_name": "Fatima Zahra El Amrani",
            "is_default": is_default,
            "linked_at": _now(),
        },
    )


def default_changed(artisan_id: str, bank_account_id: str) -> Event:
    return make_event(
        "onboarding.bank_account.default_changed",
        subject=artisan_id,
        data={"artisan_id": artisan_id, "bank_account_id": bank_account_id, "changed_at": _now()},
    )


# -- both services' consumers, and reading their APIs ---------------------------------------------


class Services:
    """Delivers an event to payments' and accounts' consumers, and reads what they expose."""

    def __init__(self, payments_app, accounts_app, marketplace_headers, issue_token) -> None:
        self.payments_app = payments_app
        self.accounts_app = accounts_app
        self.payments_ctx = payments_app.extensions["hirfa"]
        self.accounts_ctx = accounts_app.extensions["hirfa"]
        self.payments_consumer = make_event_consumer(
            self.payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"]
        )
        self.accounts_consumer = make_event_consumer(
            self.accounts_ctx, make_accounts_handlers("MAD"), ["onboarding.events"]
        )
        self.marketplace_headers = marketplace_headers
        # An operator sees every artisan, so it can read what no marketplace may see yet (a bank
        # partner sees only the artisans paid at its bank).
        self.operator_headers = {
            "Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_operator")
        }

    def deliver(self, event: Event) -> tuple[bool, bool]:
        """As the broker would: the bytes, decoded and applied by each consumer. Returns what each applied."""
        return tuple(
            self._deliver_to(consumer, event) for consumer in (self.payments_consumer, self.accounts_consumer)
        )

    @staticmethod
    def _deliver_to(consumer: EventConsumer, event: Event) -> bool:
        decoded = consumer.decode(event.to_bytes(), event.key.encode())
        return consumer.apply(decoded)

    def payee(self, artisan_id: str, client_id: str = MARKETPLACE):
        headers = self.marketplace_headers(client_id=client_id)
        return self.payments_app.test_client().get(f"/v1/payees/{artisan_id}", headers=headers)

    def balance(self, artisan_id: str, client_id: str | None = MARKETPLACE):
        headers = (
            self.operator_headers if client_id is None else self.marketplace_headers(client_id=client_id)
        )
        return self.accounts_app.test_client().get(f"/v1/artisans/{artisan_id}/balance", headers=headers)

    def accounts_opened_events(self, artisan_id: str) -> list[str]:
        with self.accounts_ctx.session_factory() as session:
            return list(
                session.scalars(
                    sa.select(AccountsOutbox.event_type).where(
                        AccountsOutbox.key == artisan_id,
                        AccountsOutbox.event_type == "accounts.ledger.artisan_accounts_opened",
                    )
                )
            )

    def ledger_accounts(self, artisan_id: str) -> int:
        with self.accounts_ctx.session_factory() as session:
            return session.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerAccount)
                .where(LedgerAccount.owner_id == artisan_id)
            )

    def payout_destinations(self, artisan_id: str) -> dict[str, PayoutDestination]:
        with self.accounts_ctx.session_factory() as session:
            rows = session.scalars(
                sa.select(PayoutDestination).where(PayoutDestination.artisan_id == artisan_id)
            )
            return {row.bank_account_id: row for row in rows}


@pytest.fixture
def services(payments_app, accounts_app, marketplace_headers, issue_token) -> Services:
    return Services(payments_app, accounts_app, marketplace_headers, issue_token)


@pytest.fixture
def artisan_id(services) -> str:
    """An artisan registered by MARKETPLACE, known to both services at tier 0."""
    artisan_id = new_id("art")
    assert services.deliver(registered(artisan_id)) == (True, True)
    return artisan_id


def assert_tier(services: Services, artisan_id: str, tier: int, version: int) -> None:
    payee = services.payee(artisan_id)
    assert payee.status_code == 200, payee.json
    assert (payee.json["kyc_tier"], payee.json["tier_cap"], payee.json["kyc_version"]) == (
        tier,
        _cap(tier),
        version,
    )
    balance = services.balance(artisan_id)
    assert balance.status_code == 200, balance.json
    assert (balance.json["kyc_tier"], balance.json["cap"]) == (tier, _balance_cap(tier))


# -- the tests ------------------------------------------------------------------------------------


def test_the_consume_commands_wire_every_onboarding_event():
    onboarding_handled = {t for t in PAYMENTS_HANDLERS if t.startswith("onboarding.")}
    assert onboarding_handled == ALL_ONBOARDING_TYPES - {"onboarding.bank_account.default_changed"}
    # Payments reads back the ledger's entries: what each artisan holds counts against their cap.
    assert set(PAYMENTS_HANDLERS) - onboarding_handled == {"accounts.ledger.entry_posted"}
    # A restricted artisan (an erasure request) is no longer paid; what the ledger owes them stays
    # theirs to be paid out, so accounts has nothing to do with the restriction.
    assert {
        t
        for t in accounts_cli_handlers(AccountsConfig(service_name="accounts"))
        if t.startswith("onboarding.")
    } == ALL_ONBOARDING_TYPES - {"onboarding.artisan.processing_restricted"}
    # …and accounts posts every money movement of payments.
    assert {
        t for t in accounts_cli_handlers(AccountsConfig(service_name="accounts")) if t.startswith("payments.")
    } == {
        "payments.payment.succeeded",
        "payments.refund.succeeded",
        "payments.dispute.opened",
        "payments.dispute.closed",
    }


def test_registration_gives_the_balance_a_tier_and_cap(services, artisan_id):
    balance = services.balance(artisan_id)
    assert balance.json == {
        "object": "balance",
        "artisan_id": artisan_id,
        "pending": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
        "available": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
        "kyc_tier": 0,
        "cap": {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"},
    }
    payee = services.payee(artisan_id).json
    assert payee["kyc_status"] == "active" and payee["kyc_version"] == 0
    assert payee["can_accept_payments"] is False  # tier 0


def test_tier_up_then_down_is_reflected_in_both_services(services, artisan_id):
    services.deliver(tier_changed(artisan_id, previous=0, tier=1, version=1))
    assert_tier(services, artisan_id, tier=1, version=1)
    assert services.payee(artisan_id).json["can_accept_payments"] is True

    services.deliver(tier_changed(artisan_id, previous=1, tier=2, version=2))
    assert_tier(services, artisan_id, tier=2, version=2)

    services.deliver(tier_changed(artisan_id, previous=2, tier=1, version=3))
    assert_tier(services, artisan_id, tier=1, version=3)
    # The ledger accounts opened at registration are still the only ones.
    assert services.ledger_accounts(artisan_id) == 2
    assert len(services.accounts_opened_events(artisan_id)) == 1


def test_a_stale_tier_change_after_a_newer_one_changes_nothing(services, artisan_id):
    services.deliver(tier_changed(artisan_id, previous=0, tier=1, version=1))
    services.deliver(tier_changed(artisan_id, previous=1, tier=2, version=2))

    # Different event ids, so the inbox lets them through: only kyc_version can stop them.
    older = tier_changed(artisan_id, previous=0, tier=1, version=1)
    same_version = tier_changed(artisan_id, previous=2, tier=3, version=2)
    assert services.deliver(older) == (True, True)
    assert services.deliver(same_version) == (True, True)

    assert_tier(services, artisan_id, tier=2, version=2)


def test_a_duplicate_event_is_applied_once(services):
    # A tier event for an artisan accounts has not seen opens their ledger accounts: a second
    # application would be visible as a second accounts_opened event.
    artisan_id = new_id("art")
    event = tier_changed(artisan_id, previous=0, tier=1, version=1)
    assert services.deliver(event) == (True, True)
    services.deliver(tier_changed(artisan_id, previous=1, tier=2, version=2))

    assert services.deliver(event) == (False, False)  # the inbox knows it

    assert services.ledger_accounts(artisan_id) == 2
    assert len(services.accounts_opened_events(artisan_id)) == 1
    payee = services.payee(artisan_id, client_id=MARKETPLACE)
    assert payee.status_code == 404  # created without a marketplace link
    balance = services.balance(artisan_id, client_id=None)
    assert balance.status_code == 200 and (balance.json["kyc_tier"], balance.json["cap"]) == (
        2,
        _balance_cap(2),
    )

    # Registration, arriving last, links the marketplace without undoing the newer tier.
    services.deliver(registered(artisan_id))
    assert_tier(services, artisan_id, tier=2, version=2)
    assert len(services.accounts_opened_events(artisan_id)) == 1


def test_a_rejection_stops_payments(services, artisan_id):
    services.deliver(tier_changed(artisan_id, previous=0, tier=1, version=1))
    assert services.payee(artisan_id).json["can_accept_payments"] is True

    # A rejection that leaves the artisan active (they may resubmit) changes nothing.
    services.deliver(kyc_rejected(artisan_id, tier=1, version=1, status="active"))
    assert services.payee(artisan_id).json["can_accept_payments"] is True

    # A disqualifying rejection: at tier 1 still, the status alone must stop payments.
    services.deliver(kyc_rejected(artisan_id, tier=1, version=1, status="rejected"))
    payee = services.payee(artisan_id).json
    assert (payee["kyc_tier"], payee["kyc_status"], payee["can_accept_payments"]) == (1, "rejected", False)


def test_a_disqualifying_rejection_as_onboarding_sends_it(services, artisan_id):
    services.deliver(tier_changed(artisan_id, previous=0, tier=1, version=1))
    services.deliver(tier_changed(artisan_id, previous=1, tier=2, version=2))
    # Onboarding drops the tier to 0 with the rejected status, then announces the rejection.
    services.deliver(tier_changed(artisan_id, previous=2, tier=0, version=3, status="rejected"))
    assert services.payee(artisan_id).json["kyc_status"] == "rejected"  # the tier change carries it
    services.deliver(kyc_rejected(artisan_id, tier=0, version=3, status="rejected"))
    # A replayed rejection from before (older version) must not bring the status back.
    services.deliver(kyc_rejected(artisan_id, tier=1, version=1, status="active"))

    payee = services.payee(artisan_id).json
    assert (payee["kyc_status"], payee["can_accept_payments"]) == ("rejected", False)
    assert_tier(services, artisan_id, tier=0, version=3)


def test_marketplace_linked_lets_the_second_marketplace_read_payee_and_balance(services, artisan_id):
    services.deliver(tier_changed(artisan_id, previous=0, tier=1, version=1))
    assert services.payee(artisan_id, client_id=OTHER_MARKETPLACE).status_code == 404
    assert services.balance(artisan_id, client_id=OTHER_MARKETPLACE).status_code == 404

    services.deliver(marketplace_linked(artisan_id, OTHER_MARKETPLACE, kyc_tier=1))

    for client_id in (MARKETPLACE, OTHER_MARKETPLACE):
        payee = services.payee(artisan_id, client_id=client_id)
        assert payee.status_code == 200 and payee.json["kyc_tier"] == 1
        balance = services.balance(artisan_id, client_id=client_id)
        assert balance.status_code == 200 and balance.json["kyc_tier"] == 1
    assert len(services.accounts_opened_events(artisan_id)) == 1


def test_marketplace_linked_for_an_unknown_artisan_opens_the_accounts(services):
    artisan_id = new_id("art")
    services.deliver(marketplace_linked(artisan_id, OTHER_MARKETPLACE, kyc_tier=2))

    payee = services.payee(artisan_id, client_id=OTHER_MARKETPLACE)
    assert payee.status_code == 200 and (payee.json["kyc_tier"], payee.json["tier_cap"]) == (2, _cap(2))
    balance = services.balance(artisan_id, client_id=OTHER_MARKETPLACE)
    assert balance.status_code == 200 and balance.json["cap"] == _balance_cap(2)
    assert services.balance(artisan_id, client_id=MARKETPLACE).status_code == 404
    assert len(services.accounts_opened_events(artisan_id)) == 1


def test_bank_accounts_make_the_payee_payable_with_a_single_default_destination(services, artisan_id):
    assert services.payee(artisan_id).json["payout_eligible"] is False
    first, second, third = new_id("ba"), new_id("ba"), new_id("ba")

    services.deliver(bank_account_linked(artisan_id, first, "007780000123456789012345", is_default=True))
    assert services.payee(artisan_id).json["payout_eligible"] is True

    services.deliver(bank_account_linked(artisan_id, second, "011780000123456789012345", is_default=True))
    services.deliver(bank_account_linked(artisan_id, third, "145780000123456789012345", is_default=False))
    destinations = services.payout_destinations(artisan_id)
    assert {bank_account_id for bank_account_id, d in destinations.items() if d.is_default} == {second}

    services.deliver(default_changed(artisan_id, first))
    destinations = services.payout_destinations(artisan_id)
    assert {bank_account_id for bank_account_id, d in destinations.items() if d.is_default} == {first}
    assert set(destinations) == {first, second, third}
    stored = destinations[first]
    assert (stored.rib, stored.iban, stored.bank_code, stored.bank_name, stored.holder_name) == (
        "007780000123456789012345",
        "MA64007780000123456789012345",
        "007",
        "Attijariwafa bank",
        "Fatima Zahra El Amrani",
    )
    assert stored.linked_at.tzinfo is not None
