"""What the payments service layer needs from configuration: the gateways and the rules around
them (``PaymentSettings``), and the marketplace webhooks' sender and rules (``WebhookSettings``).
The composition root (``services/payments/bootstrap.py``) builds both, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.payments.domain.gateway import GatewayRegistry, PaymentGateway
from services.payments.domain.webhooks import HostResolver, RetryPolicy, WebhookSender
from shared.crypto import EnvelopeCipher
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


SIGNATURE_HEADER = "Hirfa-Signature"
EVENT_ID_HEADER = "Hirfa-Event-Id"
DELIVERY_ID_HEADER = "Hirfa-Delivery-Id"
USER_AGENT = "Hirfa-Webhooks/1.0 (+https://docs.hirfa.ma/webhooks)"


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    cipher: EnvelopeCipher  # seals and opens the signing secrets
    sender: WebhookSender
    timeout_seconds: float  # of one attempt, from connecting to the status line
    concurrency: int  # healthy lane: endpoints served in parallel, one attempt in flight each
    retry: RetryPolicy
    require_https: bool  # production: endpoint URLs must be https
    # Whether loopback and private-network addresses may receive webhooks (development, tests, the
    # sandbox); metadata, link-local and other non-public addresses never may.
    allow_private_hosts: bool
    resolver: HostResolver  # checks where an endpoint's name points when it is registered
    # Troubled lane: the threads endpoints whose last attempt failed are served by, all they can
    # ever hold however many of them wait out a timeout per attempt.
    troubled_concurrency: int = 2
    # One endpoint's turn is at most this many attempts, and ends at a failure: then the endpoint
    # rests, and its other deliveries wait for a later turn instead of each waiting out a timeout.
    attempts_per_turn: int = 50
    rest_after_failure_seconds: float = 2.0
    # How often the dispatcher looks for due deliveries when no turn has ended meanwhile.
    dispatch_interval_seconds: float = 0.25
    endpoints_per_pass: int = 500  # per lane, in one pass of ``deliver_due_webhooks``
    user_agent: str = USER_AGENT
    # How long registering an endpoint waits for its name to resolve; a name that does not resolve
    # in time is judged again at every delivery.
    resolve_timeout_seconds: float = 2.0

    @property
    def lease(self) -> dt.timedelta:
        """How long a worker holds an endpoint or a delivery: one attempt and its bookkeeping. If the
        worker dies meanwhile, the lease runs out and another worker sends the attempt."""
        return dt.timedelta(seconds=2 * self.timeout_seconds + 30)
