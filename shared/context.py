"""A service's wired parts: the context its composition root (``bootstrap()``) builds once.

No Flask here: workers and commands use the same context as the web app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.auth.tokens import RemoteKeySet, TokenVerifier
from shared.config import ServiceConfig
from shared.db import UnitOfWork, make_engine
from shared.events.outbox import outbox_writer


@dataclasses.dataclass
class Models:
    """The service's declarations of the shared tables."""

    outbox: Any
    inbox: Any
    idempotency_key: Any
    # What the relay and the consumers last saw of the broker's topics (BrokerTopicMixin).
    broker_topic: Any


@dataclasses.dataclass(kw_only=True)
class ServiceContext:
    """The composition root's product: everything a request or worker needs, wired once.

    Each service's ``bootstrap()`` returns its own subclass, with typed fields for its adapters
    and settings.
    """

    config: ServiceConfig
    engine: sa.Engine
    session_factory: sessionmaker[Session]
    models: Models
    uow_factory: Callable[[], UnitOfWork]
    token_verifier: TokenVerifier | None = None


ContextT = TypeVar("ContextT", bound=ServiceContext)


def build_context(
    config: ServiceConfig,
    models: Models,
    token_verifier: TokenVerifier | None = None,
    *,
    context_type: type[ContextT] = ServiceContext,  # type: ignore[assignment]
    **services: Any,
) -> ContextT:
    """The parts every service's context has (database, outbox, inbox, tokens), as ``context_type``
    with the service's own ``services`` (its adapters and settings) beside them."""
    engine = make_engine(config.database_url)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    writer = outbox_writer(models.outbox, config.topic)
    return context_type(
        config=config,
        engine=engine,
        session_factory=session_factory,
        models=models,
        uow_factory=lambda: UnitOfWork(session_factory, writer),
        token_verifier=token_verifier,
        **services,
    )


def build_verifying_context(
    config: ServiceConfig,
    models: Models,
    key_lookup: Callable[[str], Any] | None = None,
    *,
    context_type: type[ContextT] = ServiceContext,  # type: ignore[assignment]
    **services: Any,
) -> ContextT:
    """A context for a service that verifies tokens offline against the issuer's JWKS."""
    keys = key_lookup or RemoteKeySet(config.jwks_url, config.jwks_cache_seconds, config.http_timeout_seconds)
    verifier = TokenVerifier(keys, issuer=config.token_issuer, audience=config.audience)
    return build_context(config, models, token_verifier=verifier, context_type=context_type, **services)
