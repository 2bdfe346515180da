"""Creating API clients and exchanging their credentials for access tokens."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from services.onboarding.adapters.orm import ApiClient
from services.onboarding.domain.api_clients import (
    grantable_scopes,
    hash_secret,
    new_client_secret,
    verify_secret,
)
from shared.auth.scopes import Role
from shared.auth.tokens import TokenIssuer
from shared.db import UnitOfWork
from shared.errors import HirfaError, InvalidClient
from shared.ids import new_id

SERVICE_AUDIENCES = ["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"]


class InvalidScope(HirfaError):
    code = "invalid_scope"
    status = 400
    title = "The requested scope is not allowed for this client"


@dataclasses.dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    role: Role
    name: str


def create_client(
    uow: UnitOfWork,
    *,
    name: str,
    role: Role,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> NewClient:
    """Create a client. ``client_id``/``client_secret`` are only given for documented demo clients."""
    client_id = client_id or new_id("cli")
    client_secret = client_secret or new_client_secret()
    with uow:
        uow.session.add(
            ApiClient(id=client_id, name=name, role=str(role), secret_hash=hash_secret(client_secret))
        )
        uow.commit()
    return NewClient(client_id, client_secret, role, name)


def ensure_client(uow: UnitOfWork, *, client_id: str, client_secret: str, name: str, role: Role) -> bool:
    """Create the client unless it exists already (idempotent seeding). True when created."""
    with uow:
        if uow.session.get(ApiClient, client_id) is not None:
            return False
    create_client(uow, name=name, role=role, client_id=client_id, client_secret=client_secret)
    return True


def issue_token(
    uow: UnitOfWork,
    issuer: TokenIssuer,
    *,
    client_id: str,
    client_secret: str,
    scope: str | None,
    audience: str | None,
) -> dict:
    with uow:
        client = uow.session.scalar(
            sa.select(ApiClient).where(ApiClient.id == client_id, ApiClient.disabled_at.is_(None))
        )
        # Same answer for an unknown client and a wrong secret: no client enumeration.
        if client is None or not verify_secret(client_secret, client.secret_hash):
            raise InvalidClient("Unknown client or wrong secret.", error="invalid_client")
        role = Role(client.role)
    scopes = grantable_scopes(role, scope)
    if scopes is None:
        raise InvalidScope(param="scope", error="invalid_scope")
    if audience is not None and audience not in SERVICE_AUDIENCES:
        raise InvalidScope(
            "Unknown audience.", code="invalid_audience", param="audience", error="invalid_request"
        )
    token, expires_in = issuer.issue(
        client_id=client_id,
        role=role,
        scopes=scopes,
        audiences=[audience] if audience else SERVICE_AUDIENCES,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(scopes)),
    }
