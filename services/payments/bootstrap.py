"""Payments' composition root: every adapter is built here, once, from the configuration.

Web app, worker and commands all start from ``bootstrap(config)``. Tests pass fakes as keyword
arguments (``gateways=…`` with ``default_gateway=…``, ``webhook_sender=…``, or whole
``webhooks=…`` settings) instead of replacing anything afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from services.payments.adapters.gateways import build_gateway_registry, m2t_gateway_from_config
from services.payments.adapters.orm import BrokerTopic, IdempotencyKey, InboxMessage, OutboxMessage
from services.payments.adapters.webhook_sender import HttpWebhookSender, SystemResolver
from services.payments.config import PaymentsConfig, load_config
from services.payments.context import PaymentsContext
from services.payments.domain.gateway import GatewayRegistry, PaymentGateway
from services.payments.domain.webhooks import RetryPolicy, WebhookSender
from services.payments.service_layer.settings import PaymentSettings, WebhookSettings
from shared.auth.tokens import KeyLookup
from shared.config import ConfigError
from shared.context import Models, build_verifying_context
from shared.crypto import EnvelopeCipher, MasterKeyRing

MODELS = Models(
    outbox=OutboxMessage, inbox=InboxMessage, idempotency_key=IdempotencyKey, broker_topic=BrokerTopic
)

# The gateway adapters a deployment can use, by name, each built from the configuration.
GATEWAY_ADAPTERS: Mapping[str, Callable[[PaymentsConfig], PaymentGateway]] = {
    "m2t": m2t_gateway_from_config,
}


def bootstrap(
    config: PaymentsConfig | None = None,
    key_lookup: KeyLookup | None = None,
    *,
    gateways: GatewayRegistry | None = None,
    default_gateway: str | None = None,
    webhook_sender: WebhookSender | None = None,
    webhooks: WebhookSettings | None = None,
) -> PaymentsContext:
    """The payments context, wired from ``config``; each keyword argument replaces what the
    configuration would build. Refuses (``ConfigError``) a default gateway no adapter is called."""
    config = config or load_config()
    gateways = gateways if gateways is not None else make_gateways(config)
    default_gateway = default_gateway or config.default_gateway
    check_default_gateway(default_gateway, gateways)
    return build_verifying_context(
        config,
        MODELS,
        key_lookup,
        context_type=PaymentsContext,
        payments=make_payment_settings(config, gateways, default_gateway),
        webhooks=webhooks or make_webhook_settings(config, sender=webhook_sender),
    )


def make_gateways(config: PaymentsConfig) -> GatewayRegistry:
    return build_gateway_registry(*(build(config) for build in GATEWAY_ADAPTERS.values()))


def check_default_gateway(name: str, gateways: GatewayRegistry) -> None:
    """New payments go through the default gateway: one that is not registered is a start-up error,
    not a 404 on the first payment."""
    if name not in gateways:
        known = ", ".join(gateways.slugs()) or "none"
        raise ConfigError(f"DEFAULT_GATEWAY {name!r} is not a known gateway (known: {known})")


def make_payment_settings(
    config: PaymentsConfig, gateways: GatewayRegistry, default_gateway: str
) -> PaymentSettings:
    return PaymentSettings(
        gateways=gateways,
        default_gateway=default_gateway,
        currency=config.currency,
        min_amount=config.min_payment_amount,
        max_amount=config.max_payment_amount,
        public_url=config.public_url,
        recovery_after=config.recovery_after,
        stray_charge_check_after=config.stray_charge_check_after,
        action_expiry=config.action_expiry,
        authorisation_expiry=config.authorisation_expiry,
    )


def webhook_keyring(config: PaymentsConfig) -> MasterKeyRing:
    """Production: ``WEBHOOK_MASTER_KEYS`` ("kid:base64key,…", the last active). Development: key
    files under var/, a first key made on first use."""
    if config.webhook_master_keys:
        return MasterKeyRing.from_spec(config.webhook_master_keys)
    keyring = MasterKeyRing(config.webhook_keys_directory)
    keyring.ensure_key()
    return keyring


def _webhook_cipher(config: PaymentsConfig) -> EnvelopeCipher:
    if config.is_production and not config.webhook_master_keys:
        # Only a process that never seals nor signs with a webhook secret starts without the keys.
        return config.withheld("webhook_master_keys")
    return EnvelopeCipher(webhook_keyring(config))


def make_webhook_settings(config: PaymentsConfig, *, sender: WebhookSender | None = None) -> WebhookSettings:
    # Production refuses webhook_allow_private_networks (PaymentsConfig.validate); development allows it.
    allow_private = config.webhook_allow_private_networks and not config.is_production
    resolver = SystemResolver()
    return WebhookSettings(
        cipher=_webhook_cipher(config),
        sender=sender or HttpWebhookSender(allow_private_networks=allow_private, resolver=resolver),
        timeout_seconds=config.webhook_timeout_seconds,
        concurrency=max(1, config.webhook_concurrency),
        troubled_concurrency=max(1, config.webhook_troubled_concurrency),
        retry=RetryPolicy(max_age=dt.timedelta(hours=config.webhook_max_age_hours)),
        require_https=config.is_production,
        allow_private_hosts=allow_private,
        resolver=resolver,
    )
