"""Payments' gateway adapters, wired from the configuration once per service context.

The settings live in ``context.extras`` and are built on first use, by a request or by the worker;
a test installs other gateways (the in-memory fake) with ``use_gateways`` before that.
"""

from __future__ import annotations

from services.payments.adapters.gateways import m2t_gateway_from_config
from services.payments.config import PaymentsConfig
from services.payments.domain.gateway import GatewayRegistry
from services.payments.service_layer.settings import PaymentSettings
from shared.context import ServiceContext

PAYMENTS_EXTRA = "payments.settings"


def make_gateways(config: PaymentsConfig) -> GatewayRegistry:
    m2t = m2t_gateway_from_config(config)
    return GatewayRegistry({m2t.name: m2t})


def make_payment_settings(
    config: PaymentsConfig, gateways: GatewayRegistry | None = None, default_gateway: str | None = None
) -> PaymentSettings:
    return PaymentSettings(
        gateways=gateways if gateways is not None else make_gateways(config),
        default_gateway=default_gateway or config.default_gateway,
        currency=config.currency,
        min_amount=config.min_payment_amount,
        max_amount=config.max_payment_amount,
        public_url=config.public_url,
        recovery_after=config.recovery_after,
        stray_charge_check_after=config.stray_charge_check_after,
        action_expiry=config.action_expiry,
        authorisation_expiry=config.authorisation_expiry,
    )


def payment_settings(context: ServiceContext) -> PaymentSettings:
    settings = context.extras.get(PAYMENTS_EXTRA)
    if settings is None:
        # setdefault: two first requests racing end up sharing one set of adapters.
        settings = context.extras.setdefault(PAYMENTS_EXTRA, make_payment_settings(context.config))
    return settings


def use_gateways(context: ServiceContext, gateways: GatewayRegistry, default_gateway: str) -> PaymentSettings:
    """Replace the gateway adapters (tests: the in-memory fake gateway)."""
    settings = make_payment_settings(context.config, gateways, default_gateway)
    context.extras[PAYMENTS_EXTRA] = settings
    return settings
