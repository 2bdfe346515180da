"""Building payments' money events (per their JSON Schemas) and delivering them to the accounts
consumer, for the ledger's tests, property tests and benchmark; and, for payouts, onboarding's
``bank_account.linked`` event and the bank partner's signed transfer callbacks."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import sqlalchemy as sa

from services.accounts.adapters.orm import LedgerAccount
from services.accounts.cli import _handlers as accounts_handlers
from services.accounts.domain.ports import Transfer
from services.accounts.service_layer.parked_events import make_after_batch
from shared.banking import make_rib
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.events import Event, make_event
from shared.ids import new_id
from shared.runtime import make_event_consumer
from shared.signatures import sign

MARKETPLACE = "cli_test_marketplace"
CAPS = {0: 0, 1: 20_000, 2: 500_000, 3: 2_000_000}
RIB = make_rib("007", "780", "0000001234567890")


def _now(offset: dt.timedelta = dt.timedelta(0)) -> str:
    return (dt.datetime.now(dt.UTC) + offset).isoformat()


def _money(amount: int) -> dict:
    return {"amount": amount, "currency": "MAD"}


def registered(artisan_id: str, marketplace_id: str = MARKETPLACE) -> Event:
    return make_event(
        "onboarding.artisan.registered",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "kyc_tier": 0,
            "tier_cap": _money(0),
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": _now(),
        },
    )


def tier_changed(artisan_id: str, tier: int, version: int, previous: int = 0) -> Event:
    return make_event(
        "onboarding.artisan.kyc_tier_changed",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "previous_tier": previous,
            "kyc_tier": tier,
            "direction": "up" if tier >= previous else "down",
            "tier_cap": _money(CAPS[tier]),
            "reason_code": "test",
            "actor": "system",
            "kyc_status": "active",
            "kyc_version": version,
            "changed_at": _now(),
        },
    )


def payment_succeeded(
    artisan_id: str,
    amount: int,
    fee: int,
    *,
    payment_id: str | None = None,
    marketplace_id: str = MARKETPLACE,
    gateway: str = "m2t",
    succeeded_at: dt.datetime | None = None,
) -> Event:
    payment_id = payment_id or new_id("pay")
    return make_event(
        "payments.payment.succeeded",
        subject=artisan_id,
        data={
            "payment_id": payment_id,
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "amount": _money(amount),
            "application_fee": _money(fee),
            "net": _money(amount - fee),
            "method": "card",
            "gateway": gateway,
            "gateway_reference": "gw_" + payment_id[-10:],
            "succeeded_at": (succeeded_at or dt.datetime.now(dt.UTC)).isoformat(),
        },
    )


def refund_succeeded(
    artisan_id: str,
    payment_id: str,
    amount: int,
    fee_refunded: int,
    *,
    refund_id: str | None = None,
    marketplace_id: str = MARKETPLACE,
    gateway: str = "m2t",
) -> Event:
    return make_event(
        "payments.refund.succeeded",
        subject=artisan_id,
        data={
            "refund_id": refund_id or new_id("re"),
            "payment_id": payment_id,
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "amount": _money(amount),
            "application_fee_refunded": _money(fee_refunded),
            "gateway": gateway,
            "succeeded_at": _now(),
        },
    )


def dispute_opened(
    artisan_id: str,
    payment_id: str,
    amount: int,
    *,
    dispute_id: str | None = None,
    marketplace_id: str = MARKETPLACE,
    gateway: str = "m2t",
) -> Event:
    return make_event(
        "payments.dispute.opened",
        subject=artisan_id,
        data={
            "dispute_id": dispute_id or new_id("dp"),
            "payment_id": payment_id,
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "amount": _money(amount),
            "gateway": gateway,
            "reason": "fraudulent",
            "opened_at": _now(),
        },
    )


def dispute_closed(
    artisan_id: str,
    payment_id: str,
    dispute_id: str,
    amount: int,
    outcome: str,
    *,
    marketplace_id: str = MARKETPLACE,
    gateway: str = "m2t",
) -> Event:
    return make_event(
        "payments.dispute.closed",
        subject=artisan_id,
        data={
            "dispute_id": dispute_id,
            "payment_id": payment_id,
            "artisan_id": artisan_id,
            "marketplace_id": marketplace_id,
            "amount": _money(amount),
            "gateway": gateway,
            "outcome": outcome,
            "closed_at": _now(),
        },
    )


def bank_account_linked(
    artisan_id: str, rib: str = RIB, *, is_default: bool = True, bank_account_id: str | None = None
) -> Event:
    """Onboarding's news of a bank account the artisan's payouts may go to."""
    return make_event(
        "onboarding.bank_account.linked",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "bank_account_id": bank_account_id or new_id("ba"),
            "mode": "link",
            "rib": rib,
            "iban": "MA64" + rib,
            "bank_code": rib[:3],
            "bank_name": "Attijariwafa bank",
            "holder_name": "Fatima Zahra El Amrani",
            "is_default": is_default,
            "linked_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )


def callback_body(transfer: Transfer, *, status: str | None = None) -> bytes:
    """A transfer callback as the bank sandbox sends it: compact JSON, the transfer under ``data``."""
    status = status or transfer.status
    data = {
        "transfer_id": transfer.partner_reference,
        "reference": transfer.reference,
        "status": status,
        "amount": transfer.amount,
        "currency": transfer.currency,
    }
    if transfer.failure_code and status == "failed":
        data["failure_code"] = transfer.failure_code
    event = {
        "id": "evt_" + uuid.uuid4().hex[:24],
        "type": f"transfer.{status}",
        "created": int(time.time()),
        "data": data,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = SANDBOX_BANK_CALLBACK_SECRET, timestamp: int | None = None) -> dict:
    """The headers of a callback signed as the bank signs it."""
    return {"Content-Type": "application/json", "Bank-Signature": sign(secret, body, timestamp=timestamp)}


class LedgerDriver:
    """Delivers events to the accounts consumer exactly as ``hirfa accounts consume`` wires it
    (decode with the consumer-side schema check, inbox, handler, one transaction)."""

    def __init__(self, accounts_app) -> None:
        self.context = accounts_app.extensions["hirfa"]
        self.handlers = accounts_handlers(self.context.config)
        self.consumer = make_event_consumer(
            self.context,
            self.handlers,
            ["onboarding.events", "payments.events"],
            make_after_batch(self.handlers),
        )

    def deliver(self, event: Event) -> bool:
        return self.consumer.apply(self.consumer.decode(event.to_bytes(), event.key.encode()))

    def artisan_at_tier(self, tier: int = 3, artisan_id: str | None = None) -> str:
        artisan_id = artisan_id or new_id("art")
        self.deliver(registered(artisan_id))
        if tier:
            self.deliver(tier_changed(artisan_id, tier, version=1))
        return artisan_id

    def shown(self, owner_type: str, owner_id: str, kind: str) -> int:
        """The account's balance as people read it (credit-normal accounts turned positive)."""
        with self.context.session_factory() as session:
            account = session.scalar(
                sa.select(LedgerAccount).where(
                    LedgerAccount.owner_type == owner_type,
                    LedgerAccount.owner_id == owner_id,
                    LedgerAccount.kind == kind,
                )
            )
            if account is None:
                return 0
            return account.balance if account.normal_side == "debit" else -account.balance
