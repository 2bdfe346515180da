"""What the payments composition root (``bootstrap``) builds once: the shared parts every service
has, and payments' own settings with the adapters they hold (gateways, webhook sender)."""

from __future__ import annotations

import dataclasses

from services.payments.service_layer.settings import PaymentSettings, WebhookSettings
from shared.context import ServiceContext


@dataclasses.dataclass(kw_only=True)
class PaymentsContext(ServiceContext):
    payments: PaymentSettings  # the gateways by name, the default one, and the rules around them
    webhooks: WebhookSettings  # the marketplace webhooks' cipher, sender and delivery rules
