"""Hirfa's client-funds account at the partner bank, and its daily statements (MT940, camt.053).

The sandbox holds one account (``BANK_SANDBOX_CLIENT_FUNDS_BANK_CODE``, default ``145``; its IBAN
and holder name are settings too). It starts at 0 and books, each on its UTC day:

- each transfer (a Hirfa payout) once the bank pays it: a debit ``NTRF`` whose reference is the
  transfer's ``reference`` (Hirfa's payout id). Test data, by the destination account number
  (RIB digits 7 to 22): ending ``0004`` → paid, then returned the same day (a credit ``NRTI`` with
  the payout id as reference); ending ``0005`` → reported paid, but never debited on the statement;
- the acquirer's settlements: the bank reads the acquirer's settlement file of day D − lag
  (``BANK_SANDBOX_SETTLEMENT_LAG_DAYS``, default 1; ``make run`` uses 0) and books on day D one
  movement per batch, Σ net of the batch, with the batch reference (``M2T-20261206-CARD``); 3
  centimes short when the batch has a capture whose gross ends in ``75``; a negative batch is a
  debit. A day not over yet is read again on every statement request; a past day once;
- ``POST /v1/test-helpers/incoming-transfers`` {bank_code, amount, currency, reference, debtor_name,
  debtor_account}: a credit ``NTRF`` (a marketplace's reserve top-up uses ``RSV-<marketplace_id>``;
  any other reference is an unidentified credit);
- ``POST /v1/test-helpers/charges`` {bank_code, amount, description}: a bank fee, debit ``NCHG``.

Both helpers take amounts up to ``sandbox.common.bodies.MAX_AMOUNT`` and an optional
``Idempotency-Key`` (``sandbox.common.idempotency``: a retry replays the first answer with 200; the
key used again for another body or the other helper is a 409). A settlement file the bank cannot
read (the acquirer unreachable, a column missing, an amount that is no integer) is a 503
``acquirer_unavailable``.

``GET /v1/accounts/<bank_code>/statements/<YYYY-MM-DD>?format=mt940|camt053`` gives the day's
statement: opening = the previous day's closing, closing = opening + the day's entries.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import itertools
import threading
from collections.abc import Callable
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from sandbox.bank.config import SandboxBankConfig
from sandbox.common import bodies
from sandbox.common.errors import ApiError
from sandbox.common.idempotency import idempotent
from sandbox.m2t.settlement import SHORT_CREDIT, SHORT_CREDIT_ENDING, centimes
from shared.bank_statements import Balance, Statement, StatementEntry
from shared.bank_statements.camt053 import write_camt053
from shared.bank_statements.mt940 import write_mt940

EXTENSION_KEY = "bank_sandbox.client_funds"
RETURNED_ENDING = "0004"  # paid, then returned the same day
NEVER_DEBITED_ENDING = "0005"  # reported paid, never on the statement
ACQUIRER_NAME = "M2T ACQUIRING"
_EPOCH = dt.date(2000, 1, 1)  # statement numbers count days from here

blueprint = Blueprint("client_funds", __name__)

# The acquirer's settlement file for a day, as CSV text (tests pass their own).
SettlementFetcher = Callable[[str], str]


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def http_settlement_fetcher(config: SandboxBankConfig) -> SettlementFetcher | None:
    """Fetch ``GET <acquirer>/v1/settlements/<day>.csv`` with the API key and a timeout."""
    if not config.acquirer_url:
        return None
    base = config.acquirer_url.rstrip("/")

    def fetch(day: str) -> str:
        response = requests.get(
            f"{base}/v1/settlements/{day}.csv",
            headers={"Authorization": f"Bearer {config.acquirer_api_key}"},
            timeout=config.acquirer_timeout_seconds,
        )
        response.raise_for_status()
        return response.text

    return fetch


@dataclasses.dataclass(frozen=True)
class Booking:
    day: dt.date
    sequence: int
    entry: StatementEntry


class ClientFunds:
    """The account's booked entries, in memory, under one lock."""

    def __init__(self, config: SandboxBankConfig, fetch_settlement: SettlementFetcher | None) -> None:
        self._config = config
        self._fetch_settlement = fetch_settlement
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._bookings: list[Booking] = []
        # Settlement credits by the settlement file's day; a past day's are final once read.
        self._settlements: dict[dt.date, list[Booking]] = {}
        self._final_settlement_days: set[dt.date] = set()
        self._started = utc_today()

    @property
    def bank_code(self) -> str:
        return self._config.client_funds_bank_code

    def book(self, day: dt.date, entry: StatementEntry) -> None:
        with self._lock:
            self._bookings.append(Booking(day, next(self._sequence), entry))

    def transfer_paid(
        self, transfer_id: str, reference: str, account_number: str, amount: int, holder: str
    ) -> None:
        """A payout the bank paid: debited, and for the test data returned or left off the statement."""
        if account_number.endswith(NEVER_DEBITED_ENDING):
            return
        today = utc_today()
        self.book(
            today,
            StatementEntry(today, today, -amount, "NTRF", reference, transfer_id, "Payout", holder),
        )
        if account_number.endswith(RETURNED_ENDING):
            self.book(
                today,
                StatementEntry(
                    today,
                    today,
                    amount,
                    "NRTI",
                    reference,
                    transfer_id + "R",
                    "Returned: account closed",
                    holder,
                ),
            )

    # -- settlement credits ----------------------------------------------------------------------

    def _settle_through(self, last: dt.date) -> None:
        """Book the settlement credits of every statement day from the sandbox's start to ``last``."""
        if self._fetch_settlement is None:
            return
        lag = dt.timedelta(days=self._config.settlement_lag_days)
        today = utc_today()
        day = self._started
        while day <= last:
            file_day = day - lag
            if file_day not in self._final_settlement_days:
                credits = self._batch_credits(file_day, day)
                with self._lock:
                    self._settlements[file_day] = credits
                    if file_day < today:
                        self._final_settlement_days.add(file_day)
            day += dt.timedelta(days=1)

    def _batch_credits(self, file_day: dt.date, booking_day: dt.date) -> list[Booking]:
        assert self._fetch_settlement is not None
        try:
            text = self._fetch_settlement(file_day.isoformat())
        except requests.RequestException as error:
            raise ApiError(
                503, "acquirer_unavailable", "The acquirer's settlement file could not be read."
            ) from error
        try:
            batches = _batches(text)
        except (KeyError, ValueError, TypeError, csv.Error) as error:
            # A column missing, a row cut short, an amount that is no integer: not a file to book.
            raise ApiError(
                503, "acquirer_unavailable", "The acquirer's settlement file could not be read."
            ) from error
        credits = []
        for reference, (amount, short) in sorted(batches.items()):
            if short:
                amount -= SHORT_CREDIT
            entry = StatementEntry(
                booking_day,
                booking_day,
                amount,
                "NTRF",
                reference,
                f"STL{file_day:%Y%m%d}{len(credits) + 1:02d}",
                f"Settlement {reference}",
                ACQUIRER_NAME,
            )
            credits.append(Booking(booking_day, 0, entry))
        return credits

    # -- statements ------------------------------------------------------------------------------

    def statement(self, day: dt.date) -> Statement:
        self._settle_through(day)
        with self._lock:
            settled = [booking for credits in self._settlements.values() for booking in credits]
            bookings = sorted(
                [*settled, *self._bookings],
                key=lambda booking: (booking.day, booking.sequence),
            )
        opening = sum(booking.entry.amount for booking in bookings if booking.day < day)
        entries = tuple(booking.entry for booking in bookings if booking.day == day)
        compact = f"{day:%Y%m%d}"
        return Statement(
            statement_id=f"{self.bank_code}-{compact}",
            sequence_number=(day - _EPOCH).days,
            account=self._config.client_funds_iban,
            bank_code=self.bank_code,
            currency="MAD",
            opening=Balance(day - dt.timedelta(days=1), opening),
            closing=Balance(day, opening + sum(entry.amount for entry in entries)),
            entries=entries,
            holder_name=self._config.client_funds_holder,
            created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        )


