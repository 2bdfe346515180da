"""Loading and locking payments."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import ON_THE_WAY_TO_THE_LEDGER, Payment
from services.payments.domain.payments import PaymentStatus


def get(session: Session, payment_id: str) -> Payment | None:
    return session.get(Payment, payment_id)


def locked(session: Session, payment_id: str) -> Payment | None:
    """The payment under a row lock held until the transaction ends, read afresh."""
    return session.scalar(
        sa.select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def created_with_key(session: Session, marketplace_id: str, creation_key: str) -> Payment | None:
    """The marketplace's payment created with this Idempotency-Key, if any."""
    return session.scalar(
        sa.select(Payment).where(
            Payment.marketplace_id == marketplace_id, Payment.creation_key == creation_key
        )
    )


def locked_by_gateway_reference(session: Session, gateway: str, gateway_reference: str) -> Payment | None:
    """The payment the gateway's transaction is for, locked."""
    return session.scalar(
        sa.select(Payment)
        .where(Payment.gateway == gateway, Payment.gateway_reference == gateway_reference)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def id_by_gateway_reference(session: Session, gateway: str, gateway_reference: str) -> str | None:
    return session.scalar(
        sa.select(Payment.id).where(
            Payment.gateway == gateway, Payment.gateway_reference == gateway_reference
        )
    )


def id_if_through(session: Session, payment_id: str, gateway: str) -> str | None:
    """``payment_id`` if such a payment exists and went through ``gateway``."""
    return session.scalar(sa.select(Payment.id).where(Payment.id == payment_id, Payment.gateway == gateway))


def artisan_share_on_the_way(session: Session, artisan_id: str, *, excluding: str | None = None) -> int:
    """The artisan's share of payments on their way to the ledger: confirmed and not final, or
    succeeded but not yet seen in the ledger (whose balance the payee row holds).

    A succeeded payment counts what the ledger will be told: the amount captured less the whole
    commission (a partial capture keeps the whole fee, as ``payments.payment.succeeded`` says). One
    still on its way counts its authorised amount: the most it may yet capture.
    """
    captured_or_authorised = sa.case(
        (Payment.status == PaymentStatus.SUCCEEDED, Payment.amount_captured), else_=Payment.amount
    )
    share = captured_or_authorised - Payment.application_fee
    # The partial index's own condition, word for word: it reads the artisan's few payments on
    # their way, never their whole history.
    query = sa.select(sa.func.coalesce(sa.func.sum(share), 0)).where(
        Payment.artisan_id == artisan_id, sa.text(f"({ON_THE_WAY_TO_THE_LEDGER})")
    )
    if excluding is not None:
        query = query.where(Payment.id != excluding)
    return int(session.scalar(query))


def mark_ledger_posted(session: Session, payment_id: str) -> None:
    """The ledger has posted the payment's entry: it no longer counts as on its way there."""
    session.execute(sa.update(Payment).where(Payment.id == payment_id).values(ledger_posted=True))
