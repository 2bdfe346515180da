"""Payouts, their destinations and the cases of failed payouts' funds in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import ArtisanOwner, LedgerCase, Payout, PayoutDestination
from services.accounts.domain.payouts import PayoutStatus
from shared.auth import Principal
from shared.auth.scopes import Role


def locked(session: Session, payout_id: str) -> Payout | None:
    return session.scalar(sa.select(Payout).where(Payout.id == payout_id).with_for_update())


def locked_by_request_key(session: Session, request_key: str) -> Payout | None:
    """The payout created under this Idempotency-Key (client id and key), locked."""
    return session.scalar(sa.select(Payout).where(Payout.request_key == request_key).with_for_update())


def created_in_window(session: Session, schedule_key: str) -> str | None:
    """The id of the automatic payout of this schedule window, if there is one."""
    return session.scalar(sa.select(Payout.id).where(Payout.schedule_key == schedule_key))


def unsubmitted_ids(session: Session, *, limit: int) -> Sequence[str]:
    """Payouts the bank has not accepted yet, oldest id first."""
    return session.scalars(
        sa.select(Payout.id).where(Payout.status == PayoutStatus.PENDING).order_by(Payout.id).limit(limit)
    ).all()


def unanswered(session: Session, *, submitted_before: dt.datetime, limit: int) -> Sequence[Any]:
    """(id, partner bank, partner reference) of payouts in transit since before ``submitted_before``."""
    return session.execute(
        sa.select(Payout.id, Payout.partner_bank, Payout.partner_reference)
        .where(
            Payout.status == PayoutStatus.IN_TRANSIT,
            Payout.partner_reference.is_not(None),
            Payout.submitted_at <= submitted_before,
        )
        .order_by(Payout.id)
        .limit(limit)
    ).all()


def artisans_paid_at(bank_code: str | None) -> sa.Select[tuple[str]]:
    """The artisans with a payout account at ``bank_code``: the only artisans that bank's partner
    client sees (tenant isolation). A bank partner bound to no bank sees none."""
    query = sa.select(PayoutDestination.artisan_id)
    return (
        query.where(sa.false())
        if bank_code is None
        else query.where(PayoutDestination.bank_code == bank_code)
    )


def is_paid_at(session: Session, artisan_id: str, bank_code: str | None) -> bool:
    """Whether the artisan has a payout account at ``bank_code``."""
    found = session.scalar(
        artisans_paid_at(bank_code).where(PayoutDestination.artisan_id == artisan_id).limit(1)
    )
    return found is not None


def visible_to(principal: Principal) -> sa.Select[tuple[Payout]]:
    """Artisans see their own payouts, marketplaces their artisans' and their own commission
    payouts, bank partners those paid to accounts at their bank (artisans paid at their bank,
    marketplaces' commission paid there), operators all."""
    query = sa.select(Payout)
    if principal.role == Role.ARTISAN:
        return query.where(Payout.artisan_id == principal.client_id)
    if principal.is_marketplace:
        own_artisans = sa.select(ArtisanOwner.artisan_id).where(
            ArtisanOwner.marketplace_id == principal.client_id
        )
        return query.where(
            sa.or_(Payout.artisan_id.in_(own_artisans), Payout.marketplace_id == principal.client_id)
        )
    if principal.is_bank_partner:
        return query.where(
            sa.or_(
                Payout.artisan_id.in_(artisans_paid_at(principal.bank_code)),
                sa.and_(Payout.marketplace_id.is_not(None), Payout.bank_code == principal.bank_code),
            )
        )
    return query


def destination(session: Session, bank_account_id: str) -> PayoutDestination | None:
    return session.get(PayoutDestination, bank_account_id)


def default_destination(session: Session, artisan_id: str) -> PayoutDestination | None:
    return session.scalar(
        sa.select(PayoutDestination).where(
            PayoutDestination.artisan_id == artisan_id, PayoutDestination.is_default.is_(True)
        )
    )


def cases_waiting_for_funds(session: Session, *, limit: int) -> list[str]:
    """Ids of the cases of failed payouts whose funds wait for room under the cap, oldest first."""
    return list(
        session.scalars(
            sa.select(LedgerCase.id)
            .where(LedgerCase.cause == "payout", LedgerCase.status == "waiting")
            .order_by(LedgerCase.created_at, LedgerCase.id)
            .limit(limit)
        )
    )


def case_waiting_for_funds_locked(session: Session, case_id: str) -> LedgerCase | None:
    """The case, locked, if it still waits and no other worker holds it."""
    return session.scalar(
        sa.select(LedgerCase)
        .where(LedgerCase.id == case_id, LedgerCase.status == "waiting")
        .with_for_update(skip_locked=True)
    )


# When each step of a payout happened: handed to the bank (sent), paid, failed.
PAYOUT_STEP_TIMES = {"sent": Payout.submitted_at, "paid": Payout.paid_at, "failed": Payout.failed_at}


def step_figures(
    session: Session, *, since: dt.datetime, until: dt.datetime
) -> dict[str, list[tuple[str, int, int]]]:
    """Per step (sent, paid, failed): ``(currency, count, amount)`` of the payouts that took that step
    in ``[since, until)``, each a range read of that step's time index."""
    figures: dict[str, list[tuple[str, int, int]]] = {}
    for step, at in PAYOUT_STEP_TIMES.items():
        rows = session.execute(
            sa.select(Payout.currency, sa.func.count(), sa.func.coalesce(sa.func.sum(Payout.amount), 0))
            .where(at >= since, at < until)
            .group_by(Payout.currency)
            .order_by(Payout.currency)
        )
        figures[step] = [(currency, int(count), int(amount)) for currency, count, amount in rows]
    return figures
