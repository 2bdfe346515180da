"""The bank-partner glue every bank adapter shares (``shared.bank_partners``), through both adapters:
onboarding's account openings and accounts' transfers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.accounts.adapters.banks import HttpBankPartner as TransfersPartner
from services.onboarding.adapters.banks import HttpBankPartner as OpeningsPartner
from services.onboarding.domain.ports import AccountOpeningRequest
from shared.bank_partners import SIGNATURE_HEADER
from shared.partner_ports import InvalidCallback, PartnerError
from shared.signatures import sign

SECRET = "callback-secret"


class Answer:
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self._body = body

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


class Bank:
    """Stands in for ``requests.Session``: answers each call with the next scripted answer."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        self.calls.append({"method": method, "url": url, **kwargs})
        return self.answers.pop(0)


def openings(bank: Bank) -> OpeningsPartner:
    return OpeningsPartner(
        "http://bank.test/", api_key="key", callback_secret=SECRET, timeout=2.0, session=bank
    )


def transfers(bank: Bank, **options: Any) -> TransfersPartner:
    return TransfersPartner(
        "http://bank.test", api_key="key", callback_secret=SECRET, timeout=2.0, session=bank, **options
    )


OPENING = {"opening_id": "op_1", "reference": "ba_1", "status": "pending"}
TRANSFER = {"id": "tr_1", "reference": "po_1", "status": "pending", "amount": 1250, "currency": "MAD"}
REQUEST = AccountOpeningRequest(
    reference="ba_1",
    bank="cih_bank",
    holder_name="Fatima Zahra",
    cin="AB123456",
    phone="+212612345678",
    callback_url="http://hirfa.test/v1/banks/cih_bank/callbacks",
)


def signed(body: dict[str, Any], secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    return {SIGNATURE_HEADER: sign(secret, raw)}, raw


def test_a_call_carries_the_api_key_and_reads_the_answer():
    bank = Bank(Answer(201, OPENING))
    opening = openings(bank).request_account_opening(REQUEST)
    assert (opening.partner_reference, opening.reference, opening.status) == ("op_1", "ba_1", "pending")
    [call] = bank.calls
    assert (call["method"], call["url"]) == ("POST", "http://bank.test/v1/account-openings")
    assert call["headers"]["Authorization"] == "Bearer key"
    assert call["json"]["reference"] == "ba_1" and call["timeout"] == 2.0


@pytest.mark.parametrize("answer", [{"status": "pending"}, {"id": "tr_1", "reference": "po_1"}])
def test_an_answer_that_cannot_be_read_is_a_transient_error(answer):
    with pytest.raises(PartnerError) as failed:
        transfers(Bank(Answer(200, answer)), retries=0).transfer("tr_1")
    assert failed.value.transient
    assert "unreadable transfer" in str(failed.value)


def test_openings_are_not_retried_and_transfers_are_retried_once_by_default():
    down = Answer(503, {"code": "down"})
    with pytest.raises(PartnerError):
        openings(Bank(down)).account_opening("op_1")
    bank = Bank(down, Answer(200, TRANSFER))
    partner = transfers(bank, retry_backoff_seconds=0.0)
    assert partner.transfer("tr_1").amount == 1250
    assert len(bank.calls) == 2


def test_a_signed_callback_is_read_with_its_resource():
    headers, raw = signed({"id": "evt_1", "type": "transfer.paid", "data": {**TRANSFER, "status": "paid"}})
    callback = transfers(Bank()).parse_callback(headers, raw)
    assert (callback.event_id, callback.type, callback.transfer.status) == ("evt_1", "transfer.paid", "paid")


def test_a_callback_signed_with_another_secret_is_refused():
    headers, raw = signed({"id": "evt_1", "type": "opening.opened", "data": OPENING}, secret="not-ours")
    with pytest.raises(InvalidCallback):
        openings(Bank()).parse_callback(headers, raw)


def test_a_callback_without_a_signature_is_refused():
    with pytest.raises(InvalidCallback):
        openings(Bank()).parse_callback({}, json.dumps({"id": "evt_1"}).encode())


def test_a_genuine_callback_without_its_resource_is_malformed():
    headers, raw = signed({"id": "evt_1", "type": "opening.opened", "data": {"status": "opened"}})
    with pytest.raises(InvalidCallback) as refused:
        openings(Bank()).parse_callback(headers, raw)
    assert refused.value.reason == "malformed"
