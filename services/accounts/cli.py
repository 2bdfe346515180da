"""``hirfa accounts …``."""

from __future__ import annotations

from pathlib import Path

from services.accounts.app import bootstrap
from services.accounts.config import load_config
from services.accounts.service_layer.projections import make_handlers
from shared.runtime import service_cli


def _handlers():
    return make_handlers(load_config().ledger_currency)


cli = service_cli(
    "accounts",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    handlers=_handlers,
    subscribes_to=["onboarding.events"],
)
