"""Payments settings (``PAYMENTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses

from shared.config import ServiceConfig


@dataclasses.dataclass(frozen=True)
class PaymentsConfig(ServiceConfig):
    pass


def load_config(**overrides) -> PaymentsConfig:
    return PaymentsConfig.from_env("payments", **overrides)
