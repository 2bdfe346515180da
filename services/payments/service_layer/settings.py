"""What the payments service layer needs from configuration: the gateways and the rules around them."""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.payments.domain.gateway import GatewayRegistry, PaymentGateway
from shared.errors import NotFound


@dataclasses.dataclass(frozen=True)
class PaymentSettings:
    gateways: GatewayRegistry
    default_gateway: str  # the gateway new payments go through
    currency: str
    min_amount: int
    max_amount: int
    public_url: str  # where the gateway and buyers' browsers reach this service
    recovery_after: dt.timedelta  # idle time after which a waiting payment is polled
    # After recovery failed a payment the gateway had no record of: when to look for it once more.
    stray_charge_check_after: dt.timedelta = dt.timedelta(hours=1)
    action_expiry: dt.timedelta = dt.timedelta(minutes=15)  # 3-D Secure not finished by then: abandoned
    authorisation_expiry: dt.timedelta = dt.timedelta(days=7)  # authorised, not captured by then: voided

    def gateway(self, name: str) -> PaymentGateway:
        if name not in self.gateways:
            raise NotFound(f"No gateway is called {name!r}.", code="unknown_gateway", param="gateway")
        return self.gateways.get(name)

    def callback_url(self, gateway: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/gateways/{gateway}/callbacks"

    def three_ds_return_url(self, payment_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/payments/{payment_id}/three-ds-return"
