"""Creating API clients and exchanging their credentials for access tokens."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from services.onboarding.adapters.orm import ApiClient
from services.onboarding.domain.api_clients import (
    bank_binding_problem,
    grantable_scopes,
    hash_secret,
    new_client_secret,
    verify_secret,
)
from shared.auth.scopes import Role
from shared.auth.tokens import TokenIssuer
from shared.db import UnitOfWork
from shared.errors import HirfaError, InvalidClient, NotFound, ValidationFailed
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
    bank_code: str | None = None


def _check_bank_binding(role: Role, bank_code: str | None) -> None:
    problem = bank_binding_problem(role, bank_code)
    if problem is not None:
        raise ValidationFailed(problem[0].upper() + problem[1:] + ".", param="bank_code")


def create_client(
    uow: UnitOfWork,
    *,
    name: str,
    role: Role,
    bank_code: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> NewClient:
    """Create a client. A bank partner needs its ``bank_code``; ``client_id``/``client_secret`` are
    only given for documented demo clients."""
    _check_bank_binding(role, bank_code)
    client_id = client_id or new_id("cli")
    client_secret = client_secret or new_client_secret()
    with uow:
        uow.session.add(
            ApiClient(
                id=client_id,
                name=name,
                role=str(role),
                bank_code=bank_code,
                secret_hash=hash_secret(client_secret),
            )
        )
        uow.commit()
    return NewClient(client_id, client_secret, role, name, bank_code)


def ensure_client(
    uow: UnitOfWork,
    *,
    client_id: str,
    client_secret: str,
    name: str,
    role: Role,
    bank_code: str | None = None,
) -> bool:
    """Create the client unless it exists already (idempotent seeding). True when created.

    A bank partner seeded before clients were bound to banks is bound to ``bank_code`` now."""
    _check_bank_binding(role, bank_code)
    with uow:
        existing = uow.session.get(ApiClient, client_id)
        if existing is not None:
            if existing.role == str(role) and existing.bank_code is None and bank_code is not None:
                existing.bank_code = bank_code
                uow.commit()
            return False
    create_client(
        uow, name=name, role=role, bank_code=bank_code, client_id=client_id, client_secret=client_secret
    )
    return True


def bind_to_bank(uow: UnitOfWork, client_id: str, bank_code: str) -> None:
    """Bind an existing bank partner client to its bank (or move it to another); its next tokens
    carry the code. Tokens already issued keep the old one until they expire (minutes)."""
    with uow:
        client = uow.session.get(ApiClient, client_id)
        if client is None:
            raise NotFound(f"No API client {client_id!r}.", param="client_id")
        _check_bank_binding(Role(client.role), bank_code)
        client.bank_code = bank_code
        uow.commit()


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
        bank_code = client.bank_code
    if bank_binding_problem(role, bank_code) is not None:
        # A bank partner bound to no bank (created before clients were bound) gets no token
        # until an operator binds it: `hirfa onboarding clients bind-bank`.
        raise InvalidClient(
            "This bank partner client is not bound to a bank yet.", error="unauthorized_client"
        )
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
        bank_code=bank_code,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(scopes)),
    }
