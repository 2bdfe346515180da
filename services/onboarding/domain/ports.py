"""What onboarding asks of the outside world: partner banks that open accounts, and a carrier that
delivers SMS. Adapters implement these; the service layer speaks only to them.

A partner bank's failures are ``shared.partner_ports.PartnerError`` (``transient`` ones may be retried)
and a callback it cannot trust is ``shared.partner_ports.InvalidCallback``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, Protocol

# The bank's answer to "is this the holder of this account?": ``unknown`` when it cannot tell
# (the account's bank does not take part in verification, or does not answer for it).
HolderMatch = Literal["match", "mismatch", "unknown"]
HOLDER_MATCHES: tuple[HolderMatch, ...] = ("match", "mismatch", "unknown")


@dataclasses.dataclass(frozen=True)
class AccountOpeningRequest:
    reference: str  # our bank-account id: the bank echoes it and deduplicates on it
    bank: str
    holder_name: str
    cin: str
    phone: str
    callback_url: str


@dataclasses.dataclass(frozen=True)
class AccountOpening:
    partner_reference: str
    reference: str
    status: str  # pending | opened | refused
    rib: str | None = None
    refusal_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class HolderVerificationRequest:
    rib: str
    holder_name: str
    cin: str

    def __repr__(self) -> str:
        # The RIB and CIN must not leak through a stray repr in a log line.
        return f"HolderVerificationRequest(rib={self.rib[:3]!r}…, holder_name=…, cin=…)"


@dataclasses.dataclass(frozen=True)
class BankCallback:
    event_id: str
    type: str
    opening: AccountOpening


class BankPartner(Protocol):
    """One partner bank, as far as account openings and account-holder verification go."""

    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening: ...

    def account_opening(self, partner_reference: str) -> AccountOpening: ...

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback: ...

    def verify_account_holder(self, request: HolderVerificationRequest) -> HolderMatch:
        """Whether the account behind ``request.rib`` is held by that name (and CIN), as the bank
        knows it. Raises ``PartnerError`` when the bank cannot be reached in time."""
        ...


class BankPartners(Protocol):
    """The partner banks by slug (the slug also names the bank's callback URL)."""

    def get(self, slug: str) -> BankPartner: ...

    def __contains__(self, slug: object) -> bool: ...


class SmsDeliveryError(RuntimeError):
    """The SMS could not be handed to the carrier."""


class SmsRejected(SmsDeliveryError):
    """The provider refused this message for good (a 4xx answer): sending it again will not help."""


class InvalidSmsReceipt(ValueError):
    """A delivery receipt that cannot be trusted or read (bad signature, malformed body)."""


@dataclasses.dataclass(frozen=True)
class SmsReceipt:
    """The provider's word on one message: ``delivered`` or ``failed`` (``other`` for the
    intermediate states some providers report, which change nothing here)."""

    receipt_id: str
    message_id: str
    status: Literal["delivered", "failed", "other"]
    error_code: str | None = None


class SmsSender(Protocol):
    def send(self, to: str, text: str) -> None: ...


class SmsGateway(SmsSender, Protocol):
    """An SMS provider that gives message ids and sends delivery receipts (notifications)."""

    def submit(self, to: str, text: str, *, reference: str) -> str:
        """Hand one message to the provider; return its message id. ``reference`` (our notification
        id) makes a retried submission the same message. Raises ``SmsDeliveryError`` (worth
        retrying later) or ``SmsRejected`` (not)."""
        ...

    def parse_receipt(self, headers: Mapping[str, str], raw_body: bytes) -> SmsReceipt:
        """A delivery receipt, its signature checked; ``InvalidSmsReceipt`` if it cannot be trusted."""
        ...


class PersonalDataUnavailable(RuntimeError):
    """A service holding part of an artisan's data could not be asked in time, or answered
    something else than their data: an export without that part would be incomplete."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service


class PersonalDataSource(Protocol):
    """Another Hirfa service, as far as an artisan's personal data goes (law 09-08)."""

    # The service's name: its part of the archive is filed under it.
    name: str

    def collect(self, artisan_id: str) -> Mapping[str, object]:
        """Everything the service holds about the artisan (JSON-ready). Raises
        ``PersonalDataUnavailable`` when the service cannot give it."""
        ...
