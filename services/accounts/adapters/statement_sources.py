"""The partner bank's daily statements of Hirfa's client-funds accounts, over the bank-partner API.

``HttpStatementSource`` implements ``domain.ports.StatementSource``:
``GET /v1/accounts/<bank_code>/statements/<YYYY-MM-DD>?format=mt940|camt053`` with the partner's
API key and a timeout (``shared.bank_partners``). The answer is the file as the bank wrote it; the
caller reads it with ``shared.bank_statements`` (and keeps the raw bytes with their hash).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import ClassVar

from shared.bank_partners import BankPartnerApi

STATEMENT_FORMATS = ("mt940", "camt053")
_BANK_CODE = re.compile(r"^[0-9]{3}$")


class HttpStatementSource(BankPartnerApi):
    """The bank-partner API for statements. A statement is a read: retried on transient failures."""

    default_retries: ClassVar[int] = 2

    def fetch_statement(self, bank_code: str, day: str, format: str) -> bytes:
        if not _BANK_CODE.match(bank_code):
            raise ValueError("bank_code must be a three-digit bank code")
        if dt.date.fromisoformat(day).isoformat() != day:
            raise ValueError("day must be YYYY-MM-DD")
        if format not in STATEMENT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(STATEMENT_FORMATS)}")
        return self._fetch_file(f"/v1/accounts/{bank_code}/statements/{day}", {"format": format})
