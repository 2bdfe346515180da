"""Reading the journal lines an operator types into a form (an adjustment, a write-off).

Each line is an account ({owner type, owner id, kind}), a side (debit or credit) and an amount in
the currency's units as people write it ("12.50"). The APIs want signed integer minor units
(+ debit, − credit), so the conversion is exact (``Decimal``, never a float) and anything with more
than two decimals is refused rather than rounded. Whether the lines balance, or name real
accounts, is the ledger's to say: its refusal comes back as the page's message.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

# How many line rows a form offers: enough for a two-legged move and a fee on each side.
LINE_ROWS = 4
OWNER_TYPES = ("platform", "marketplace", "artisan")
SIDES = ("debit", "credit")
_AMOUNT = re.compile(r"^[0-9]{1,13}([.,][0-9]{1,2})?$")


class FormProblem(ValueError):
    """The form cannot be sent as it is; the message says why, in the person's language."""


@dataclasses.dataclass(frozen=True)
class LineRow:
    """One row as typed, to show the form again after a refusal."""

    owner_type: str = "platform"
    owner_id: str = ""
    kind: str = ""
    side: str = "debit"
    amount: str = ""


def minor_units(text: str) -> int:
    """ "12.50" or "12,50" → 1250; refuses negatives, letters and a third decimal."""
    cleaned = text.strip().replace(" ", "")
    if not _AMOUNT.match(cleaned):
        raise FormProblem(_("Write amounts like 12.50 (at most two decimals)."))
    try:
        value = Decimal(cleaned.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        raise FormProblem(_("Write amounts like 12.50 (at most two decimals).")) from None
    return int(value * 100)


def rows_of(form: MultiDict[str, str]) -> list[LineRow]:
    """The rows as typed (all of them, empty ones too), in order."""
    return [
        LineRow(
            owner_type=form.get(f"line-{index}-owner_type", "platform"),
            owner_id=form.get(f"line-{index}-owner_id", "").strip(),
            kind=form.get(f"line-{index}-kind", "").strip(),
            side=form.get(f"line-{index}-side", "debit"),
            amount=form.get(f"line-{index}-amount", "").strip(),
        )
        for index in range(LINE_ROWS)
    ]


def empty_rows() -> list[LineRow]:
    return [LineRow() for _ in range(LINE_ROWS)]


def lines_of(rows: list[LineRow]) -> list[dict[str, Any]]:
    """The filled rows as the API's lines. A platform account's owner is the platform itself, so
    its owner id may be left empty."""
    lines = []
    for row in rows:
        if not row.kind and not row.amount:
            continue
        if row.owner_type not in OWNER_TYPES or row.side not in SIDES or not row.kind:
            raise FormProblem(_("Each line needs an account kind, a side and an amount."))
        owner_id = row.owner_id or ("platform" if row.owner_type == "platform" else "")
        if not owner_id:
            raise FormProblem(_("A marketplace's or an artisan's account needs its owner's id."))
        amount = minor_units(row.amount)
        if amount == 0:
            raise FormProblem(_("A line of zero moves nothing."))
        lines.append(
            {
                "owner_type": row.owner_type,
                "owner_id": owner_id,
                "kind": row.kind,
                "amount": amount if row.side == "debit" else -amount,
            }
        )
    if len(lines) < 2:
        raise FormProblem(_("An adjustment needs at least two lines (a debit and a credit)."))
    return lines
