"""Payment gateway adapters: M2T over HTTP (``m2t``) and an in-memory M2T (``fake``), both
implementing the domain's port (``services.payments.domain.gateway``), and the registry the
payments service looks adapters up in by name.

The composition root builds the registry::

    registry = build_gateway_registry(
        M2TGateway(config.m2t_url, api_key=config.m2t_api_key, callback_secret=config.m2t_callback_secret,
                   timeout=config.gateway_timeout_seconds, retries=config.gateway_retries,
                   retry_backoff_seconds=config.gateway_retry_backoff_seconds,
                   retry_max_backoff_seconds=config.gateway_retry_max_backoff_seconds,
                   tolerance_seconds=config.m2t_callback_tolerance_seconds,
                   allow_tokenise=config.gateway_allow_tokenise),
    )

(``m2t_gateway_from_config`` does exactly that), and tests pass a ``FakeGateway`` instead or beside.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.gateways.m2t import M2TGateway
from services.payments.domain.gateway import GatewayRegistry, PaymentGateway

__all__ = ["FakeGateway", "M2TGateway", "build_gateway_registry", "m2t_gateway_from_config"]


def build_gateway_registry(*gateways: PaymentGateway | Iterable[PaymentGateway]) -> GatewayRegistry:
    """A registry of ``gateways`` by their ``name`` (two adapters may not share one)."""
    adapters: dict[str, PaymentGateway] = {}
    for item in gateways:
        for gateway in item if isinstance(item, list | tuple) else [item]:
            if not isinstance(gateway, PaymentGateway):
                raise TypeError(f"{gateway!r} does not implement PaymentGateway")
            if gateway.name in adapters:
                raise ValueError(f"two gateways are named {gateway.name!r}")
            adapters[gateway.name] = gateway
    return GatewayRegistry(adapters)


def m2t_gateway_from_config(config: Any, **overrides: Any) -> M2TGateway:
    """The M2T adapter from ``PaymentsConfig``'s ``m2t_*`` and ``gateway_*`` settings."""
    settings: dict[str, Any] = dict(
        api_key=config.m2t_api_key,
        callback_secret=config.m2t_callback_secret,
        timeout=config.gateway_timeout_seconds,
        retries=config.gateway_retries,
        retry_backoff_seconds=config.gateway_retry_backoff_seconds,
        retry_max_backoff_seconds=config.gateway_retry_max_backoff_seconds,
        tolerance_seconds=config.m2t_callback_tolerance_seconds,
        allow_tokenise=config.gateway_allow_tokenise,
    )
    settings.update(overrides)
    return M2TGateway(config.m2t_url, **settings)
