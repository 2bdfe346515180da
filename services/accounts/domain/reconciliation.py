"""Reconciliation's vocabulary and rules: item states, case kinds and states, the matching rules as
data, the acquirer's fee schedule, and the ledger lines of what a settlement or a statement proves.

Three independent records tell where every dirham is: the acquirer's settlement file, the bank's
statement and Hirfa's ledger. A run matches one file (a source) against the ledger; every line of
the file becomes an *item* and ends in exactly one ``ItemState``; what the ledger has and the file
should have had (a capture nobody settled, a payout the bank never debited) becomes an item too. A
break (any state but ``matched``) opens a *case* for a person.

Pure: no SQL here. The service layer turns ``MATCH_RULES`` into set-based SQL.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from typing import Any

from services.accounts.domain.ledger import (
    AccountRef,
    bank,
    gateway_receivable,
    marketplace,
    platform,
)


class ItemState(enum.StrEnum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"  # the file has it, the ledger does not
    MISSING_AT_GATEWAY = "missing_at_gateway"  # the ledger captured it, no settlement file has it
    MISSING_IN_BANK = "missing_in_bank"  # the ledger paid it out, no statement debited it
    AMOUNT_MISMATCH = "amount_mismatch"
    FEE_MISMATCH = "fee_mismatch"  # settled, but the acquirer's fee is not the schedule's
    DUPLICATE = "duplicate"  # a line already seen (in this file or an earlier one)
    UNIDENTIFIED = "unidentified"  # money in that nothing in Hirfa explains


ITEM_STATES = tuple(ItemState)
# States that are breaks: each opens a case. (A fee mismatch is posted as the acquirer took it
# and still opens a case: someone must ask the acquirer.)
BREAK_STATES = tuple(state for state in ItemState if state != ItemState.MATCHED)


class Source(enum.StrEnum):
    GATEWAY_SETTLEMENT = "gateway_settlement"
    BANK_STATEMENT = "bank_statement"


class ItemSource(enum.StrEnum):
    """Where an item comes from: a line of the file, or the ledger (what the file lacks)."""

    SETTLEMENT = "settlement"
    STATEMENT = "statement"
    LEDGER = "ledger"


class ItemKind(enum.StrEnum):
    """What an item is about."""

    CAPTURE = "capture"  # a settlement line of a payment (object: pay_…)
    REFUND = "refund"  # a settlement line of a refund (object: re_…)
    CHARGEBACK = "chargeback"  # a settlement line of a lost dispute (object: the payment's pay_…)
    PAYOUT = "payout"  # a statement debit of a payout (object: po_…)
    BATCH = "batch"  # a statement credit of an acquirer's settlement batch (object: the batch reference)
    RETURNED_PAYOUT = "returned_payout"  # a statement credit (NRTI) of a payout sent back (po_…)
    RESERVE_TOP_UP = "reserve_top_up"  # a statement credit ``RSV-<marketplace id>``
    BANK_FEE = "bank_fee"  # a statement debit NCHG
    OTHER = "other"  # a statement line nothing else explains


class CaseState(enum.StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"


OPEN_CASE_STATES = (CaseState.OPEN, CaseState.INVESTIGATING)
FINAL_CASE_STATES = (CaseState.RESOLVED, CaseState.WRITTEN_OFF)
# A case's kind is the state of the item that broke, or ``balance_mismatch`` (a statement's closing
# balance is not the ledger's) which is about a whole statement, not one item.
BALANCE_MISMATCH = "balance_mismatch"
CASE_KINDS = (*(str(state) for state in BREAK_STATES), BALANCE_MISMATCH)


class CaseTransitionRefused(ValueError):
    """The case cannot do that from where it is (e.g. resolving a case already written off)."""


def check_case_transition(current: str, target: str) -> None:
    """``open → investigating → resolved | written_off``; a final state never moves again."""
    if current in FINAL_CASE_STATES:
        raise CaseTransitionRefused(f"the case is {current} already")
    if target == CaseState.OPEN or target == current:
        raise CaseTransitionRefused(f"the case is {current}: it cannot become {target}")


# --- matching rules, as data ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MatchRule:
    """One way a line of a source is matched against the ledger.

    ``kinds``: the items it applies to. ``key``: what names the counterpart (``reference``, the
    exact reference; ``batch_sum``: one bank credit against the sum of a batch's net settlement
    lines, one-to-many). ``compare``: the amounts compared. ``tolerance``: the largest difference
    (minor units) still called equal. ``date_window_days``: how far back the ledger side is looked
    for (and, for ``missing_*``, how old the ledger side must be before it is called missing).
    """

    name: str
    source: str
    kinds: tuple[str, ...]
    key: str
    compare: str
    tolerance: int = 0
    date_window_days: int = 0


MATCH_RULES: tuple[MatchRule, ...] = (
    # The acquirer's line against the ledger's gateway_receivable movement of the same object.
    MatchRule(
        "settlement_by_reference",
        Source.GATEWAY_SETTLEMENT,
        (ItemKind.CAPTURE, ItemKind.REFUND, ItemKind.CHARGEBACK),
        key="reference",
        compare="gross",
    ),
    # The acquirer's fee against the configured schedule (a difference is ``fee_mismatch``).
    MatchRule(
        "settlement_fee",
        Source.GATEWAY_SETTLEMENT,
        (ItemKind.CAPTURE, ItemKind.REFUND),
        key="reference",
        compare="fee",
    ),
    # Ledger captures and refunds of the gateway, on or before the file's day and at most this
    # many days old, that no settlement file has settled: ``missing_at_gateway``.
    MatchRule(
        "ledger_settled_by_gateway",
        Source.GATEWAY_SETTLEMENT,
        (ItemKind.CAPTURE, ItemKind.REFUND),
        key="reference",
        compare="gross",
        date_window_days=7,
    ),
    # A debit with a payout id against the ledger's paid payout.
    MatchRule("payout_debit", Source.BANK_STATEMENT, (ItemKind.PAYOUT,), key="reference", compare="amount"),
    # A credit with a batch reference against Σ net of that batch's settled lines (one-to-many).
    MatchRule("batch_credit", Source.BANK_STATEMENT, (ItemKind.BATCH,), key="batch_sum", compare="amount"),
    # Paid payouts from the bank, paid on or before the statement's day (minus the window), that
    # no statement has debited: ``missing_in_bank``.
    MatchRule(
        "ledger_payout_debited",
        Source.BANK_STATEMENT,
        (ItemKind.PAYOUT,),
        key="reference",
        compare="amount",
        date_window_days=0,
    ),
)


def rule(name: str, tolerance: int | None = None) -> MatchRule:
    """The rule named ``name``, with the configured tolerance when one is given."""
    found = next(r for r in MATCH_RULES if r.name == name)
    return found if tolerance is None else dataclasses.replace(found, tolerance=tolerance)


# --- how a statement line is read -------------------------------------------------------------------

PAYOUT_PREFIX = "po_"
RESERVE_PREFIX = "RSV-"
RETURNED_ITEM = "NRTI"  # SWIFT: a returned item (a payout the beneficiary's bank sent back)
CHARGES = "NCHG"  # SWIFT: charges (the bank's fees)


def statement_line_kind(amount: int, transaction_type: str, reference: str, known_batch: bool) -> str:
    """What a statement line is, from its sign, type and reference (the rules of DESIGN §5)."""
    if amount < 0:
        if transaction_type == CHARGES:
            return ItemKind.BANK_FEE
        if reference.startswith(PAYOUT_PREFIX):
            return ItemKind.PAYOUT
        return ItemKind.OTHER
    if transaction_type == RETURNED_ITEM and reference.startswith(PAYOUT_PREFIX):
        return ItemKind.RETURNED_PAYOUT
    if reference.startswith(RESERVE_PREFIX) and len(reference) > len(RESERVE_PREFIX):
        return ItemKind.RESERVE_TOP_UP
    if known_batch:
        return ItemKind.BATCH
    return ItemKind.OTHER


# --- the acquirer's fee schedule --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fee:
    percent_bp: int  # basis points of the gross, rounded half up
    fixed: int  # minor units

    def of(self, gross: int) -> int:
        if gross <= 0:
            return 0
        return (gross * self.percent_bp + 5_000) // 10_000 + self.fixed


DOMESTIC_SCHEMES = ("cmi", "visa", "mastercard")
# The M2T sandbox's own schedule: what a fee is expected to be unless configuration says otherwise.
DEFAULT_FEE_SCHEDULE: dict[str, Fee] = {
    "card:domestic": Fee(150, 150),
    "card:international": Fee(280, 150),
    "wallet": Fee(100, 0),
}


@dataclasses.dataclass(frozen=True)
class FeeSchedule:
    """An acquirer's fees per card scheme and region. Keys: ``<scheme>:<region>`` (most precise),
    ``card:<region>`` (any card scheme), ``wallet``. Refunds and chargebacks cost nothing."""

    fees: Mapping[str, Fee]

    def expected_fee(self, line_type: str, gross: int, card_scheme: str, card_region: str) -> int:
        if line_type != "capture":
            return 0
        return self.fee_for(card_scheme, card_region).of(gross)

    def fee_for(self, card_scheme: str, card_region: str) -> Fee:
        """The fee a capture with this card scheme and region is charged."""
        fee = self.fees.get(f"{card_scheme}:{card_region}")
        if fee is None:
            family = "wallet" if card_scheme == "wallet" else f"card:{card_region}"
            fee = (
                self.fees.get(family)
                or DEFAULT_FEE_SCHEDULE.get(family)
                or DEFAULT_FEE_SCHEDULE["card:international"]
            )
        return fee


def parse_fee_schedules(raw: str) -> dict[str, FeeSchedule]:
    """``{"m2t": {"card:domestic": {"percent_bp": 150, "fixed": 150}, …}, …}`` → schedules per
    gateway (each on top of the defaults). ``ValueError`` on anything else."""
    document: Any = json.loads(raw) if raw.strip() else {}
    if not isinstance(document, dict):
        raise ValueError("a JSON object of gateways")
    schedules = {}
    for gateway, fees in document.items():
        if not isinstance(fees, dict):
            raise ValueError(f"{gateway}: a JSON object of fees")
        parsed = dict(DEFAULT_FEE_SCHEDULE)
        for key, fee in fees.items():
            if not isinstance(fee, dict) or set(fee) != {"percent_bp", "fixed"}:
                raise ValueError(f"{gateway}.{key}: {{'percent_bp': int, 'fixed': int}}")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fee.values()):
                raise ValueError(f"{gateway}.{key}: non-negative integers")
            parsed[key] = Fee(fee["percent_bp"], fee["fixed"])
        schedules[gateway] = FeeSchedule(parsed)
    return schedules


def fee_schedule(schedules: Mapping[str, FeeSchedule], gateway: str) -> FeeSchedule:
    return schedules.get(gateway) or FeeSchedule(DEFAULT_FEE_SCHEDULE)


# --- what a reconciled line posts ------------------------------------------------------------------

EntryLine = tuple[AccountRef, int]


def settlement_lines(
    *, gateway: str, bank_code: str, gross: int, fee: int, net: int
) -> tuple[EntryLine, ...]:
    """A capture: Dr bank net, Dr gateway_fees fee, Cr gateway_receivable gross. A refund or a
    chargeback (negative gross and net) is the inverse. Amounts signed from Hirfa's side."""
    return (
        (bank(bank_code), net),
        (platform("gateway_fees"), fee),
        (gateway_receivable(gateway), -gross),
    )


def settlement_posting_key(gateway: str, kind: str, object_id: str) -> str:
    return f"settlement:{gateway}:{kind}:{object_id}"


def returned_payout_lines(*, bank_code: str, payee: AccountRef, amount: int) -> tuple[EntryLine, ...]:
    """The beneficiary's bank sent the payout back: the money is at our bank again, and the payee's
    (``payee``: the artisan's available balance, or a marketplace's commission)."""
    return ((bank(bank_code), amount), (payee, -amount))


def reserve_top_up_lines(*, bank_code: str, marketplace_id: str, amount: int) -> tuple[EntryLine, ...]:
    return ((bank(bank_code), amount), (marketplace(marketplace_id, "reserve"), -amount))


def bank_fee_lines(*, bank_code: str, amount: int) -> tuple[EntryLine, ...]:
    """``amount``: the fee, positive."""
    return ((platform("bank_fees"), amount), (bank(bank_code), -amount))
