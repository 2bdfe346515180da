"""The daily settlement file: ``GET /v1/settlements/<YYYY-MM-DD>.csv`` (API key), ``text/csv``.

One row per capture and per succeeded refund whose time falls on that UTC date, in time order,
under the header row::

    settlement_date,type,transaction_id,reference,refund_id,refund_reference,currency,
    gross_amount,fee_amount,net_amount,occurred_at

- ``capture``: gross = the captured amount; fee = M2T's fee, ``fee_percent_bp`` basis points of the
  gross rounded half up, plus ``fee_fixed`` centimes (1.5% + 150 by default); net = gross - fee.
  ``refund_id`` and ``refund_reference`` are empty.
- ``refund``: gross = net = minus the refunded amount, fee 0.

Amounts are integer centimes, ``occurred_at`` unix seconds, ``reference`` the transaction's merchant
reference. Declined, voided or expired transactions, failed refunds and disputes do not appear. A day
with nothing on it is the header row alone. Lines end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time

COLUMNS = (
    "settlement_date",
    "type",
    "transaction_id",
    "reference",
    "refund_id",
    "refund_reference",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "occurred_at",
)


@dataclasses.dataclass(frozen=True)
class SettlementRow:
    settlement_date: str
    type: str
    transaction_id: str
    reference: str
    refund_id: str
    refund_reference: str
    currency: str
    gross_amount: int
    fee_amount: int
    net_amount: int
    occurred_at: int


def utc_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def capture_fee(gross: int, percent_bp: int, fixed: int) -> int:
    """``percent_bp`` basis points of ``gross``, rounded half up, plus ``fixed``."""
    return (gross * percent_bp + 5_000) // 10_000 + fixed


def capture_row(
    day: str,
    transaction_id: str,
    reference: str,
    currency: str,
    gross: int,
    occurred_at: int,
    percent_bp: int,
    fixed: int,
) -> SettlementRow:
    fee = capture_fee(gross, percent_bp, fixed)
    return SettlementRow(
        day, "capture", transaction_id, reference, "", "", currency, gross, fee, gross - fee, occurred_at
    )


def refund_row(
    day: str,
    transaction_id: str,
    reference: str,
    refund_id: str,
    refund_reference: str,
    currency: str,
    amount: int,
    occurred_at: int,
) -> SettlementRow:
    return SettlementRow(
        day,
        "refund",
        transaction_id,
        reference,
        refund_id,
        refund_reference,
        currency,
        -amount,
        0,
        -amount,
        occurred_at,
    )


def to_csv(rows: list[SettlementRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(dataclasses.astuple(row))
    return out.getvalue()
