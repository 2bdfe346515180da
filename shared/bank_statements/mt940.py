"""MT940 (SWIFT customer statement message), written and read.

Writing follows the SWIFT field rules: one message per statement, fields ``:20:`` (16x statement
id), ``:25:`` (35x account), ``:28C:`` (5n/5n statement/page number), ``:60F:`` opening balance,
one ``:61:`` statement line (at most 65 characters) per entry, each followed by ``:86:`` (at most
6 lines of 65 characters), ``:62F:`` closing balance, and ``-`` ending the message. Lines end in CR
LF and carry only the SWIFT X character set (``shared.bank_statements.swift``).

``:61:`` has room for a 16-character reference; Hirfa's payout ids and the acquirer's batch
references are longer, so the full references travel in ``:86:``, in the structured layout many
banks use: ``/EREF/`` the account holder's (end-to-end) reference, ``/BREF/`` the bank's,
``/NAME/`` and ``/ACCT/`` the counterparty, ``/REMI/`` free text. ``:61:`` carries the reference
itself when it fits, ``NONREF`` otherwise.

Reading first checks every line against those rules and refuses the whole file with
``MalformedFile`` naming each line at fault; only then does the PyPI package ``mt-940`` turn each
message's fields into values (amounts, dates, the ``:61:`` subfields).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import mt940 as mt940_package

from shared.bank_statements.model import Balance, MalformedFile, Statement, StatementEntry
from shared.bank_statements.swift import SWIFT_X_LINE, restore_reference, swift_reference, to_swift_x

CRLF = "\r\n"
LINE_LIMIT = 65  # every MT940 line, :86: lines included (6*65x)
DETAILS_LINES = 6
REFERENCE_LIMIT = 16  # :20:, :61: subfields 7 and 8
ACCOUNT_LIMIT = 35  # :25:
NO_REFERENCE = "NONREF"
_DETAIL_CODES = ("EREF", "BREF", "NAME", "ACCT", "REMI")


# ---------------------------------------------------------------------------------------------
# Writing


def write_mt940(statement: Statement) -> str:
    """One MT940 message for ``statement``: CRLF lines, ending with the ``-`` line."""
    if not statement.is_consistent():
        raise ValueError("the closing balance is not the opening balance plus the entries")
    statement_id = _short_field(swift_reference(statement.statement_id), REFERENCE_LIMIT, ":20:")
    account = _short_field(to_swift_x(statement.account), ACCOUNT_LIMIT, ":25:")
    if not 0 <= statement.sequence_number <= 99999:
        raise ValueError(":28C: statement number must be 0..99999")
    lines = [
        f":20:{statement_id}",
        f":25:{account}",
        f":28C:{statement.sequence_number}/1",
        f":60F:{_balance(statement.opening, statement.currency)}",
    ]
    for entry in statement.entries:
        lines.append(f":61:{_statement_line(entry)}")
        lines.extend(_details(entry))
    lines.append(f":62F:{_balance(statement.closing, statement.currency)}")
    lines.append("-")
    return CRLF.join(lines) + CRLF


def write_mt940_messages(statements: Iterable[Statement]) -> str:
    """Several statements in one file: one message each, one after the other."""
    return "".join(write_mt940(statement) for statement in statements)


def _short_field(value: str, limit: int, tag: str) -> str:
    if not value or len(value) > limit:
        raise ValueError(f"{tag} must be 1 to {limit} characters")
    return value


def _amount(minor_units: int) -> str:
    # 15d: digits with a decimal comma, always two decimals here (the currencies Hirfa handles).
    units, cents = divmod(abs(minor_units), 100)
    text = f"{units},{cents:02d}"
    if len(text) > 15:
        raise ValueError("amount does not fit the 15-character MT940 amount")
    return text


def _balance(balance: Balance, currency: str) -> str:
    mark = "D" if balance.amount < 0 else "C"
    return f"{mark}{balance.date:%y%m%d}{currency}{_amount(balance.amount)}"


def _statement_line(entry: StatementEntry) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9]{3}", entry.transaction_type):
        raise ValueError(f"transaction type {entry.transaction_type!r} is not a SWIFT 1!a3!c code")
    mark = "D" if entry.amount < 0 else "C"
    reference = _fitting_reference(entry.reference) or NO_REFERENCE
    line = f"{entry.value_date:%y%m%d}{entry.booking_date:%m%d}{mark}{_amount(entry.amount)}"
    line += f"{entry.transaction_type}{reference}"
    bank_reference = _fitting_reference(entry.bank_reference)
    if bank_reference:
        line += f"//{bank_reference}"
    return line


def _fitting_reference(reference: str) -> str:
    """The reference as :61: can carry it, or "" when it does not fit (it travels in :86:)."""
    written = swift_reference(reference)
    if not written or len(written) > REFERENCE_LIMIT or "//" in written:
        return ""
    if written.startswith("/") or written.endswith("/"):
        return ""
    return written


def _details(entry: StatementEntry) -> list[str]:
    """The :86: lines: the structured details, cut into 65-character lines (6 at most)."""
    parts = []
    if entry.reference:
        parts.append(f"/EREF/{swift_reference(entry.reference)}")
    if entry.bank_reference:
        parts.append(f"/BREF/{swift_reference(entry.bank_reference)}")
    if entry.counterparty_name:
        parts.append(f"/NAME/{to_swift_x(entry.counterparty_name)}")
    if entry.counterparty_account:
        parts.append(f"/ACCT/{to_swift_x(entry.counterparty_account)}")
    if entry.description:
        parts.append(f"/REMI/{to_swift_x(entry.description)}")
    text = "".join(parts) or f"/EREF/{NO_REFERENCE}"
    # The first line carries the 4-character tag; the free text that does not fit 6 lines is cut
    # (the description comes last, so references and names are kept whole).
    chunks = _wrap(":86:" + text, LINE_LIMIT, DETAILS_LINES)
    return chunks


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    # A continuation line must not start with ':' or '-' (it would read as a new field or the end of
    # the message): such a line starts one character earlier.
    lines: list[str] = []
    while text and len(lines) < max_lines:
        cut = min(width, len(text))
        while cut < len(text) and text[cut] in ":-" and cut > 1:
            cut -= 1
        lines.append(text[:cut])
        text = text[cut:]
    return lines


# ---------------------------------------------------------------------------------------------
# Reading

_FIELD_START = re.compile(r"^:(\d{2}[A-Z]?):(.*)$")
_KNOWN_TAGS = {"13D", "20", "21", "25", "28C", "60F", "60M", "61", "86", "62F", "62M", "64", "65"}
_BALANCE = re.compile(r"^([CD])(\d{6})([A-Z]{3})(\d{1,12},\d{0,2})$")
_STATEMENT_LINE = re.compile(
    r"^(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>R?[CD])(?P<funds>[A-Z])?(?P<amount>\d{1,12},\d{0,2})"
    r"(?P<type>[A-Z][A-Z0-9]{3})(?P<reference>(?:(?!//).){1,16})(?://(?P<bank_reference>.{1,16}))?$"
)
_DETAILS_CODE = re.compile(r"/(" + "|".join(_DETAIL_CODES) + r")/")


class _Field:
    def __init__(self, tag: str, line: int, first: str) -> None:
        self.tag = tag
        self.line = line
        self.lines = [first]


def read_mt940(data: bytes) -> list[Statement]:
    """Every statement in an MT940 file (one or several messages), or ``MalformedFile``."""
    problems: list[dict[str, object]] = []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MalformedFile(
            "not an MT940 file", [{"line": line, "reason": "a character outside the SWIFT X set"}]
        ) from None
    messages = _messages(text, problems)
    if not messages and not problems:
        problems.append({"line": 1, "reason": "no MT940 message (no :20: field)"})
    for fields in messages:
        _check_message(fields, problems)
    if problems:
        raise MalformedFile("malformed MT940", problems)
    return [_statement(fields) for fields in messages]


def _messages(text: str, problems: list[dict[str, object]]) -> list[list[_Field]]:
    """The file's fields, message by message, with the SWIFT line rules checked on the way."""
    messages: list[list[_Field]] = []
    current: list[_Field] | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line in ("-", "-}"):
            if current is None:
                problems.append({"line": number, "reason": "message end '-' outside a message"})
            current = None
            continue
        if not line.strip():
            if current is not None and current:
                current[-1].lines.append("")  # a blank line inside a field: refused by the field check
            continue
        if not SWIFT_X_LINE.fullmatch(line):
            problems.append({"line": number, "reason": "a character outside the SWIFT X set"})
        start = _FIELD_START.match(line)
        # A field's first line is checked by the field's own format; any other line by the limit.
        if not start and len(line) > LINE_LIMIT:
            problems.append({"line": number, "reason": f"line longer than {LINE_LIMIT} characters"})
        if start:
            tag, value = start.groups()
            if tag not in _KNOWN_TAGS:
                problems.append({"line": number, "reason": f"unknown field :{tag}:"})
            if tag == "20" or current is None:
                current = []
                messages.append(current)
            current.append(_Field(tag, number, value))
        elif current:
            current[-1].lines.append(line)
        else:
            problems.append({"line": number, "reason": "text outside any field"})
    return messages


