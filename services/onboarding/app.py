"""Onboarding's composition root: ``bootstrap`` wires adapters once; ``create_app`` serves them."""

from __future__ import annotations

from flask import Flask

from services.onboarding.adapters.orm import IdempotencyKey, InboxMessage, OutboxMessage
from services.onboarding.api import artisans, oauth
from services.onboarding.config import OnboardingConfig, load_config
from shared.app import Models, ServiceContext, create_service_app
from shared.auth.keys import SigningKeyStore
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.runtime import build_context

MODELS = Models(outbox=OutboxMessage, inbox=InboxMessage, idempotency_key=IdempotencyKey)


def bootstrap(config: OnboardingConfig | None = None) -> ServiceContext:
    config = config or load_config()
    keys = SigningKeyStore(config.keys_dir)
    # Onboarding is the issuer: it verifies its own tokens against its key files, no HTTP.
    verifier = TokenVerifier(
        lambda kid: keys.public_keys().get(kid), issuer=config.token_issuer, audience=config.audience
    )
    context = build_context(config, MODELS, token_verifier=verifier)
    context.extras["signing_keys"] = keys
    context.extras["token_issuer"] = TokenIssuer(keys, config.token_issuer, config.token_ttl_seconds)
    return context


def create_app(config: OnboardingConfig | None = None) -> Flask:
    context = bootstrap(config)
    return create_service_app(
        context,
        title="Hirfa Onboarding API",
        blueprints=[oauth.blp, artisans.blp],
        form_endpoints={"oauth.token"},
    )
