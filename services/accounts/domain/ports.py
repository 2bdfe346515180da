"""What accounts asks of the outside world: the partner bank that executes payouts, and payments
(which succeeded payments its ledger should hold).

Adapters implement this port (``services.accounts.adapters.banks``); the service layer speaks only
to it. A bank's failures are ``shared.partner_ports.PartnerError`` (``transient`` ones may be
retried) and a callback it cannot trust is ``shared.partner_ports.InvalidCallback``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import BinaryIO, Protocol


@dataclasses.dataclass(frozen=True)
class TransferRequest:
    reference: str  # our payout id: the bank echoes it and deduplicates on it
    rib: str
    holder_name: str
    amount: int  # minor units
    currency: str
    callback_url: str

    def __repr__(self) -> str:
        # The full account number must not reach a log line or a traceback.
        return f"TransferRequest(reference={self.reference!r}, rib='…{self.rib[-4:]}', amount={self.amount})"


@dataclasses.dataclass(frozen=True)
class Transfer:
    partner_reference: str  # the bank's transfer id
    reference: str
    status: str  # pending | paid | failed
    amount: int
    currency: str
    failure_code: str | None = None


@dataclasses.dataclass(frozen=True)
class TransferCallback:
    event_id: str
    type: str
    transfer: Transfer


class BankPartner(Protocol):
    """The partner bank, as far as transfers go."""

    def request_transfer(self, request: TransferRequest) -> Transfer: ...

    def transfer(self, partner_reference: str) -> Transfer: ...

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback: ...


class BankPartners(Protocol):
    """The partner banks by slug (the slug also names the bank's callback URL)."""

    def get(self, slug: str) -> BankPartner: ...

    def __contains__(self, slug: object) -> bool: ...


class StatementSource(Protocol):
    """A partner bank's end-of-day statements for the client-funds accounts it holds for Hirfa.

    ``fetch_statement`` gives the raw file as the bank serves it (``format``: ``mt940`` or
    ``camt053``), for ``bank_code``'s client-funds account and the given day (``YYYY-MM-DD``).
    """

    def fetch_statement(self, bank_code: str, day: str, format: str) -> bytes: ...


class SettlementSource(Protocol):
    """An acquirer's daily settlement file (CSV, the acquirer's columns), for one UTC day."""

    def fetch_settlement(self, day: str) -> bytes: ...


# --- the signed income statement -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StatementCheck:
    """What verifying a signed statement found: ``valid``, else why not (``reason``)."""

    valid: bool
    reason: str  # signature_valid | malformed | unsupported_algorithm | unknown_key | bad_signature | not_a_statement
    kid: str | None = None
    statement: Mapping[str, object] | None = None  # what was signed (valid or not, when readable)


class StatementSigner(Protocol):
    """Signs statements as compact JWS (EdDSA) with the platform's statement key, and checks them
    against every key it publishes (``jwks``)."""

    def sign(self, statement: Mapping[str, object]) -> tuple[str, str]:
        """``(compact JWS, kid of the key that signed it)``."""
        ...

    def verify(self, jws: str) -> StatementCheck: ...

    def jwks(self) -> Mapping[str, object]: ...


class StatementRenderer(Protocol):
    """Lays a statement out as a PDF, in French or Arabic."""

    def render(
        self, statement: Mapping[str, object], *, language: str, verification_url: str, kid: str
    ) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class StoredFile:
    sha256: str  # hex digest of the content: the file's name in the store
    size: int  # bytes


class FileStore(Protocol):
    """Where received reconciliation files are kept, immutable, named by their SHA-256.

    ``put`` reads ``stream`` in chunks (never the whole file at once) and keeps it; putting the same
    content again keeps one copy. ``open`` gives it back as a binary stream to re-read.
    """

    def put(self, stream: BinaryIO) -> StoredFile: ...

    def open(self, sha256: str) -> BinaryIO: ...


@dataclasses.dataclass(frozen=True)
class UnpostedPayment:
    """A payment that succeeded and whose ledger entry payments has not heard of yet."""

    payment_id: str
    artisan_id: str
    marketplace_id: str
    amount: int  # minor units, the amount captured
    currency: str
    succeeded_at: dt.datetime


class PaymentsLedgerView(Protocol):
    """Payments, as accounts' completeness check asks it (a Hirfa service's token)."""

    def unposted_payments(self, succeeded_before: dt.datetime) -> Iterator[UnpostedPayment]: ...