def _check_message(fields: list[_Field], problems: list[dict[str, object]]) -> None:
    def problem(field: _Field, reason: str) -> None:
        problems.append({"line": field.line, "reason": f":{field.tag}: {reason}"})

    tags = [field.tag for field in fields]
    first = fields[0]
    for required in ("20", "25", "28C"):
        if required not in tags:
            problems.append({"line": first.line, "reason": f"the message has no :{required}: field"})
    if not {"60F", "60M"} & set(tags):
        problems.append({"line": first.line, "reason": "the message has no opening balance :60F:"})
    if not {"62F", "62M"} & set(tags):
        problems.append({"line": fields[-1].line, "reason": "the message has no closing balance :62F:"})
    if first.tag != "20":
        problem(first, "the message must start with :20:")

    opening: tuple[int, str] | None = None
    closing: tuple[int, str, _Field] | None = None
    movement = 0
    seen_closing = False
    for field in fields:
        value = field.lines[0]
        more = field.lines[1:]
        if field.tag != "86" and field.tag != "61" and more:
            problem(field, "must be one line")
        if field.tag != "86" and "" in more:
            problem(field, "blank line inside the field")
        if field.tag == "20":
            if not 1 <= len(value) <= REFERENCE_LIMIT or value.startswith("/") or "//" in value:
                problem(field, "must be 1 to 16 characters, not starting with '/' nor containing '//'")
        elif field.tag == "25":
            if not 1 <= len(value) <= ACCOUNT_LIMIT:
                problem(field, "must be 1 to 35 characters")
        elif field.tag == "28C":
            if not re.fullmatch(r"\d{1,5}(/\d{1,5})?", value):
                problem(field, "must be the statement number 5n[/5n]")
        elif field.tag in ("60F", "60M", "62F", "62M", "64", "65"):
            parsed = _check_balance(value)
            if isinstance(parsed, str):
                problem(field, parsed)
            elif field.tag in ("60F", "60M"):
                opening = parsed
            elif field.tag in ("62F", "62M"):
                closing = (*parsed, field)
                seen_closing = True
        elif field.tag == "61":
            if seen_closing:
                problem(field, "statement line after the closing balance")
            match = _STATEMENT_LINE.match(value)
            if not match:
                problem(field, "is not a statement line 6!n[4!n]2a[1!a]15d1!a3!c16x[//16x]")
            else:
                if not _valid_date(match.group("value")):
                    problem(field, "value date is not a date")
                # The entry date (MMDD) is read in the value date's year.
                entry = match.group("entry")
                if entry and not _valid_date(match.group("value")[:2] + entry):
                    problem(field, "entry date is not a date")
                cents = _cents(match.group("amount"))
                movement += cents if match.group("mark") in ("C", "RD") else -cents
            if len(more) > 1 or (more and len(more[0]) > 34):
                problem(field, "supplementary details are one line of at most 34 characters")
        elif field.tag == "86":
            if len(value) > LINE_LIMIT:
                problem(field, f"line longer than {LINE_LIMIT} characters")
            if len(field.lines) > DETAILS_LINES:
                problem(field, f"more than {DETAILS_LINES} lines")
            if "" in more:
                problem(field, "blank line inside the field")
    if opening is not None and closing is not None:
        open_amount, open_currency = opening
        close_amount, close_currency, close_field = closing
        if open_currency != close_currency:
            problem(close_field, "currency differs from the opening balance's")
        elif open_amount + movement != close_amount:
            problem(close_field, "closing balance is not the opening balance plus the statement lines")


