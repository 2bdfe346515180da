"""One account statement for one day (or a range of days): balances and the booked entries between.

Amounts are integer minor units with the statement's currency; an entry's ``amount`` is signed from
the account holder's side: positive = credit (money in), negative = debit (money out). So
``closing.amount == opening.amount + sum(entry.amount for entry in entries)`` for a complete statement.
"""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class Balance:
    """A booked balance at the end of ``date`` (opening: the end of the day before the first entry)."""

    date: dt.date
    amount: int  # signed minor units: positive = the bank owes the holder (credit balance)


@dataclasses.dataclass(frozen=True)
class StatementEntry:
    value_date: dt.date
    booking_date: dt.date
    amount: int  # signed minor units: + credit (money in), - debit (money out)
    # What kind of movement the bank says it is (SWIFT transaction type identification, e.g.
    # ``NTRF`` transfer, ``NCHG`` charges, ``NRTI`` returned item), kept as the bank wrote it.
    transaction_type: str
    # The account holder's reference for the movement (MT940 :61: subfield 7, camt.053 EndToEndId):
    # Hirfa's payout id for a payout, the acquirer's batch reference for a settlement credit, the
    # payer's reference for an incoming transfer. ``NONREF`` when there is none.
    reference: str
    # The bank's own reference for the movement (MT940 :61: after ``//``, camt.053 AcctSvcrRef).
    bank_reference: str = ""
    # Free text (MT940 :86:, camt.053 AddtlNtryInf / remittance information), e.g. the payer's name.
    description: str = ""
    # The other party, when the bank names it (counterparty name and account).
    counterparty_name: str = ""
    counterparty_account: str = ""


@dataclasses.dataclass(frozen=True)
class Statement:
    # The bank's statement id (MT940 :20:, camt.053 Stmt/Id) and sequence number (:28C:, ElctrncSeqNb).
    statement_id: str
    sequence_number: int
    # The account the statement is for: its IBAN (or the bank's own account identification) and
    # the bank (three-digit Moroccan bank code) holding it.
    account: str
    bank_code: str
    currency: str
    opening: Balance
    closing: Balance
    entries: tuple[StatementEntry, ...]
    # The holder's name, as the bank writes it on the statement.
    holder_name: str = ""
    created_at: dt.datetime | None = None

    @property
    def movement(self) -> int:
        return sum(entry.amount for entry in self.entries)

    def is_consistent(self) -> bool:
        """The closing balance is the opening balance plus every entry."""
        return self.closing.amount == self.opening.amount + self.movement


class MalformedFile(ValueError):
    """A statement or settlement file that cannot be read, with every fault found.

    ``problems`` lists each fault as a dict: where (``{"line": n}`` for the line-based formats,
    1-based, or ``{"xpath": "..."}`` plus ``"line"`` for XML), what (``"reason"``), and for a CSV the
    ``"column"``. Readers refuse a file whole: nothing read from a malformed file is returned, so
    nothing is half-imported. The API renders ``problems`` in the problem+json ``errors``.
    """

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        first = "; ".join(_describe(problem) for problem in self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        return f"{self.args[0]}: {first}{more}" if first else str(self.args[0])


def _describe(problem: dict[str, object]) -> str:
    where = ", ".join(f"{key} {problem[key]}" for key in ("line", "column", "xpath") if key in problem)
    return f"{where}: {problem.get('reason', '')}" if where else str(problem.get("reason", ""))
