"""Payments' tables."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.payments.domain.payments import IN_FLIGHT, PaymentStatus
from shared.db import UTCDateTime, utcnow
from shared.events.outbox import BrokerTopicMixin, InboxMixin, OutboxMixin
from shared.idempotency_store import IdempotencyKeyMixin
from shared.kyc import KYC_ACTIVE


class Base(DeclarativeBase):
    pass


class Payee(Base):
    """Local projection of an artisan, fed by onboarding events: who may be paid, and how much."""

    __tablename__ = "payees"

    artisan_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kyc_tier: Mapped[int] = mapped_column(sa.Integer)
    tier_cap_amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    payout_eligible: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # active | rejected (a disqualifying KYC rejection): a rejected artisan cannot be paid.
    kyc_status: Mapped[str] = mapped_column(sa.String(20), default=KYC_ACTIVE)
    # Onboarding's per-artisan counter of KYC changes: a tier event is applied only if it is newer
    # than this, so a replayed or redelivered older event never undoes a later change.
    kyc_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Time of the onboarding event this row reflects.
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # What the ledger holds for the artisan (pending + available), fed by accounts' entry events:
    # with the payments still on their way to the ledger, it is what the tier cap is checked against.
    ledger_balance: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Set when the artisan asked for their personal data to be erased (onboarding's
    # ``processing_restricted``): no new payment to them, and marketplaces no longer see them.
    restricted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PayeeMarketplace(Base):
    __tablename__ = "payee_marketplaces"

    artisan_id: Mapped[str] = mapped_column(sa.ForeignKey("payees.artisan_id"), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


AWAITING_LEDGER = "status = 'succeeded' AND ledger_posted = false"

# A payment whose artisan's share is still on its way to the ledger: in flight, or succeeded and not
# posted yet. The tier cap counts these beside the ledger's balance; an artisan's history holds few
# of them, so a partial index keeps the count off the rest. Plain SQL with its values spelled out,
# the same text in the index and the query, so the database can tell the index serves the query.
_IN_FLIGHT_VALUES = ", ".join(f"'{status}'" for status in sorted(IN_FLIGHT))
ON_THE_WAY_TO_THE_LEDGER = (
    f"status IN ({_IN_FLIGHT_VALUES}) OR (status = '{PaymentStatus.SUCCEEDED}' AND NOT ledger_posted)"
)


class Payment(Base):
    """A marketplace's charge of a buyer for an artisan's goods. States: services/payments/domain/payments.py."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.UniqueConstraint("gateway", "gateway_reference", name="uq_payments_gateway_reference"),
        sa.UniqueConstraint("marketplace_id", "creation_key", name="uq_payments_creation_key"),
        # A status, or a reversal's, then the id: the back office pages through payments in one
        # state (stuck in processing, a reversal to review) in id order, the cursor's.
        sa.Index("ix_payments_status_id", "status", "id"),
        sa.Index("ix_payments_reversal_status_id", "reversal_status", "id"),
        # Succeeded payments the ledger has not confirmed yet: a handful at any time, found
        # without reading the others (accounts' completeness check asks for them).
        sa.Index(
            "ix_payments_awaiting_ledger",
            "succeeded_at",
            postgresql_where=sa.text(AWAITING_LEDGER),
            sqlite_where=sa.text(AWAITING_LEDGER),
        ),
        # GET /v1/payments?artisan_id=: a marketplace's payments to one artisan, in id order.
        sa.Index("ix_payments_marketplace_artisan", "marketplace_id", "artisan_id", "id"),
        sa.Index(
            "ix_payments_artisan_on_the_way",
            "artisan_id",
            postgresql_where=sa.text(ON_THE_WAY_TO_THE_LEDGER),
            sqlite_where=sa.text(ON_THE_WAY_TO_THE_LEDGER),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    application_fee: Mapped[int] = mapped_column(sa.BigInteger)
    payment_method_type: Mapped[str] = mapped_column(sa.String(20))
    capture_method: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(30))
    description: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    metadata_json: Mapped[str] = mapped_column("metadata", sa.Text, default="{}")
    order_reference: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    # The Idempotency-Key it was created with, kept with the row itself: a retry that comes after
    # a crash between the commit and the saved answer still finds the payment instead of a twin.
    creation_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    # The Idempotency-Key of the confirmation that moved it out of requires_confirmation, for the
    # same reason: that confirmation retried after a crash answers the payment, not invalid_state.
    confirmation_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    # Likewise the Idempotency-Keys of the capture and of the cancel that acted on it.
    capture_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    cancel_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    gateway: Mapped[str] = mapped_column(sa.String(20))
    gateway_reference: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    # The gateway's clock on the newest snapshot applied: an older callback never overwrites a newer one.
    gateway_updated_at: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    amount_captured: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # succeeded refunds
    application_fee_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    next_action_json: Mapped[str | None] = mapped_column("next_action", sa.Text, nullable=True)
    failure_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    card_brand: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(sa.String(4), nullable=True)
    card_country: Mapped[str | None] = mapped_column(sa.String(2), nullable=True)
    wallet_phone_last4: Mapped[str | None] = mapped_column(sa.String(4), nullable=True)
    return_url: Mapped[str | None] = mapped_column(sa.String(2048), nullable=True)
    # Set once accounts has posted the payment: until then it counts against the tier cap here.
    ledger_posted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the gateway was last asked or told anything: the recovery job polls payments idle too long.
    gateway_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    canceled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # requested (by the marketplace), abandoned (the buyer never finished 3-D Secure or the wallet
    # approval), authorisation_expired (authorised, never captured)
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    # When the marketplace last asked to capture: a payment processing since then is capturing, and
    # a late "authorised" snapshot must not take it back to requires_capture.
    capture_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Money the gateway holds though the payment failed or was canceled, being given back
    # (domain/payments.py ``Reversal``); None when there is none.
    reversal_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    # Failed because the gateway had no record of it: when the recovery job looks it up once more,
    # lest the charge landed later and its callback was lost. None once looked (or never due).
    stray_charge_check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class GatewayAttempt(Base):
    """Append-only: one row per call to a gateway (and per callback), with its raw answer."""

    __tablename__ = "gateway_attempts"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    payment_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    refund_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    gateway: Mapped[str] = mapped_column(sa.String(20))
    operation: Mapped[str] = mapped_column(sa.String(30))  # authorise, capture, void, refund, poll, callback…
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(120), nullable=True)
    amount: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    # ok (an answer), refused (4xx), unknown (timeout, 5xx: the outcome is not known)
    outcome: Mapped[str] = mapped_column(sa.String(10))
    raw_status: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    gateway_reference: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    error_code: Mapped[str | None] = mapped_column(sa.String(60), nullable=True)
    message: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (sa.UniqueConstraint("marketplace_id", "creation_key", name="uq_refunds_creation_key"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(sa.ForeignKey("payments.id"), index=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    application_fee_refunded: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(12), index=True)
    reason: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    gateway: Mapped[str] = mapped_column(sa.String(20))
    gateway_reference: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    metadata_json: Mapped[str] = mapped_column("metadata", sa.Text, default="{}")
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    creation_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)  # as on payments
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    gateway_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Dispute(Base):
    """A buyer's chargeback, opened and closed by the gateway's notifications."""

    __tablename__ = "disputes"
    __table_args__ = (
        sa.UniqueConstraint("gateway", "gateway_reference", name="uq_disputes_gateway_reference"),
        sa.Index("ix_disputes_status_id", "status", "id"),  # open ones, in the cursor's order
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(sa.ForeignKey("payments.id"), index=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    artisan_id: Mapped[str] = mapped_column(sa.String(40))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(10))  # open | won | lost
    gateway: Mapped[str] = mapped_column(sa.String(20))
    gateway_reference: Mapped[str] = mapped_column(sa.String(100))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class GatewayCallbackReceipt(Base):
    """Each gateway callback's event id, recorded with its effect: a redelivery changes nothing."""

    __tablename__ = "gateway_callback_receipts"

    gateway: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(60))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(OutboxMixin, Base):
    pass


class InboxMessage(InboxMixin, Base):
    pass


class BrokerTopic(BrokerTopicMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass


# -- marketplace webhooks --


class WebhookEndpoint(Base):
    """A marketplace's URL for news of its payments, refunds and disputes. The signing secret is kept
    sealed (AES-256-GCM under a per-endpoint data key wrapped by the master key ``secret_key_id``);
    deleting an endpoint disables it, so its deliveries' history stays."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    event_types: Mapped[list] = mapped_column(sa.JSON)  # ["payment.succeeded", …] or ["*"]
    status: Mapped[str] = mapped_column(sa.String(10))  # enabled | disabled
    secret_key_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    secret_wrapped_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    secret_nonce: Mapped[bytes] = mapped_column(sa.LargeBinary)
    secret_ciphertext: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # A worker delivering to the endpoint holds it until then: one delivery in flight per endpoint.
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    # Set by a failed attempt, cleared by a successful one (in the attempt's transaction): while it
    # is set, the endpoint is served by the worker's few "troubled" threads, never the healthy ones.
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # After a failed attempt the endpoint's other deliveries wait until then: a failing endpoint gets
    # one attempt per rest, not one per free thread, and the other troubled endpoints get their turn.
    resting_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookObjectSequence(Base):
    """The last sequence number given to one object's webhook events: a counter row whose increment
    locks it, so concurrent changes of one payment get 1, 2, 3… whatever locks their caller holds."""

    __tablename__ = "webhook_object_sequences"

    object_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(sa.Integer)


class WebhookEvent(Base):
    """A change a marketplace may be told of, recorded in the transaction of the change. ``body`` is
    the exact JSON sent, so every attempt to every endpoint carries the same bytes."""

    __tablename__ = "webhook_events"
    __table_args__ = (sa.UniqueConstraint("object_id", "sequence", name="uq_webhook_events_object_sequence"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    type: Mapped[str] = mapped_column(sa.String(40))
    object_type: Mapped[str] = mapped_column(sa.String(20))
    object_id: Mapped[str] = mapped_column(sa.String(40))
    sequence: Mapped[int] = mapped_column(sa.Integer)
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint, tried until a 2xx or until the event is too old."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # The back office's failures per marketplace: failed and retrying ones, grouped.
        sa.Index("ix_webhook_deliveries_status_marketplace", "status", "marketplace_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_events.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_endpoints.id"), index=True)
    marketplace_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(10))  # pending | delivered | failed | canceled
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whoever sends an attempt holds the delivery until then: no attempt is ever sent twice at once.
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDeliveryAttempt(Base):
    """Append-only: one row per HTTP request made for a delivery, with what came back."""

    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(sa.Integer)  # 1, 2, … within the delivery
    trigger: Mapped[str] = mapped_column(sa.String(10))  # automatic | manual
    status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    # timeout, connection_refused, connection_error, dns_error, dns_timeout, tls_error, address_not_allowed…
    error: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
