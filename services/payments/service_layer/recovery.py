"""The recovery job: payments and refunds nobody has heard about for too long are settled from the
gateway's own record. Lost callbacks and timed-out calls never leave a payment hanging forever;
nor does a buyer who walks away from 3-D Secure, or an authorisation nobody captures: those are
voided and canceled after ``action_expiry`` and ``authorisation_expiry``. Money the gateway turns
out to hold for a payment that failed or was canceled is given back (voided or refunded)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from services.payments.service_layer import payments, refunds
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow

log = logging.getLogger(__name__)


def recover_waiting(uow_factory: Callable[[], UnitOfWork], settings: PaymentSettings, *,
                    now: dt.datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Poll the gateway for each payment and refund left waiting; returns how many were polled and settled."""
    now = now or utcnow()
    counts = {"payments_polled": 0, "payments_settled": 0, "payments_expired": 0, "payments_reversed": 0,
              "refunds_polled": 0, "refunds_settled": 0}
    for payment_id in payments.payments_to_recover(uow_factory(), settings, now=now, limit=limit):
        try:
            status = payments.recover_payment(uow_factory(), payment_id, settings)
        except Exception:  # noqa: BLE001 - one bad payment must not stop the others' recovery
            log.exception("payment recovery failed", extra={"payment_id": payment_id})
            continue
        counts["payments_polled"] += 1
        if status in ("succeeded", "failed", "canceled", "requires_capture"):
            counts["payments_settled"] += 1
    for payment_id, reason in payments.payments_to_expire(uow_factory(), settings, now=now, limit=limit):
        try:
            status = payments.expire_payment(uow_factory(), payment_id, reason, settings)
        except Exception:  # noqa: BLE001
            log.exception("payment expiry failed", extra={"payment_id": payment_id})
            continue
        if status == "canceled":
            counts["payments_expired"] += 1
    for payment_id in payments.payments_to_reverse(uow_factory(), settings, now=now, limit=limit):
        try:
            reversal = payments.reverse_held_money(uow_factory(), payment_id, settings)
        except Exception:  # noqa: BLE001
            log.exception("reversal of money held for a failed payment failed", extra={"payment_id": payment_id})
            continue
        if reversal in ("voided", "refunded"):
            counts["payments_reversed"] += 1
    for refund_id in refunds.refunds_to_recover(uow_factory(), settings, now=now, limit=limit):
        try:
            status = refunds.recover_refund(uow_factory(), refund_id, settings)
        except Exception:  # noqa: BLE001
            log.exception("refund recovery failed", extra={"refund_id": refund_id})
            continue
        counts["refunds_polled"] += 1
        if status in ("succeeded", "failed"):
            counts["refunds_settled"] += 1
    return counts
