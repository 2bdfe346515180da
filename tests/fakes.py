"""In-memory stand-ins for external partners, for tests that must control what the partner does."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Mapping

from services.accounts.adapters.banks import HttpBankPartner as TransfersBankPartner
from services.accounts.domain.ports import Transfer, TransferCallback, TransferRequest
from services.onboarding.adapters.banks import HttpBankPartner
from services.onboarding.domain.ports import (
    AccountOpening,
    AccountOpeningRequest,
    BankCallback,
    HolderMatch,
    HolderVerificationRequest,
)
from shared.banking import PARTNER_BANK_CODES, make_rib
from shared.partner_ports import PartnerError


class FakeBankPartner:
    """A partner bank (the ``BankPartner`` protocol) that keeps its openings in memory.

    It accepts every opening as ``pending`` and decides only when a test calls ``decide``; it never
    calls back by itself, so a test either posts a signed callback or lets polling find the answer.
    Set ``down`` to make every call fail the way an unreachable bank does. ``requests`` and ``polls``
    record what onboarding sent. Callbacks are checked by the real adapter, HMAC and all.

    Account-holder verification answers ``match`` unless ``holders[rib]`` says otherwise
    (``mismatch`` or ``unknown``); ``verifications`` records the questions asked.
    """

    def __init__(self, callback_secret: str, *, tolerance_seconds: int = 300) -> None:
        self.down = False
        self.holders: dict[str, HolderMatch] = {}
        self.verifications: list[HolderVerificationRequest] = []
        self.requests: list[AccountOpeningRequest] = []
        self.polls: list[str] = []
        self._openings: dict[str, AccountOpening] = {}  # by partner reference
        self._account_numbers = itertools.count(1)
        # Only parse_callback is used: no HTTP call is ever made to this URL.
        self._callback_reader = HttpBankPartner(
            "http://fake-bank.invalid",
            api_key="unused",
            callback_secret=callback_secret,
            timeout=1.0,
            tolerance_seconds=tolerance_seconds,
        )

    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening:
        self._fail_when_down()
        self.requests.append(request)
        for opening in self._openings.values():
            if opening.reference == request.reference:  # banks deduplicate on our reference
                return opening
        opening = AccountOpening(
            partner_reference=f"aop_fake_{len(self._openings) + 1}",
            reference=request.reference,
            status="pending",
        )
        self._openings[opening.partner_reference] = opening
        return opening

    def account_opening(self, partner_reference: str) -> AccountOpening:
        self._fail_when_down()
        self.polls.append(partner_reference)
        if partner_reference not in self._openings:
            raise PartnerError("bank partner refused the request (404)", transient=False)
        return self._openings[partner_reference]

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback:
        return self._callback_reader.parse_callback(headers, raw_body)

    def verify_account_holder(self, request: HolderVerificationRequest) -> HolderMatch:
        self._fail_when_down()
        self.verifications.append(request)
        return self.holders.get(request.rib, "match")

    def opening_for(self, reference: str) -> AccountOpening:
        (opening,) = (opening for opening in self._openings.values() if opening.reference == reference)
        return opening

    def decide(self, reference: str, *, refusal_reason: str | None = None) -> AccountOpening:
        """Open (with a fresh valid RIB) or refuse the opening for ``reference``, without calling back."""
        opening = self.opening_for(reference)
        if refusal_reason is not None:
            decided = dataclasses.replace(opening, status="refused", refusal_reason=refusal_reason)
        else:
            bank = next(request.bank for request in self.requests if request.reference == reference)
            rib = make_rib(PARTNER_BANK_CODES[bank], "780", f"{next(self._account_numbers):016d}")
            decided = dataclasses.replace(opening, status="opened", rib=rib)
        self._openings[opening.partner_reference] = decided
        return decided

    def _fail_when_down(self) -> None:
        if self.down:
            raise PartnerError("bank partner unreachable: ConnectionError", transient=True)


class FakeTransferBank:
    """A partner bank executing payouts (accounts' ``BankPartner`` protocol), in memory.

    It accepts every transfer as ``pending`` and settles it only when a test calls ``settle``; it
    never calls back by itself, so a test either posts a signed callback or lets polling find the
    answer. Set ``down`` to make every call fail the way an unreachable bank does, ``lose_replies``
    to take transfers but time out before answering. ``requests`` and ``polls`` record what accounts
    sent. Thread-safe: concurrent payouts submit from many threads.
    """

    def __init__(self, callback_secret: str, *, tolerance_seconds: int = 300) -> None:
        self.down = False
        self.lose_replies = False
        self.requests: list[TransferRequest] = []
        self.polls: list[str] = []
        self._transfers: dict[str, Transfer] = {}  # by partner reference
        self._lock = threading.Lock()
        # Only parse_callback is used: no HTTP call is ever made to this URL.
        self._callback_reader = TransfersBankPartner(
            "http://fake-bank.invalid",
            api_key="unused",
            callback_secret=callback_secret,
            timeout=1.0,
            tolerance_seconds=tolerance_seconds,
        )

    def request_transfer(self, request: TransferRequest) -> Transfer:
        self._fail_when_down()
        with self._lock:
            self.requests.append(request)
            for transfer in self._transfers.values():
                if transfer.reference == request.reference:  # banks deduplicate on our reference
                    return transfer
            transfer = Transfer(
                partner_reference=f"trf_fake_{len(self._transfers) + 1}",
                reference=request.reference,
                status="pending",
                amount=request.amount,
                currency=request.currency,
            )
            self._transfers[transfer.partner_reference] = transfer
        if self.lose_replies:
            raise PartnerError("bank partner unreachable: ReadTimeout", transient=True)
        return transfer

    def transfer(self, partner_reference: str) -> Transfer:
        self._fail_when_down()
        with self._lock:
            self.polls.append(partner_reference)
            if partner_reference not in self._transfers:
                message = "bank partner refused the request (404)"
                raise PartnerError(message, transient=False)
            return self._transfers[partner_reference]

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback:
        return self._callback_reader.parse_callback(headers, raw_body)

    def transfer_for(self, reference: str) -> Transfer:
        with self._lock:
            (transfer,) = (known for known in self._transfers.values() if known.reference == reference)
            return transfer

    def settle(self, reference: str, *, failure_code: str | None = None) -> Transfer:
        """Pay the transfer for ``reference``, or fail it with ``failure_code``, without calling back."""
        transfer = self.transfer_for(reference)
        status = "paid" if failure_code is None else "failed"
        settled = dataclasses.replace(transfer, status=status, failure_code=failure_code)
        with self._lock:
            self._transfers[transfer.partner_reference] = settled
        return settled

    def _fail_when_down(self) -> None:
        if self.down:
            raise PartnerError("bank partner unreachable: ConnectionError", transient=True)