def _batches(text: str) -> dict[str, tuple[int, bool]]:
    """Each batch of a settlement file: Σ net, and whether a capture's gross ends in SHORT_CREDIT_ENDING."""
    batches: dict[str, tuple[int, bool]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        net, short = batches.get(row["batch_reference"], (0, False))
        short = short or (
            row["type"] == "capture" and centimes(int(row["gross_amount"])) == SHORT_CREDIT_ENDING
        )
        batches[row["batch_reference"]] = (net + int(row["net_amount"]), short)
    return batches


# -- API -----------------------------------------------------------------------------------------


def _client_funds() -> ClientFunds:
    return current_app.extensions[EXTENSION_KEY]


def _account(bank_code: object) -> ClientFunds:
    funds = _client_funds()
    if bank_code != funds.bank_code:
        raise ApiError(404, "not_found", "The bank holds no client-funds account with this bank code.")
    return funds


def _text(payload: dict[str, Any], name: str, *, required: bool = True, limit: int = 140) -> str:
    return bodies.text(payload, name, required=required, limit=limit) or ""


def _helper_post(book: Callable[[ClientFunds, dict[str, Any]], dict[str, Any]]) -> tuple[Response, int]:
    payload = bodies.json_object(request.get_json(silent=True))
    return jsonify(book(_account(payload.get("bank_code")), payload)), 201


# A retried helper with the same Idempotency-Key books nothing twice (its replay answers 200).
@blueprint.post("/v1/test-helpers/incoming-transfers")
@idempotent(key_required=False, replay_status=200)
def incoming_transfer():
    def book(funds: ClientFunds, payload: dict[str, Any]) -> dict[str, Any]:
        amount = bodies.amount(payload) or 0
        currency = _text(payload, "currency", required=False) or "MAD"
        if currency != "MAD":
            raise ApiError(422, "unsupported_currency", "currency must be MAD.", param="currency")
        reference = _text(payload, "reference", limit=35)
        name = _text(payload, "debtor_name", required=False)
        account = _text(payload, "debtor_account", required=False, limit=34)
        today = utc_today()
        entry = StatementEntry(
            today, today, amount, "NTRF", reference, "", "Incoming transfer", name, account
        )
        funds.book(today, entry)
        return {
            "bank_code": funds.bank_code,
            "date": today.isoformat(),
            "amount": amount,
            "reference": reference,
        }

    return _helper_post(book)


@blueprint.post("/v1/test-helpers/charges")
@idempotent(key_required=False, replay_status=200)
def charge():
    def book(funds: ClientFunds, payload: dict[str, Any]) -> dict[str, Any]:
        amount = bodies.amount(payload) or 0
        description = _text(payload, "description", required=False) or "Bank charges"
        today = utc_today()
        funds.book(today, StatementEntry(today, today, -amount, "NCHG", "NONREF", "", description))
        return {"bank_code": funds.bank_code, "date": today.isoformat(), "amount": -amount}

    return _helper_post(book)


@blueprint.get("/v1/accounts/<bank_code>/statements/<day>")
def statement(bank_code: str, day: str):
    funds = _account(bank_code)
    try:
        parsed = dt.date.fromisoformat(day)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ApiError(422, "invalid_field", "The date must be YYYY-MM-DD.", param="date")
    if parsed > utc_today():
        raise ApiError(422, "invalid_field", "There is no statement for a day to come.", param="date")
    kind = request.args.get("format", "mt940")
    if kind not in ("mt940", "camt053"):
        raise ApiError(422, "invalid_field", "format must be mt940 or camt053.", param="format")
    one = funds.statement(parsed)
    name = f"{bank_code}-{day}"
    if kind == "mt940":
        return Response(
            write_mt940(one),
            mimetype="text/plain",
            headers={"Content-Disposition": f'attachment; filename="{name}.sta"'},
        )
    return Response(
        write_camt053(one),
        mimetype="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}.xml"'},
    )


def register(
    app: Flask, config: SandboxBankConfig, fetch_settlement: SettlementFetcher | None
) -> ClientFunds:
    funds = ClientFunds(config, fetch_settlement)
    app.extensions[EXTENSION_KEY] = funds
    app.register_blueprint(blueprint)
    return funds
