"""Reading a received file into the records reconciliation matches, and refusing a malformed one.

The readers themselves are the file formats' (``shared.bank_statements`` for MT940 and camt.053,
``adapters/settlement_files.py`` for the acquirer's CSV); this module picks the one a file needs
(sniffing a statement's format when none is given) and turns a reader's ``MalformedFile`` into
``UnreadableFile``, the one error a run raises for a file it cannot read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from services.accounts.adapters.settlement_files import read_settlement_csv
from services.accounts.adapters.statement_sources import STATEMENT_FORMATS
from services.accounts.domain.settlement_records import SettlementLine
from shared.bank_statements.model import MalformedFile, Statement
from shared.errors import HirfaError

__all__ = [
    "STATEMENT_FORMATS",
    "UnreadableFile",
    "guarded",
    "read_settlement_lines",
    "read_statements",
    "sniff_statement_format",
]


class UnreadableFile(HirfaError):
    """422: the file is not what it claims to be; ``errors`` lists each line or XPath at fault."""

    code = "malformed_file"
    status = 422
    title = "Malformed file"


def problems_of(exc: Exception) -> list[dict[str, Any]]:
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        return [dict(problem) for problem in problems]
    return [{"reason": str(exc) or type(exc).__name__}]


def is_malformed(exc: Exception) -> bool:
    # The readers' own error (shared.bank_statements.model.MalformedFile), and what a reader of
    # bytes that are not text at all raises.
    return isinstance(exc, MalformedFile | UnicodeDecodeError | ValueError)


def sniff_statement_format(head: bytes) -> str | None:
    """camt.053 is XML; MT940 starts with a block header or a ``:20:`` field."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "camt053"
    if text.startswith((b"{1:", b":20:")) or b"\n:20:" in text[:2048]:
        return "mt940"
    return None


def read_statements(data: bytes, format: str | None) -> list[Statement]:
    """Every statement of a bank file (MT940 or camt.053), or ``UnreadableFile``."""
    format = format or sniff_statement_format(data[:4096])
    if format not in STATEMENT_FORMATS:
        raise UnreadableFile(
            "Not an MT940 or camt.053 statement (give `format` if it is one).",
            errors=[{"line": 1, "reason": "unknown statement format"}],
        )
    module = importlib.import_module(f"shared.bank_statements.{format}")
    reader = getattr(module, f"read_{format}")
    try:
        return list(reader(data))
    except Exception as exc:
        if is_malformed(exc):
            raise UnreadableFile(f"The {format} statement is malformed.", errors=problems_of(exc)) from None
        raise


def read_settlement_lines(stream: BinaryIO) -> Iterator[SettlementLine]:
    """The acquirer's settlement CSV, one line at a time (``adapters/settlement_files.py``)."""
    return read_settlement_csv(stream)


def guarded(
    read: Callable[[BinaryIO], Iterable[SettlementLine]], stream: BinaryIO
) -> Iterator[SettlementLine]:
    """``read(stream)``'s lines as they come, or ``UnreadableFile`` when the reader finds the file
    malformed, before its first line or after some were yielded (the caller's transaction then
    imports nothing)."""
    try:
        yield from read(stream)
    except Exception as exc:
        if is_malformed(exc):
            raise UnreadableFile("The settlement file is malformed.", errors=problems_of(exc)) from None
        raise