def _check_balance(value: str) -> tuple[int, str] | str:
    match = _BALANCE.match(value)
    if not match:
        return "is not a balance 1!a6!n3!a15d"
    mark, date, currency, amount = match.groups()
    if not _valid_date(date):
        return "date is not a date"
    cents = _cents(amount)
    return (-cents if mark == "D" else cents), currency


def _valid_date(yymmdd: str) -> bool:
    try:
        dt.datetime.strptime(yymmdd, "%y%m%d")
    except ValueError:
        return False
    return True


def _cents(amount: str) -> int:
    units, _, decimals = amount.partition(",")
    return int(units) * 100 + int((decimals + "00")[:2])


def _minor(amount: Any) -> int:
    """An ``mt-940`` Amount (a signed Decimal and a currency) in minor units."""
    value: Decimal = amount.amount
    return int((value * 100).to_integral_value())


def _statement(fields: list[_Field]) -> Statement:
    # The message's own text, fields joined as the file had them, for the mt-940 package.
    text = "\n".join(f":{field.tag}:" + "\n".join(field.lines) for field in fields)
    parsed = mt940_package.models.Transactions()
    parsed.parse(text)
    data = parsed.data
    opening = data.get("final_opening_balance") or data["intermediate_opening_balance"]
    closing = data.get("final_closing_balance") or data["intermediate_closing_balance"]
    account = str(data["account_identification"])
    entries = tuple(_entry(transaction.data) for transaction in parsed.transactions)
    return Statement(
        statement_id=restore_reference(str(data["transaction_reference"])),
        sequence_number=int(data["statement_number"]),
        account=account.split("/")[-1],
        bank_code=_bank_code(account),
        currency=str(opening.amount.currency),
        opening=Balance(date=_date(opening.date), amount=_minor(opening.amount)),
        closing=Balance(date=_date(closing.date), amount=_minor(closing.amount)),
        entries=entries,
    )


