"""camt.053.001.08 (ISO 20022 bank-to-customer statement), written and read.

One ``Document`` carries one or several ``Stmt``; each statement gives its opening (``OPBD``) and
closing (``CLBD``) booked balances and one ``Ntry`` per entry. The holder's reference of an entry is
the transaction's ``EndToEndId`` (Hirfa's payout id, the acquirer's batch reference), the bank's
reference the entry's ``AcctSvcrRef``, the SWIFT transaction type (``NTRF``, ``NCHG``, ``NRTI``) a
proprietary bank transaction code issued by ``SWIFT``.

Reading validates the document against the official XSD first (``xsd/camt.053.001.08.xsd``, see
``xsd/ORIGIN.md``) and refuses it whole with ``MalformedFile`` listing the line and XPath of each
fault; a document that passes the schema but whose closing balance is not the opening balance plus
the entries is refused too. The parser resolves no entity and fetches nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from importlib import resources

from lxml import etree

from shared.bank_statements.model import Balance, MalformedFile, Statement, StatementEntry

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_NS = {"c": NAMESPACE}
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}$")
_TEXT_LIMITS = {"Max35Text": 35, "Max70Text": 70, "Max140Text": 140, "Max500Text": 500}


@functools.cache
def schema() -> etree.XMLSchema:
    """The official camt.053.001.08 XML schema (loaded once)."""
    source = resources.files("shared.bank_statements").joinpath("xsd/camt.053.001.08.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source, _parser()))


def _parser() -> etree.XMLParser:
    # No DTD, no entity expansion, no network: a statement is data, never instructions.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


# ---------------------------------------------------------------------------------------------
# Writing


def write_camt053(statement: Statement | list[Statement], *, message_id: str | None = None) -> bytes:
    """A camt.053.001.08 document (UTF-8 bytes) holding ``statement`` (or several)."""
    statements = statement if isinstance(statement, list) else [statement]
    if not statements:
        raise ValueError("a camt.053 document holds at least one statement")
    created = statements[0].created_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    document = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    root = _sub(document, "BkToCstmrStmt")
    header = _sub(root, "GrpHdr")
    _sub(header, "MsgId", _text(message_id or statements[0].statement_id, 35))
    _sub(header, "CreDtTm", _datetime(created))
    for one in statements:
        _write_statement(root, one, created)
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _write_statement(root: etree._Element, statement: Statement, created: dt.datetime) -> None:
    if not statement.is_consistent():
        raise ValueError("the closing balance is not the opening balance plus the entries")
    stmt = _sub(root, "Stmt")
    _sub(stmt, "Id", _text(statement.statement_id, 35))
    _sub(stmt, "ElctrncSeqNb", str(statement.sequence_number))
    _sub(stmt, "CreDtTm", _datetime(statement.created_at or created))
    account = _sub(stmt, "Acct")
    _account_id(account, statement.account)
    _sub(account, "Ccy", statement.currency)
    if statement.holder_name:
        _sub(_sub(account, "Ownr"), "Nm", _text(statement.holder_name, 140))
    if statement.bank_code:
        institution = _sub(_sub(account, "Svcr"), "FinInstnId")
        _sub(_sub(institution, "ClrSysMmbId"), "MmbId", statement.bank_code)
    _balance(stmt, "OPBD", statement.opening, statement.currency)
    _balance(stmt, "CLBD", statement.closing, statement.currency)
    for entry in statement.entries:
        _entry(stmt, entry, statement.currency)


def _balance(stmt: etree._Element, code: str, balance: Balance, currency: str) -> None:
    element = _sub(stmt, "Bal")
    _sub(_sub(_sub(element, "Tp"), "CdOrPrtry"), "Cd", code)
    _sub(element, "Amt", _decimal(balance.amount), Ccy=currency)
    _sub(element, "CdtDbtInd", "DBIT" if balance.amount < 0 else "CRDT")
    _sub(_sub(element, "Dt"), "Dt", balance.date.isoformat())


def _entry(stmt: etree._Element, entry: StatementEntry, currency: str) -> None:
    element = _sub(stmt, "Ntry")
    _sub(element, "Amt", _decimal(entry.amount), Ccy=currency)
    _sub(element, "CdtDbtInd", "DBIT" if entry.amount < 0 else "CRDT")
    _sub(_sub(element, "Sts"), "Cd", "BOOK")
    _sub(_sub(element, "BookgDt"), "Dt", entry.booking_date.isoformat())
    _sub(_sub(element, "ValDt"), "Dt", entry.value_date.isoformat())
    if entry.bank_reference:
        _sub(element, "AcctSvcrRef", _text(entry.bank_reference, 35))
    code = _sub(_sub(element, "BkTxCd"), "Prtry")
    _sub(code, "Cd", entry.transaction_type)
    _sub(code, "Issr", "SWIFT")
    transaction = _sub(_sub(element, "NtryDtls"), "TxDtls")
    refs = _sub(transaction, "Refs")
    if entry.bank_reference:
        _sub(refs, "AcctSvcrRef", _text(entry.bank_reference, 35))
    _sub(refs, "EndToEndId", _text(entry.reference or "NOTPROVIDED", 35))
    if entry.counterparty_name or entry.counterparty_account:
        # The other party: who paid us for money in, whom we paid for money out.
        party, account = ("Dbtr", "DbtrAcct") if entry.amount >= 0 else ("Cdtr", "CdtrAcct")
        parties = _sub(transaction, "RltdPties")
        if entry.counterparty_name:
            _sub(_sub(_sub(parties, party), "Pty"), "Nm", _text(entry.counterparty_name, 140))
        if entry.counterparty_account:
            _account_id(_sub(parties, account), entry.counterparty_account)
    if entry.description:
        _sub(_sub(transaction, "RmtInf"), "Ustrd", _text(entry.description, 140))
        _sub(element, "AddtlNtryInf", _text(entry.description, 500))


def _account_id(parent: etree._Element, account: str) -> None:
    identification = _sub(parent, "Id")
    if _IBAN.match(account):
        _sub(identification, "IBAN", account)
    else:
        _sub(_sub(identification, "Othr"), "Id", _text(account, 34))


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _text(value: str, limit: int) -> str:
    # camt text is Unicode: names are kept as they are (Arabic included), only cut to the field size.
    return value[:limit]


def _decimal(minor_units: int) -> str:
    units, cents = divmod(abs(minor_units), 100)
    return f"{units}.{cents:02d}"


def _datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


# ---------------------------------------------------------------------------------------------
# Reading


def read_camt053(data: bytes) -> list[Statement]:
    """Every statement of a camt.053.001.08 document, or ``MalformedFile`` (nothing half-read)."""
    try:
        document = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        line = error.lineno or 1
        raise MalformedFile(
            "not well-formed XML", [{"line": line, "xpath": "/", "reason": str(error.msg)}]
        ) from None
    if document.getroottree().docinfo.internalDTD is not None or document.getroottree().docinfo.doctype:
        # ISO 20022 messages carry no DTD; one here can only be an entity trick.
        raise MalformedFile("not a camt.053 document", [{"line": 1, "xpath": "/", "reason": "a DOCTYPE"}])
    validator = schema()
    if not validator.validate(document):
        problems: list[dict[str, object]] = [
            {"line": error.line, "xpath": _schema_error_path(document, error.path), "reason": error.message}
            for error in validator.error_log
        ]
        raise MalformedFile("not a valid camt.053.001.08 document", problems)
    problems = []
    statements = []
    for stmt in document.iterfind("c:BkToCstmrStmt/c:Stmt", _NS):
        statement = _read_statement(stmt, problems)
        if statement is not None:
            statements.append(statement)
    if problems:
        raise MalformedFile("inconsistent camt.053 statement", problems)
    return statements


def _read_statement(stmt: etree._Element, problems: list[dict[str, object]]) -> Statement | None:
    def problem(element: etree._Element, reason: str) -> None:
        problems.append({"line": element.sourceline, "xpath": readable_path(element), "reason": reason})

    balances: dict[str, tuple[Balance, str, etree._Element]] = {}
    for bal in stmt.iterfind("c:Bal", _NS):
        code = _find(bal, "c:Tp/c:CdOrPrtry/c:Cd") or _find(bal, "c:Tp/c:CdOrPrtry/c:Prtry")
        amount_element = bal.find("c:Amt", _NS)
        assert amount_element is not None  # the schema requires it
        amount = _signed(_checked_minor(amount_element, problem), _find(bal, "c:CdtDbtInd"))
        # An xs:date may carry a zone ("2026-12-06Z", "2026-12-06+01:00"): the day is its first ten characters.
        day = (_find(bal, "c:Dt/c:Dt") or _find(bal, "c:Dt/c:DtTm"))[:10]
        balances[code] = (Balance(dt.date.fromisoformat(day), amount), amount_element.get("Ccy", ""), bal)
    opening = balances.get("OPBD") or balances.get("PRCD")
    closing = balances.get("CLBD")
    if opening is None or closing is None:
        problem(stmt, "the statement needs an opening (OPBD or PRCD) and a closing (CLBD) booked balance")
        return None
    currency = opening[1]
    entries = []
    for ntry in stmt.iterfind("c:Ntry", _NS):
        amount_element = ntry.find("c:Amt", _NS)
        assert amount_element is not None
        if amount_element.get("Ccy") != currency:
            problem(amount_element, "entry currency differs from the statement's balances")
        amount = _signed(_checked_minor(amount_element, problem), _find(ntry, "c:CdtDbtInd"))
        if _find(ntry, "c:RvslInd") in ("true", "1"):
            amount = -amount  # a reversal books the opposite way to its indicator
        booking = _date_of(ntry, "c:BookgDt")
        value = _date_of(ntry, "c:ValDt") or booking
        if booking is None or value is None:
            problem(ntry, "the entry has neither a booking nor a value date")
            continue
        credit = amount >= 0
        party = "c:NtryDtls/c:TxDtls/c:RltdPties/" + ("c:Dbtr" if credit else "c:Cdtr")
        account = "c:NtryDtls/c:TxDtls/c:RltdPties/" + ("c:DbtrAcct" if credit else "c:CdtrAcct")
        reference = _find(ntry, "c:NtryDtls/c:TxDtls/c:Refs/c:EndToEndId")
        entries.append(
            StatementEntry(
                value_date=value,
                booking_date=booking,
                amount=amount,
                transaction_type=_find(ntry, "c:BkTxCd/c:Prtry/c:Cd")
                or _find(ntry, "c:BkTxCd/c:Domn/c:Fmly/c:SubFmlyCd")
                or "NMSC",
                reference=reference if reference and reference != "NOTPROVIDED" else "NONREF",
                bank_reference=_find(ntry, "c:AcctSvcrRef")
                or _find(ntry, "c:NtryDtls/c:TxDtls/c:Refs/c:AcctSvcrRef"),
                description=_find(ntry, "c:AddtlNtryInf")
                or _find(ntry, "c:NtryDtls/c:TxDtls/c:RmtInf/c:Ustrd"),
                counterparty_name=_find(ntry, party + "/c:Pty/c:Nm"),
                counterparty_account=_find(ntry, account + "/c:Id/c:IBAN")
                or _find(ntry, account + "/c:Id/c:Othr/c:Id"),
            )
        )
    if closing[1] != currency:
        problem(closing[2], "closing balance currency differs from the opening balance's")
    elif opening[0].amount + sum(entry.amount for entry in entries) != closing[0].amount:
        problem(closing[2], "closing balance is not the opening balance plus the entries")
    created = _find(stmt, "c:CreDtTm")
    sequence = _find(stmt, "c:ElctrncSeqNb") or _find(stmt, "c:LglSeqNb") or "0"
    return Statement(
        statement_id=_find(stmt, "c:Id"),
        sequence_number=int(sequence),
        account=_find(stmt, "c:Acct/c:Id/c:IBAN") or _find(stmt, "c:Acct/c:Id/c:Othr/c:Id"),
        bank_code=_find(stmt, "c:Acct/c:Svcr/c:FinInstnId/c:ClrSysMmbId/c:MmbId"),
        currency=currency,
        opening=opening[0],
        closing=closing[0],
        entries=tuple(entries),
        holder_name=_find(stmt, "c:Acct/c:Ownr/c:Nm"),
        created_at=dt.datetime.fromisoformat(created) if created else None,
    )


def readable_path(element: etree._Element) -> str:
    """``/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt``: local names, positions among namesakes."""
    steps = []
    current: etree._Element | None = element
    while current is not None:
        name = etree.QName(current).localname
        parent = current.getparent()
        if parent is not None:
            namesakes = [child for child in parent if child.tag == current.tag]
            if len(namesakes) > 1:
                name += f"[{namesakes.index(current) + 1}]"
        steps.append(name)
        current = parent
    return "/" + "/".join(reversed(steps))


def _schema_error_path(document: etree._Element, path: str | None) -> str:
    """The schema's positional XPath (``/*/*/*[2]``) as a readable one, when it names one element."""
    if not path:
        return "/"
    try:
        found = document.getroottree().xpath(path)
    except etree.XPathError:
        return path
    if isinstance(found, list) and len(found) == 1 and isinstance(found[0], etree._Element):
        return readable_path(found[0])
    return path


def _find(element: etree._Element, path: str) -> str:
    found = element.find(path, _NS)
    return (found.text or "").strip() if found is not None else ""


def _date_of(element: etree._Element, path: str) -> dt.date | None:
    day = (_find(element, path + "/c:Dt") or _find(element, path + "/c:DtTm"))[:10]
    return dt.date.fromisoformat(day) if day else None


def _minor(text: str) -> int | None:
    """The amount in minor units, or None when it has more decimals than the currency's two."""
    try:
        cents = Decimal(text.strip()) * 100
    except InvalidOperation:  # the schema's decimal type makes this unreachable for a valid file
        return None
    return int(cents) if cents == cents.to_integral_value() else None


def _checked_minor(element: etree._Element, problem: Callable[[etree._Element, str], None]) -> int:
    minor = _minor(element.text or "")
    if minor is None:
        problem(element, "amount has more than two decimals")
        return 0
    return minor


def _signed(amount: int, indicator: str) -> int:
    return -amount if indicator == "DBIT" else amount
