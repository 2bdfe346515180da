"""The daily settlement file: ``GET /v1/settlements/<YYYY-MM-DD>.csv`` (API key), ``text/csv``.

One row per capture, per succeeded refund and per lost dispute (a chargeback) whose time falls on
that UTC date, in time order, under the header row::

    settlement_date,batch_reference,type,transaction_id,reference,refund_id,refund_reference,
    currency,gross_amount,fee_amount,net_amount,card_scheme,card_region,occurred_at

- Batches: one per day and per kind, ``M2T-<YYYYMMDD>-CARD`` and ``M2T-<YYYYMMDD>-WALLET``. The
  partner bank credits each batch's net total as one movement with the batch reference.
- ``capture``: gross = the captured amount; fee = the fee schedule's basis points of the gross
  (rounded half up) plus its fixed centimes; net = gross - fee. ``refund_id`` and
  ``refund_reference`` are empty.
- ``refund``: gross = net = minus the refunded amount, fee 0.
- ``chargeback`` (a lost dispute): gross = net = minus the disputed amount, fee 0.
- ``card_scheme``: visa, mastercard, cmi or wallet; ``card_region``: domestic or international.

Fee schedule (settings ``M2T_SANDBOX_*``): domestic cards ``FEE_PERCENT_BP`` + ``FEE_FIXED``
(150 bp + 150), international cards ``INTERNATIONAL_FEE_PERCENT_BP`` + ``INTERNATIONAL_FEE_FIXED``
(280 bp + 150), wallets ``WALLET_FEE_PERCENT_BP`` + ``WALLET_FEE_FIXED`` (100 bp + 0). A card is
international when it was issued outside Morocco (shared/test_instruments.py): the test cards
4242424242424242 (Visa, US) and 5555555555554444 (Mastercard, FR) are international, the CMI card
6500000000000002 is domestic.

Test data for reconciliation breaks, asked for by the last two digits (centimes) of the payment's
captured amount:

- ``…71``: the capture is left out of its day's file and appears in the NEXT day's file (in that
  day's batch): a late line;
- ``…73``: the fee is 50 centimes above the schedule;
- ``…74``: the capture line appears twice in the file;
- ``…75``: the line is settled normally, but the partner bank credits its batch 3 centimes short
  (the bank sandbox reads the file and sees the ``…75`` capture);
- a line for a transaction the ledger does not know: ``POST /v1/test-helpers/settlement-lines``.

Amounts are integer centimes, ``occurred_at`` unix seconds, ``reference`` the transaction's merchant
reference. Declined, voided or expired transactions, failed refunds and open or won disputes do not
appear. A day with nothing on it is the header row alone. Lines end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import time

COLUMNS = (
    "settlement_date",
    "batch_reference",
    "type",
    "transaction_id",
    "reference",
    "refund_id",
    "refund_reference",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "card_scheme",
    "card_region",
    "occurred_at",
)

LATE_ENDING = 71  # the capture settles a day late
FEE_ABOVE_SCHEDULE_ENDING = 73  # the fee is FEE_SURPLUS above the schedule
DUPLICATED_ENDING = 74  # the line appears twice
SHORT_CREDIT_ENDING = 75  # the bank credits the batch SHORT_CREDIT centimes short
FEE_SURPLUS = 50
SHORT_CREDIT = 3


@dataclasses.dataclass(frozen=True)
class FeeSchedule:
    """Basis points (rounded half up) plus fixed centimes, per kind of card."""

    domestic: tuple[int, int] = (150, 150)
    international: tuple[int, int] = (280, 150)
    wallet: tuple[int, int] = (100, 0)

    def fee(self, gross: int, scheme: str, region: str) -> int:
        if scheme == "wallet":
            percent_bp, fixed = self.wallet
        elif region == "international":
            percent_bp, fixed = self.international
        else:
            percent_bp, fixed = self.domestic
        return capture_fee(gross, percent_bp, fixed)


@dataclasses.dataclass(frozen=True)
class SettlementRow:
    settlement_date: str
    batch_reference: str
    type: str
    transaction_id: str
    reference: str
    refund_id: str
    refund_reference: str
    currency: str
    gross_amount: int
    fee_amount: int
    net_amount: int
    card_scheme: str
    card_region: str
    occurred_at: int


def utc_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def next_day(day: str) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()


def batch_reference(day: str, scheme: str) -> str:
    """``M2T-20261206-CARD`` or ``M2T-20261206-WALLET``."""
    kind = "WALLET" if scheme == "wallet" else "CARD"
    return f"M2T-{day.replace('-', '')}-{kind}"


def capture_fee(gross: int, percent_bp: int, fixed: int) -> int:
    """``percent_bp`` basis points of ``gross``, rounded half up, plus ``fixed``."""
    return (gross * percent_bp + 5_000) // 10_000 + fixed


def centimes(amount: int) -> int:
    """The last two digits of an amount: what the test data keys on."""
    return abs(amount) % 100


def capture_rows(
    day: str,
    transaction_id: str,
    reference: str,
    currency: str,
    gross: int,
    occurred_at: int,
    scheme: str,
    region: str,
    fees: FeeSchedule,
) -> list[SettlementRow]:
    """The capture's line(s) in ``day``'s file (the test data's fee surplus and duplicate applied)."""
    fee = fees.fee(gross, scheme, region)
    if centimes(gross) == FEE_ABOVE_SCHEDULE_ENDING:
        fee += FEE_SURPLUS
    row = SettlementRow(
        day,
        batch_reference(day, scheme),
        "capture",
        transaction_id,
        reference,
        "",
        "",
        currency,
        gross,
        fee,
        gross - fee,
        scheme,
        region,
        occurred_at,
    )
    return [row, row] if centimes(gross) == DUPLICATED_ENDING else [row]


def negative_row(
    day: str,
    kind: str,
    transaction_id: str,
    reference: str,
    refund_id: str,
    refund_reference: str,
    currency: str,
    amount: int,
    occurred_at: int,
    scheme: str,
    region: str,
) -> SettlementRow:
    """A refund's or a chargeback's line: the amount goes back, no fee."""
    return SettlementRow(
        day,
        batch_reference(day, scheme),
        kind,
        transaction_id,
        reference,
        refund_id,
        refund_reference,
        currency,
        -amount,
        0,
        -amount,
        scheme,
        region,
        occurred_at,
    )


def to_csv(rows: list[SettlementRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(dataclasses.astuple(row))
    return out.getvalue()
