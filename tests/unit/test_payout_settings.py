"""How accounts' composition root wires payouts: from the configuration, or with the fakes a test
passes in; and never with a partner bank nobody can reach."""

from __future__ import annotations

import datetime as dt

import pytest

from services.accounts.adapters.banks import HttpBankPartner
from services.accounts.bootstrap import bootstrap
from services.accounts.config import AccountsConfig
from shared.config import SANDBOX_BANK_CALLBACK_SECRET, ConfigError
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank


def config(tmp_path, **overrides) -> AccountsConfig:
    return AccountsConfig(
        service_name="accounts", database_url="sqlite://", var_dir=str(tmp_path), **overrides
    )


def no_keys(kid: str) -> None:
    return None


def test_payouts_go_through_the_bank_partner_api_by_default(tmp_path):
    context = bootstrap(config(tmp_path, public_url="https://accounts.example/"), key_lookup=no_keys)
    settings = context.payouts
    assert isinstance(settings.partners.get("banque_populaire"), HttpBankPartner)
    assert (settings.partner_bank, settings.source_bank_code, settings.currency) == (
        "banque_populaire",
        "145",
        "MAD",
    )
    assert settings.callback_url == "https://accounts.example/v1/banks/banque_populaire/callbacks"
    assert settings.idempotency_key_ttl == dt.timedelta(hours=context.config.idempotency_key_ttl_hours)


def test_a_test_passes_its_bank_to_the_composition_root(tmp_path):
    bank = FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)
    context = bootstrap(
        config(tmp_path), key_lookup=no_keys, bank_partners=PartnerRegistry({"banque_populaire": bank})
    )
    assert context.payouts.partners.get("banque_populaire") is bank


def test_accounts_does_not_start_without_the_partner_bank_that_executes_payouts(tmp_path):
    partners = PartnerRegistry({"cih": FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)})
    with pytest.raises(ConfigError, match="banque_populaire"):
        bootstrap(config(tmp_path), key_lookup=no_keys, bank_partners=partners)
