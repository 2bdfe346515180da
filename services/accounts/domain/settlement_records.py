"""An acquirer's settlement file, as accounts reads it: one ``SettlementLine`` per line.

The acquirer (M2T) settles each day's captures, refunds and chargebacks in batches: every line
names its batch, and the bank later credits (or debits) the batch's net total as one movement
with the batch reference. Amounts are signed minor units from Hirfa's side: a capture's gross is
positive (the acquirer owes it), a refund's or chargeback's negative; ``net = gross - fee``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

SETTLEMENT_LINE_TYPES = ("capture", "refund", "chargeback")


@dataclasses.dataclass(frozen=True)
class SettlementLine:
    line_number: int  # 1 = the first line after the header
    settlement_date: dt.date
    batch_reference: str
    type: str  # capture | refund | chargeback
    transaction_id: str  # the acquirer's transaction id: the payment's gateway_reference
    reference: str  # the merchant reference we gave the acquirer (the payment id)
    refund_id: str  # the acquirer's refund id ("" unless type == refund)
    refund_reference: str  # our refund id ("" unless type == refund)
    currency: str
    gross_amount: int
    fee_amount: int
    net_amount: int
    card_scheme: str  # visa | mastercard | cmi | wallet
    card_region: str  # domestic | international
    occurred_at: dt.datetime
