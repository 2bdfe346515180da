"""``payment_snapshot`` (what the API answers and webhooks carry, built directly for speed) says
exactly what ``PaymentSchema`` (the OpenAPI document of record) dumps, for payments in every state."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.payments.adapters.orm import Payment
from services.payments.domain.payments import PaymentStatus, Reversal
from services.payments.service_layer.representations import PaymentSchema, payment_snapshot

NOW = dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.UTC)


def payment(**changes) -> Payment:
    fields = dict(
        id="pay_01JD8Z6W5Q0T2C7S9K3M4N5P6R",
        marketplace_id="cli_marketplace",
        artisan_id="art_01JD8Z6W5Q0T2C7S9K3M4N5P6R",
        amount=15_000,
        currency="MAD",
        application_fee=1_500,
        payment_method_type="card",
        capture_method="automatic",
        status=PaymentStatus.REQUIRES_CONFIRMATION,
        description=None,
        metadata_json="{}",
        order_reference=None,
        creation_key="key",
        gateway="m2t",
        gateway_updated_at=0,
        amount_captured=0,
        amount_refunded=0,
        application_fee_refunded=0,
        ledger_posted=False,
        created_at=NOW,
        updated_at=NOW,
    )
    fields.update(changes)
    return Payment(**fields)


CASES = {
    "created": payment(),
    "with metadata and description": payment(
        metadata_json=json.dumps({"cart": "42", "note": "زربية"}),
        description="Tapis de Taznakht",
        order_reference="ORD-1",
    ),
    "succeeded, partly refunded": payment(
        status=PaymentStatus.SUCCEEDED,
        amount_captured=12_000,
        amount_refunded=2_000,
        application_fee_refunded=200,
        card_brand="visa",
        card_last4="4242",
        card_country=None,
        gateway_reference="m2t_tx_1",
        confirmed_at=NOW,
        succeeded_at=NOW + dt.timedelta(seconds=2),
    ),
    "waiting for 3-D Secure": payment(
        status=PaymentStatus.REQUIRES_ACTION,
        next_action_json=json.dumps({"type": "redirect_to_url", "redirect_url": "https://m2t/3ds/x"}),
        return_url="https://shop.example/back",
    ),
    "waiting for the wallet": payment(
        status=PaymentStatus.REQUIRES_ACTION,
        payment_method_type="mobile_wallet",
        wallet_phone_last4="5678",
        next_action_json=json.dumps(
            {"type": "wallet_approval", "redirect_url": None, "expires_at": "2026-11-23T10:02:00+00:00"}
        ),
    ),
    "failed, money not given back": payment(
        status=PaymentStatus.FAILED,
        failure_code="card_declined",
        failure_message="The card was declined.",
        failed_at=NOW,
        reversal_status=Reversal.FAILED,
    ),
    "canceled": payment(
        status=PaymentStatus.CANCELED, canceled_at=NOW, cancellation_reason="abandoned", metadata_json=None
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_snapshot_is_what_the_schema_dumps(case):
    assert payment_snapshot(CASES[case]) == PaymentSchema().dump(CASES[case])


def test_the_snapshot_keeps_the_schemas_order_of_fields():
    assert list(payment_snapshot(CASES["created"])) == list(PaymentSchema().dump(CASES["created"]))


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(list(PaymentStatus)),
    amounts=st.tuples(*(st.integers(min_value=0, max_value=10**12) for _ in range(5))),
    text=st.one_of(st.none(), st.text(max_size=30)),
    when=st.one_of(st.none(), st.datetimes(timezones=st.just(dt.UTC))),
    reversal=st.one_of(st.none(), st.sampled_from(list(Reversal))),
)
def test_any_payment_has_the_same_snapshot_either_way(status, amounts, text, when, reversal):
    amount, captured, refunded, fee, fee_refunded = amounts
    subject = payment(
        status=status,
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        application_fee=fee,
        application_fee_refunded=fee_refunded,
        description=text,
        failure_message=text,
        confirmed_at=when,
        canceled_at=when,
        reversal_status=reversal,
    )
    assert payment_snapshot(subject) == PaymentSchema().dump(subject)
