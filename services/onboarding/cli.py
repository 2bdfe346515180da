"""``hirfa onboarding …``: migrations, relay, API clients, signing keys, demo seed."""

from __future__ import annotations

from pathlib import Path

import click

from services.onboarding.app import bootstrap
from services.onboarding.config import load_config
from services.onboarding.service_layer.api_clients import create_client, ensure_client
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import Role
from shared.runtime import service_cli

# Documented in the README; created only when ONBOARDING_DEMO_CLIENTS=true (make run).
DEMO_CLIENTS = (
    ("cli_demo_marketplace", "demo-marketplace-secret", "Demo marketplace", Role.MARKETPLACE),
    ("cli_demo_bank", "demo-bank-secret", "Demo bank partner", Role.BANK_PARTNER),
    ("cli_demo_compliance", "demo-compliance-secret", "Demo compliance officer", Role.COMPLIANCE),
)

cli = service_cli(
    "onboarding",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
)


@cli.group("clients", help="API clients (marketplaces, bank partners, compliance).")
def clients() -> None:
    pass


@clients.command("create")
@click.option("--name", required=True, help="Who the client is, e.g. 'Souk Digital'.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role if r != Role.ARTISAN]))
def create(name: str, role: str) -> None:
    """Create a client and print its credentials (the secret is shown only once)."""
    context = bootstrap()
    new = create_client(context.uow_factory(), name=name, role=Role(role))
    click.echo(f"client_id:     {new.client_id}")
    click.echo(f"client_secret: {new.client_secret}")
    click.echo("Store the secret now: it is kept only as a hash and cannot be shown again.")


@cli.group("keys", help="Token signing keys.")
def keys() -> None:
    pass


@keys.command("rotate")
def rotate() -> None:
    """Add a new signing key; it signs from now on, older keys stay published until removed."""
    kid = SigningKeyStore(load_config().keys_dir).generate()
    click.echo(f"new signing key: {kid}")


@cli.command("init")
def init() -> None:
    """Prepare a development stack: a signing key and, if enabled, the demo clients."""
    config = load_config()
    kid = SigningKeyStore(config.keys_dir).ensure_key()
    click.echo(f"onboarding: signing key {kid}")
    if config.demo_clients and not config.is_production:
        context = bootstrap(config)
        for client_id, secret, name, role in DEMO_CLIENTS:
            created = ensure_client(context.uow_factory(), client_id=client_id, client_secret=secret, name=name, role=role)
            click.echo(f"onboarding: demo client {client_id} {'created' if created else 'present'}")
