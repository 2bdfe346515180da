"""Automatic payouts: an artisan's schedule, and the worker pass that pays out when one is due.

When due, the whole available balance is paid to the default bank account: ``daily`` and ``weekly``
once per UTC day or ISO week, ``threshold`` once the balance reaches the threshold (at most once a
day). Each window has a deterministic key stored (unique) on the payout it created, so a second pass
or a second worker in the same window creates nothing. A window with nothing to pay stays open:
money released later that day is paid out by a later pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa

from services.accounts.adapters import payouts
from services.accounts.adapters.orm import PayoutSchedule
from services.accounts.domain.payouts import ScheduleInterval, schedule_is_due, schedule_key
from services.accounts.service_layer.bank_transfers import submit_payout
from services.accounts.service_layer.ledger import check_artisan_visible
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.payouts import (
    RequestPayout,
    available_balance,
    create_payout,
    ensure_may_request_payouts,
)
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import HirfaError, ValidationFailed

log = logging.getLogger(__name__)

SCHEDULE_REQUESTER = "schedule"


@dataclasses.dataclass(frozen=True)
class SetSchedule:
    interval: str
    threshold: int | None = None  # minor units; only with interval=threshold
    currency: str | None = None


def _checked(command: SetSchedule, currency: str) -> SetSchedule:
    if command.interval == ScheduleInterval.THRESHOLD:
        if command.threshold is None:
            raise ValidationFailed("A threshold schedule needs a threshold amount.", param="threshold")
        if command.currency != currency:
            raise ValidationFailed(
                f"Payouts are made in {currency}.", code="unsupported_currency", param="threshold.currency"
            )
    elif command.threshold is not None:
        raise ValidationFailed("Only a threshold schedule takes a threshold.", param="threshold")
    return command


def set_schedule(
    uow: UnitOfWork, artisan_id: str, command: SetSchedule, principal: Principal, settings: PayoutSettings
) -> PayoutSchedule:
    """Set (or replace) the artisan's schedule. No bank account is needed yet: passes skip until one is."""
    ensure_may_request_payouts(principal)
    command = _checked(command, settings.currency)
    with uow:
        session = uow.session
        check_artisan_visible(session, artisan_id, principal)
        schedule = session.get(PayoutSchedule, artisan_id)
        if schedule is None:
            schedule = PayoutSchedule(artisan_id=artisan_id)
            session.add(schedule)
        schedule.interval = command.interval
        schedule.threshold_amount = command.threshold
        schedule.currency = settings.currency
        schedule.updated_by = principal.client_id
        schedule.updated_at = utcnow()
        uow.commit()
        return schedule


def get_schedule(
    uow: UnitOfWork, artisan_id: str, principal: Principal, settings: PayoutSettings
) -> PayoutSchedule:
    with uow:
        check_artisan_visible(uow.session, artisan_id, principal)
        schedule = uow.session.get(PayoutSchedule, artisan_id)
        if schedule is None:
            # Never set: manual, shown without being stored.
            return PayoutSchedule(
                artisan_id=artisan_id,
                interval=ScheduleInterval.MANUAL,
                threshold_amount=None,
                currency=settings.currency,
                updated_by=None,
                updated_at=None,
            )
        return schedule


def run_payout_schedules(
    uow_factory: Callable[[], UnitOfWork],
    settings: PayoutSettings,
    *,
    now: dt.datetime | None = None,
    batch_size: int = 200,
) -> int:
    """Create the automatic payouts due at ``now``, then submit them. Returns how many were created."""
    now = now or utcnow()
    created: list[str] = []
    after = ""
    while True:
        with uow_factory() as uow:
            schedules = list(
                uow.session.scalars(
                    sa.select(PayoutSchedule)
                    .where(
                        PayoutSchedule.interval != ScheduleInterval.MANUAL,
                        PayoutSchedule.artisan_id > after,
                    )
                    .order_by(PayoutSchedule.artisan_id)
                    .limit(batch_size)
                )
            )
        if not schedules:
            break
        for schedule in schedules:
            payout_id = _pay_out_if_due(uow_factory(), schedule, settings, now)
            if payout_id is not None:
                created.append(payout_id)
        after = schedules[-1].artisan_id
    for payout_id in created:
        submit_payout(uow_factory(), payout_id, settings)
    return len(created)


def _pay_out_if_due(
    uow: UnitOfWork, schedule: PayoutSchedule, settings: PayoutSettings, now: dt.datetime
) -> str | None:
    key = schedule_key(schedule.artisan_id, schedule.interval, now)
    with uow:
        session = uow.session
        if payouts.created_in_window(session, key) is not None:
            return None  # this window's payout exists
        available = available_balance(session, schedule.artisan_id, settings.currency)
        if not schedule_is_due(schedule.interval, available, schedule.threshold_amount):
            return None
        command = RequestPayout(
            artisan_id=schedule.artisan_id,
            amount=available,
            currency=settings.currency,
            description=f"Automatic {schedule.interval} payout",
        )
        try:
            payout = create_payout(
                uow, command, settings, source="schedule", requested_by=SCHEDULE_REQUESTER, schedule_key=key
            )
            uow.commit()
        except HirfaError as refusal:
            # No KYC, no bank account, or a payout just spent the balance: try again next pass.
            log.info(
                "automatic payout skipped", extra={"artisan_id": schedule.artisan_id, "code": refusal.code}
            )
            return None
        except sa.exc.IntegrityError:
            log.info("automatic payout created by another worker", extra={"artisan_id": schedule.artisan_id})
            return None
        return payout.id
