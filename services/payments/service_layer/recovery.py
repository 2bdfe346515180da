"""The recovery job: payments and refunds nobody has heard about for too long are settled from the
gateway's own record. Lost callbacks and timed-out calls never leave a payment hanging forever;
nor does a buyer who walks away from 3-D Secure, or an authorisation nobody captures: those are
voided and canceled after ``action_expiry`` and ``authorisation_expiry``. Money the gateway turns
out to hold for a payment that failed or was canceled is given back (voided or refunded). A payment
failed because the gateway had no record of it is looked up once more ``stray_charge_check_after``
later, so a charge that landed late is given back even if its callback was lost."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from services.payments.service_layer import refunds, stray_charges, waiting_payments
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow

log = logging.getLogger(__name__)


def recover_waiting(
    uow_factory: Callable[[], UnitOfWork],
    settings: PaymentSettings,
    *,
    now: dt.datetime | None = None,
    limit: int = 100,
) -> dict[str, int]:
    """Poll the gateway for each payment and refund left waiting; returns how many were polled and settled."""
    now = now or utcnow()
    counts = {
        "payments_polled": 0,
        "payments_settled": 0,
        "payments_expired": 0,
        "stray_charges_checked": 0,
        "stray_charges_found": 0,
        "payments_reversed": 0,
        "refunds_polled": 0,
        "refunds_settled": 0,
    }
    for status in _each(
        waiting_payments.payments_to_recover(uow_factory(), settings, now=now, limit=limit),
        lambda payment_id: waiting_payments.recover_payment(uow_factory(), payment_id, settings),
        "payment recovery failed",
    ):
        counts["payments_polled"] += 1
        if status in ("succeeded", "failed", "canceled", "requires_capture"):
            counts["payments_settled"] += 1
    for status in _each(
        waiting_payments.payments_to_expire(uow_factory(), settings, now=now, limit=limit),
        lambda due: waiting_payments.expire_payment(uow_factory(), *due, settings),
        "payment expiry failed",
    ):
        if status == "canceled":
            counts["payments_expired"] += 1
    # Before the reversals: a stray charge found now is given back in this same run.
    for found in _each(
        stray_charges.payments_to_check_for_stray_charges(uow_factory(), settings, now=now, limit=limit),
        lambda payment_id: stray_charges.check_for_stray_charge(uow_factory(), payment_id, settings),
        "stray charge check failed",
    ):
        if found is not None:
            counts["stray_charges_checked"] += 1
        if found == stray_charges.STRAY_CHARGE_FOUND:
            counts["stray_charges_found"] += 1
    for reversal in _each(
        stray_charges.payments_to_reverse(uow_factory(), settings, now=now, limit=limit),
        lambda payment_id: stray_charges.reverse_held_money(uow_factory(), payment_id, settings),
        "reversal of money held for a failed payment failed",
    ):
        if reversal in ("voided", "refunded"):
            counts["payments_reversed"] += 1
    for status in _each(
        refunds.refunds_to_recover(uow_factory(), settings, now=now, limit=limit),
        lambda refund_id: refunds.recover_refund(uow_factory(), refund_id, settings),
        "refund recovery failed",
        id_field="refund_id",
    ):
        counts["refunds_polled"] += 1
        if status in ("succeeded", "failed"):
            counts["refunds_settled"] += 1
    return counts


def _each(
    items: Iterable[Any], job: Callable[[Any], Any], failure: str, *, id_field: str = "payment_id"
) -> Iterator[Any]:
    """``job(item)`` for each item (an id, or a tuple starting with one), yielding its result; one
    that raises is logged and skipped, so one bad payment or refund never stops the others'."""
    for item in items:
        try:
            yield job(item)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception(failure, extra={id_field: item if isinstance(item, str) else item[0]})
