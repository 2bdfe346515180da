"""Marketplaces' webhook endpoints: created with a signing secret shown once, listed, read, and
disabled (deleted), which cancels their pending deliveries.

An endpoint's URL must lead to a public address: one written as an address is judged as written,
a name by every address it resolves to (``webhook_url_not_public`` when any is loopback, private,
link-local, cloud metadata…; loopback and private networks are fine where the setting allows). A
name that does not resolve yet is accepted: every delivery resolves and checks it again.

Signing secrets are stored sealed (``shared.crypto`` envelope) and opened only to sign a request;
they are never logged, and of an endpoint's URL only the host is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import WebhookDelivery, WebhookEndpoint
from services.payments.domain.webhooks import (
    ALL_EVENT_TYPES,
    WEBHOOK_EVENT_TYPES,
    DeliveryStatus,
    EndpointStatus,
    EndpointUrlError,
    HostNotResolved,
    check_endpoint_url,
    first_refused_address,
    host_address,
    host_name_kind,
    new_signing_secret,
    normalise_event_types,
    not_public_error,
    unknown_event_types,
    url_host,
    url_host_and_port,
)
from services.payments.service_layer.ownership import require_marketplace, yours
from services.payments.service_layer.settings import WebhookSettings
from shared.auth import Principal
from shared.crypto import EnvelopeCipher, SealedBlob
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

# Enabled endpoints per marketplace: enough for staging, production and a few listeners.
MAX_ENDPOINTS = 16
ENDPOINT_PREFIX = "we"


@dataclasses.dataclass(frozen=True)
class CreateWebhookEndpoint:
    url: str
    event_types: list[str]
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class CreatedWebhookEndpoint:
    """A new endpoint and its signing secret: the one answer that ever shows the secret."""

    endpoint: WebhookEndpoint
    secret: str = dataclasses.field(repr=False)


def _secret_binding(endpoint_id: str, marketplace_id: str) -> bytes:
    """Binds a sealed secret to its row: copied onto another endpoint, it does not decrypt."""
    return f"webhook_endpoint|{endpoint_id}|{marketplace_id}".encode()


def create_webhook_endpoint(
    uow: UnitOfWork, command: CreateWebhookEndpoint, principal: Principal, settings: WebhookSettings
) -> CreatedWebhookEndpoint:
    """A new enabled endpoint with a new signing secret, returned in clear this once only."""
    require_marketplace(principal)
    try:
        check_endpoint_url(
            command.url,
            require_https=settings.require_https,
            allow_private_hosts=settings.allow_private_hosts,
        )
        check_resolved_addresses(command.url, settings)
    except EndpointUrlError as exc:
        raise ValidationFailed(str(exc), code=exc.code, param="url") from None
    unknown = unknown_event_types(command.event_types)
    if unknown:
        raise ValidationFailed(
            f"Unknown event type(s): {', '.join(unknown)}.",
            code="unknown_event_types",
            param="event_types",
            errors=[
                {"param": "event_types", "message": f"{kind!r} is not an event type."} for kind in unknown
            ],
            unknown_event_types=unknown,
            allowed_event_types=[*WEBHOOK_EVENT_TYPES, ALL_EVENT_TYPES],
        )
    marketplace_id = principal.client_id
    with uow:
        session = uow.session
        enabled = session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookEndpoint)
            .where(
                WebhookEndpoint.marketplace_id == marketplace_id,
                WebhookEndpoint.status == EndpointStatus.ENABLED,
            )
        )
        if enabled >= MAX_ENDPOINTS:
            raise Conflict(
                f"A marketplace may have {MAX_ENDPOINTS} enabled webhook endpoints; delete one first.",
                code="too_many_webhook_endpoints",
            )
        endpoint_id = new_id(ENDPOINT_PREFIX)
        secret = new_signing_secret()
        sealed = settings.cipher.encrypt(secret.encode(), _secret_binding(endpoint_id, marketplace_id))
        now = utcnow()
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            marketplace_id=marketplace_id,
            url=command.url,
            description=command.description,
            event_types=normalise_event_types(command.event_types),
            status=EndpointStatus.ENABLED,
            secret_key_id=sealed.key_id,
            secret_wrapped_key=sealed.wrapped_key,
            secret_nonce=sealed.nonce,
            secret_ciphertext=sealed.ciphertext,
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
        uow.commit()
    log.info(
        "webhook endpoint created",
        extra={"endpoint_id": endpoint.id, "marketplace_id": marketplace_id, "host": url_host(endpoint.url)},
    )
    return CreatedWebhookEndpoint(endpoint, secret)


def check_resolved_addresses(url: str, settings: WebhookSettings) -> None:
    """Refuse (``EndpointUrlError``) a name any of whose addresses a webhook must not go to."""
    host, port = url_host_and_port(url)
    if host_address(host) is not None or host_name_kind(host) is not None:
        return  # judged as written by check_endpoint_url
    try:
        addresses = settings.resolver.resolve(host, port, settings.resolve_timeout_seconds)
    except HostNotResolved as exc:
        log.info("webhook endpoint host not resolved", extra={"host": host, "reason": exc.reason})
        return
    refused = first_refused_address(addresses, allow_private_networks=settings.allow_private_hosts)
    if refused is not None:
        address, kind = refused
        log.info(
            "webhook endpoint refused: not a public address",
            extra={"host": host, "address": str(address), "address_kind": str(kind)},
        )
        raise not_public_error(kind)


def reveal_signing_secret(
    uow: UnitOfWork, endpoint_id: str, principal: Principal, settings: WebhookSettings
) -> str:
    """The endpoint's secret, for the replay of its creation answer only (an Idempotency-Key retry):
    saved answers hold no secret, so none is ever stored in clear."""
    require_marketplace(principal)
    with uow:
        endpoint = visible_endpoint(uow.session, endpoint_id, principal)
        return open_secret(endpoint, settings.cipher)


def open_secret(endpoint: WebhookEndpoint, cipher: EnvelopeCipher) -> str:
    sealed = SealedBlob(
        endpoint.secret_key_id, endpoint.secret_wrapped_key, endpoint.secret_nonce, endpoint.secret_ciphertext
    )
    return cipher.decrypt(sealed, _secret_binding(endpoint.id, endpoint.marketplace_id)).decode()


def visible_endpoint(
    session: Session, endpoint_id: str, principal: Principal, *, lock: bool = False
) -> WebhookEndpoint:
    return yours(
        session.get(WebhookEndpoint, endpoint_id, with_for_update=lock),
        principal,
        NotFound(f"No webhook endpoint {endpoint_id!r}.", param="endpoint_id"),
    )


def get_webhook_endpoint(uow: UnitOfWork, endpoint_id: str, principal: Principal) -> WebhookEndpoint:
    require_marketplace(principal)
    with uow:
        return visible_endpoint(uow.session, endpoint_id, principal)


def list_webhook_endpoints(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    status: str = EndpointStatus.ENABLED,
) -> Page:
    require_marketplace(principal)
    with uow:
        query = sa.select(WebhookEndpoint).where(
            WebhookEndpoint.marketplace_id == principal.client_id, WebhookEndpoint.status == status
        )
        return paginate(uow.session, query, WebhookEndpoint.id, limit=limit, starting_after=starting_after)


def disable_webhook_endpoint(uow: UnitOfWork, endpoint_id: str, principal: Principal) -> WebhookEndpoint:
    """Stop sending to the endpoint: its pending deliveries are canceled, its history stays. Idempotent."""
    require_marketplace(principal)
    with uow:
        session = uow.session
        endpoint = visible_endpoint(session, endpoint_id, principal, lock=True)
        if endpoint.status == EndpointStatus.ENABLED:
            now = utcnow()
            endpoint.status = EndpointStatus.DISABLED
            endpoint.disabled_at = endpoint.updated_at = now
            cancel_pending_deliveries(session, endpoint.id, now)
            uow.commit()
            log.info("webhook endpoint disabled", extra={"endpoint_id": endpoint.id})
        return endpoint


def cancel_pending_deliveries(session: Session, endpoint_id: str, now: dt.datetime) -> None:
    session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELED, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
