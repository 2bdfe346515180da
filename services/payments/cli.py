"""``hirfa payments …``."""

from __future__ import annotations

from pathlib import Path

from services.payments.app import bootstrap
from services.payments.config import load_config
from services.payments.service_layer.projections import HANDLERS
from shared.runtime import service_cli

cli = service_cli(
    "payments",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    handlers=lambda: HANDLERS,
    subscribes_to=["onboarding.events"],
)
