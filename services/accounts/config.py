"""Accounts settings (``ACCOUNTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import ClassVar

from services.accounts.domain.reconciliation import parse_fee_schedules
from shared.config import (
    BANK_PARTNER_SECRETS,
    DEMO_ACCOUNTS_CLIENT_ID,
    DEMO_ACCOUNTS_CLIENT_SECRET,
    BankPartnerClientConfig,
    ConfigError,
    Process,
    is_loopback_url,
    process_secrets,
    public_field,
    secret_field,
)

# Development defaults shared with the M2T sandbox (the acquirer's settlement files).
SANDBOX_M2T_URL = "http://127.0.0.1:8010"
SANDBOX_M2T_API_KEY = "sandbox-m2t-api-key"


@dataclasses.dataclass(frozen=True)
class AccountsConfig(BankPartnerClientConfig):
    ledger_currency: str = "MAD"
    # How long a payment's proceeds stay pending before they become available (seconds).
    pending_hold_seconds: int = 3 * 24 * 3600
    # How often ``hirfa accounts worker`` looks for holds to release and payouts to move (seconds).
    worker_interval_seconds: float = 10.0

    # Where the bank can reach us for callbacks (our public base URL).
    public_url: str = "http://127.0.0.1:8003"
    # The partner that executes transfers (callbacks arrive at /v1/banks/<slug>/callbacks), and the
    # code of the bank holding the client funds payouts leave from (the ledger's bank:<code>).
    payout_partner_bank: str = "banque_populaire"
    payout_bank_code: str = "145"
    # Payouts the bank has not settled after this long are polled (lost callbacks).
    payout_poll_after_seconds: int = 60
    # Adjustments and reversals moving more than this (minor units) wait for a second operator's
    # approval (four-eyes); up to it they post at once.
    adjustment_approval_above: int = 100_000

    # Reconciliation (service_layer/reconciliation.py). Where received files are kept (default
    # <var_dir>/reconciliation), the bank each gateway (``settlement_gateways``) settles into
    # ("m2t:145,…"; default the payout bank), the banks whose statements the worker fetches ("145,…"; default the payout bank), the acquirers' fee schedules (JSON, see
    # domain/reconciliation.py::parse_fee_schedules), the amount difference still called a match
    # (minor units), the largest file an operator may upload, and the first day the worker fetches
    # (YYYY-MM-DD; default: yesterday, the first time it runs).
    reconciliation_dir: str = ""
    settlement_bank_codes: str = ""
    statement_bank_codes: str = ""
    gateway_fee_schedules: str = ""
    reconciliation_tolerance: int = 0
    reconciliation_max_upload_bytes: int = 2 * 1024**3
    reconciliation_first_day: str = ""

    # Reconciliation sources: the gateways whose settlement files are fetched (comma-separated names;
    # "m2t" reads M2T's file at m2t_url with m2t_api_key), and the bank statements, fetched through the
    # bank-partner API (bank_partner_url).
    settlement_gateways: str = "m2t"
    m2t_url: str = SANDBOX_M2T_URL
    m2t_api_key: str = secret_field(SANDBOX_M2T_API_KEY)

    @property
    def settlement_gateway_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.settlement_gateways.split(",") if name.strip())

    # Completeness (service_layer/completeness.py): every ``completeness_check_seconds`` (0: never)
    # the worker asks payments (at ``payments_url``, with a token for the ``service_client_id``
    # client from ``service_token_url``) which succeeded payments the ledger has not confirmed,
    # and opens a case for each one it has not posted ``completeness_grace_seconds`` after it
    # succeeded. The development client is the demo one (make run creates it); production must
    # name its own.
    completeness_check_seconds: float = 60.0
    completeness_grace_seconds: int = 300
    payments_url: str = "http://127.0.0.1:8002"
    service_token_url: str = public_field("http://127.0.0.1:8001/v1/oauth/token")
    service_client_id: str = DEMO_ACCOUNTS_CLIENT_ID
    service_client_secret: str = secret_field(DEMO_ACCOUNTS_CLIENT_SECRET)

    # Signed income statements: accounts' own Ed25519 statement keys (k_<kid>.pem files, the
    # newest signs, all are published at /.well-known/jwks.json). Development keeps them under
    # $VAR_DIR/keys/statements; production refuses to start without this directory set.
    statement_keys_dir: str = public_field("")
    # Requests per minute one caller (by address) may make to the public statement endpoints
    # (verify, fetch by code), per replica.
    statement_public_rate_per_minute: int = 30
    # Behind a proxy that sets X-Forwarded-For (the ingress), the caller is its last hop.
    trust_forwarded_for: bool = False

    # Besides the bank's: the worker reads M2T's settlement files and, as accounts' own service
    # client, payments' API (the completeness check). The API and the consumer do neither. The
    # client id is no secret, but it goes with its secret (and is kept beside it).
    PROCESS_SECRETS: ClassVar[Mapping[Process, frozenset[str]]] = process_secrets(
        BANK_PARTNER_SECRETS,
        {Process.WORKER: {"m2t_api_key", "service_client_id", "service_client_secret"}},
    )

    @property
    def pending_hold(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.pending_hold_seconds)

    @property
    def payout_poll_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.payout_poll_after_seconds)

    @property
    def statement_keys_directory(self) -> str:
        return self.statement_keys_dir or f"{self.var_dir}/keys/statements"

    def validate(self) -> None:
        super().validate()
        if self.statement_public_rate_per_minute < 1:
            raise self.refuse("statement_public_rate_per_minute", "must be at least 1")
        if self.is_production and not self.statement_keys_dir:
            raise self.refuse(
                "statement_keys_dir",
                "must be set in production: the directory of the income-statement signing keys (a mounted secret)",
            )
        if not re.fullmatch(r"[0-9]{3}", self.payout_bank_code):
            raise ConfigError("PAYOUT_BANK_CODE: a three-digit bank code")
        if self.payout_poll_after_seconds < 0:
            raise ConfigError("PAYOUT_POLL_AFTER_SECONDS must not be negative")
        if self.adjustment_approval_above < 0:
            raise ConfigError("ADJUSTMENT_APPROVAL_ABOVE must not be negative")
        self._validate_completeness()
        self._validate_reconciliation()

    @property
    def completeness_grace(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.completeness_grace_seconds)

    def _validate_completeness(self) -> None:
        if self.completeness_check_seconds < 0:
            raise self.refuse("completeness_check_seconds", "must not be negative (0 turns the check off)")
        if self.completeness_grace_seconds < 0:
            raise self.refuse("completeness_grace_seconds", "must not be negative")
        if not self.is_production or not self.completeness_check_seconds:
            return
        if self.uses("service_client_id") and self.service_client_id == DEMO_ACCOUNTS_CLIENT_ID:
            raise self.refuse(
                "service_client_id",
                "must be set in production: the demo client is a development stand-in "
                "(create one with 'hirfa onboarding clients create --role service')",
            )
        if self.uses("service_client_secret") and self.service_client_secret == DEMO_ACCOUNTS_CLIENT_SECRET:
            raise self.refuse("service_client_secret", "must be set in production (it is the demo client's)")

    @property
    def settlement_banks(self) -> dict[str, str]:
        """The bank each gateway's settlements arrive at (gateways not named: the payout bank)."""
        pairs = (item.split(":", 1) for item in self.settlement_bank_codes.split(",") if item.strip())
        return {gateway.strip(): code.strip() for gateway, code in pairs}

    @property
    def statement_banks(self) -> tuple[str, ...]:
        codes = tuple(code.strip() for code in self.statement_bank_codes.split(",") if code.strip())
        return codes or (self.payout_bank_code,)

    def _validate_reconciliation(self) -> None:
        if any(":" not in item for item in self.settlement_bank_codes.split(",") if item.strip()):
            raise ConfigError("SETTLEMENT_BANK_CODES: gateway:bank code pairs, comma-separated")
        codes = [*self.settlement_banks.values(), *self.statement_banks]
        if not all(re.fullmatch(r"[0-9]{3}", code) for code in codes):
            raise ConfigError("SETTLEMENT_BANK_CODES / STATEMENT_BANK_CODES: three-digit bank codes")
        if self.reconciliation_tolerance < 0:
            raise ConfigError("RECONCILIATION_TOLERANCE must not be negative")
        if self.reconciliation_first_day:
            try:
                dt.date.fromisoformat(self.reconciliation_first_day)
            except ValueError:
                raise ConfigError("RECONCILIATION_FIRST_DAY: YYYY-MM-DD") from None
        try:
            parse_fee_schedules(self.gateway_fee_schedules)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_FEE_SCHEDULES: {exc}") from None
        unknown = [name for name in self.settlement_gateway_names if name != "m2t"]
        if unknown:
            raise ConfigError(f"SETTLEMENT_GATEWAYS: no settlement source for {', '.join(unknown)}")
        # The worker reads M2T's settlement files every day: in production, left at the sandbox's
        # defaults, it would fail each pass and no day would ever be reconciled.
        if self.is_production and "m2t" in self.settlement_gateway_names and self.uses("m2t_api_key"):
            if self.m2t_api_key == SANDBOX_M2T_API_KEY:
                raise self.refuse("m2t_api_key", "must be set in production (it is the M2T sandbox's)")
            if self.m2t_url == SANDBOX_M2T_URL or is_loopback_url(self.m2t_url):
                raise self.refuse(
                    "m2t_url", "points at the M2T sandbox on this machine: production needs M2T's API"
                )


def load_config(**overrides) -> AccountsConfig:
    return AccountsConfig.from_env("accounts", **overrides)
