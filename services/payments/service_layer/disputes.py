"""Disputes (chargebacks): opened, won or lost by the gateway's notifications; marketplaces list them.

A ``closed`` notification that overtakes its ``opened`` one opens and closes the dispute in one go,
so accounts always sees ``payments.dispute.opened`` before ``payments.dispute.closed``.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Dispute, Payment
from services.payments.adapters.repositories import payments
from services.payments.domain.disputes import dispute_moves
from services.payments.domain.gateway import DisputeStatus, GatewayDispute
from services.payments.service_layer.announcements import dispute_changed
from services.payments.service_layer.ownership import yours
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import NotFound
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)


def list_disputes(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    payment_id: str | None = None,
    status: str | None = None,
) -> Page:
    with uow:
        query = sa.select(Dispute).where(Dispute.marketplace_id == principal.client_id)
        if payment_id is not None:
            query = query.where(Dispute.payment_id == payment_id)
        if status is not None:
            query = query.where(Dispute.status == status)
        return paginate(uow.session, query, Dispute.id, limit=limit, starting_after=starting_after)


def get_dispute(uow: UnitOfWork, dispute_id: str, principal: Principal) -> Dispute:
    with uow:
        return yours(
            uow.session.get(Dispute, dispute_id),
            principal,
            NotFound("No dispute has this id.", code="dispute_not_found", param="id"),
        )


def payment_for_dispute(session: Session, gateway: str, news: GatewayDispute) -> Payment | None:
    """The disputed payment, locked: found by the gateway's transaction id, or by our reference."""
    if news.payment_reference:
        return payments.locked(session, news.payment_reference)
    return payments.locked_by_gateway_reference(session, gateway, news.transaction_reference)


def apply_dispute(uow: UnitOfWork, payment: Payment, gateway: str, news: GatewayDispute) -> bool:
    """Open or close the dispute the gateway reports on a (locked) payment. Returns whether anything changed."""
    session = uow.session
    dispute = session.scalar(
        sa.select(Dispute).where(
            Dispute.gateway == gateway, Dispute.gateway_reference == news.gateway_reference
        )
    )
    now = utcnow()
    changed = False
    if dispute is None:
        dispute = Dispute(
            id=new_id("dp"),
            payment_id=payment.id,
            marketplace_id=payment.marketplace_id,
            artisan_id=payment.artisan_id,
            amount=min(news.amount, payment.amount_captured or news.amount),
            currency=payment.currency,
            reason=news.reason[:40],
            status=DisputeStatus.OPEN,
            gateway=gateway,
            gateway_reference=news.gateway_reference,
            opened_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(dispute)
        dispute_changed(uow, dispute)
        changed = True
    if dispute_moves(dispute.status, news.status):
        dispute.status = news.status
        dispute.closed_at = dispute.updated_at = now
        dispute_changed(uow, dispute)
        changed = True
    return changed