def _entry(data: dict[str, Any]) -> StatementEntry:
    details = _structured_details(str(data.get("transaction_details") or ""))
    reference = data.get("customer_reference") or ""
    bank_reference = data.get("bank_reference") or ""
    value_date = _date(data["date"])
    booking = data.get("entry_date")
    return StatementEntry(
        value_date=value_date,
        booking_date=_date(booking) if booking else value_date,
        amount=_minor(data["amount"]),
        transaction_type=str(data["id"]),
        reference=restore_reference(details.get("EREF") or str(reference) or NO_REFERENCE),
        bank_reference=restore_reference(details.get("BREF") or str(bank_reference)),
        description=details.get("REMI", details.get("", "")),
        counterparty_name=details.get("NAME", ""),
        counterparty_account=details.get("ACCT", ""),
    )


def _structured_details(text: str) -> dict[str, str]:
    """``/EREF/…/NAME/…`` → {"EREF": …, "NAME": …}; unstructured text lands under ""."""
    joined = text.replace("\r", "").replace("\n", "")
    pieces = _DETAILS_CODE.split(joined)
    details = {"": pieces[0]} if pieces[0] else {}
    for index in range(1, len(pieces) - 1, 2):
        details[pieces[index]] = pieces[index + 1]
    return details


def _date(value: Any) -> dt.date:
    return dt.date(value.year, value.month, value.day)


def _bank_code(account: str) -> str:
    """The bank code of a Moroccan IBAN (``MA`` + 2 check digits + the 24-digit RIB, bank code first)
    or of the ``bankcode/account`` form; "" when the account says neither."""
    if "/" in account:
        return account.split("/")[0]
    if account.startswith("MA") and len(account) == 28:
        return account[4:7]
    return ""
