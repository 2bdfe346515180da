"""``hirfa onboarding …``: migrations, relay, API clients, signing keys, demo seed."""

from __future__ import annotations

from pathlib import Path

import click

from services.onboarding.adapters.screening_lists import ScreeningListError
from services.onboarding.bootstrap import bootstrap, screening_sources
from services.onboarding.config import load_config
from services.onboarding.context import OnboardingContext
from services.onboarding.service_layer.api_clients import bind_to_bank, create_client, ensure_client
from services.onboarding.service_layer.bank_accounts import sync_openings
from services.onboarding.service_layer.documents import rewrap_all_documents
from services.onboarding.service_layer.notifications import make_notification_handlers, send_due_notifications
from services.onboarding.service_layer.screening import refresh_lists, rescreen_all
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import Role
from shared.errors import NotFound, ValidationFailed
from shared.runtime import service_cli

# Documented in the README; created only when ONBOARDING_DEMO_CLIENTS=true (make run).
# (client id, secret, name, role, bank code): the demo bank is Banque Populaire (145), the bank
# holding the demo stack's client funds (ACCOUNTS_PAYOUT_BANK_CODE).
DEMO_CLIENTS = (
    ("cli_demo_marketplace", "demo-marketplace-secret", "Demo marketplace", Role.MARKETPLACE, None),
    ("cli_demo_bank", "demo-bank-secret", "Demo bank partner", Role.BANK_PARTNER, "145"),
    ("cli_demo_compliance", "demo-compliance-secret", "Demo compliance officer", Role.COMPLIANCE, None),
    # A second officer, so the four-eyes rule can be exercised on a demo stack.
    (
        "cli_demo_compliance_2",
        "demo-compliance-2-secret",
        "Demo compliance officer 2",
        Role.COMPLIANCE,
        None,
    ),
    ("cli_demo_operator", "demo-operator-secret", "Demo ledger operator", Role.OPERATOR, None),
)

cli = service_cli(
    "onboarding",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    # Notifications to artisans, from events about their money (payments, accounts) and their file.
    handlers=make_notification_handlers,
    subscribes_to=["payments.events", "accounts.events", "onboarding.events"],
)


@cli.group("clients", help="API clients (marketplaces, bank partners, compliance).")
def clients() -> None:
    pass


@clients.command("create")
@click.option("--name", required=True, help="Who the client is, e.g. 'Souk Digital'.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role if r != Role.ARTISAN]))
@click.option(
    "--bank-code",
    default=None,
    help="bank_partner only (and required): the three-digit code of the partner's bank, e.g. 145.",
)
def create(name: str, role: str, bank_code: str | None) -> None:
    """Create a client and print its credentials (the secret is shown only once)."""
    context = bootstrap()
    try:
        new = create_client(context.uow_factory(), name=name, role=Role(role), bank_code=bank_code)
    except ValidationFailed as error:
        raise click.BadParameter(str(error.detail), param_hint="--bank-code") from None
    click.echo(f"client_id:     {new.client_id}")
    click.echo(f"client_secret: {new.client_secret}")
    if new.bank_code is not None:
        click.echo(f"bank_code:     {new.bank_code}")
    click.echo("Store the secret now: it is kept only as a hash and cannot be shown again.")


@clients.command("bind-bank")
@click.argument("client_id")
@click.option("--bank-code", required=True, help="The three-digit code of the partner's bank, e.g. 145.")
def bind_bank(client_id: str, bank_code: str) -> None:
    """Bind a bank partner client to its bank (clients created before banks were bound get no
    token until this is done)."""
    context = bootstrap()
    try:
        bind_to_bank(context.uow_factory(), client_id, bank_code)
    except (ValidationFailed, NotFound) as error:
        raise click.ClickException(str(error.detail)) from None
    click.echo(f"{client_id}: bound to bank {bank_code}")


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
    """Prepare a development stack: keys, the screening list, and, if enabled, the demo clients."""
    config = load_config()
    kid = SigningKeyStore(config.keys_dir).ensure_key()
    click.echo(f"onboarding: signing key {kid}")
    context = bootstrap(config)
    try:
        version, is_new = refresh_lists(context.uow_factory(), screening_sources(config))
    except ScreeningListError as error:
        # Not fatal here: screening stays pending (or on the previous list) until `screening load` succeeds.
        click.echo(f"onboarding: screening list not loaded: {error}", err=True)
    else:
        click.echo(f"onboarding: screening list {version} {'loaded' if is_new else 'present'}")
    if config.demo_clients and not config.is_production:
        for client_id, secret, name, role, bank_code in DEMO_CLIENTS:
            created = ensure_client(
                context.uow_factory(),
                client_id=client_id,
                client_secret=secret,
                name=name,
                role=role,
                bank_code=bank_code,
            )
            click.echo(f"onboarding: demo client {client_id} {'created' if created else 'present'}")


@cli.group("screening", help="Sanctions/PEP lists (UN Security Council consolidated list XML layout).")
def screening() -> None:
    pass


@screening.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option(
    "--rescreen/--no-rescreen",
    default=True,
    show_default=True,
    help="Screen every artisan against the new version right away.",
)
def screening_load(path: str | None, rescreen: bool) -> None:
    """Load the configured sanctions and PEP lists (PATH replaces the sanctions source) as a new
    version, refusing a stale one, and, if new, rescreen everyone."""
    context = bootstrap()
    try:
        version, is_new = refresh_lists(
            context.uow_factory(), screening_sources(context.config, sanctions_location=path)
        )
    except ScreeningListError as error:
        raise click.ClickException(f"{error} (the list in force is unchanged)") from None
    click.echo(f"screening list {version}: {'loaded' if is_new else 'already loaded'}")
    if is_new and rescreen:
        _print_rescreen(context)


@screening.command("rescreen")
def screening_rescreen() -> None:
    """Screen every active artisan against the list in force; hits go to review and lose their tier."""
    _print_rescreen(bootstrap())


def _print_rescreen(context: OnboardingContext) -> None:
    report = rescreen_all(
        context.uow_factory,
        context.screening,
        threshold=context.config.screening_threshold,
        tiers=context.tiers,
    )
    click.echo(
        f"rescreened {report.screened} artisans against {report.list_version}: {report.hits} hits, "
        f"{report.demoted} demoted, {report.promoted} promoted"
    )


@cli.group("documents", help="KYC documents encrypted at rest.")
def documents_group() -> None:
    pass


@documents_group.command("rotate-key")
@click.option("--retire-old", is_flag=True, help="Delete the previous master keys once nothing uses them.")
def rotate_document_key(retire_old: bool) -> None:
    """Make a new master key and re-wrap every document's data key under it (no re-encryption)."""
    context = bootstrap()
    cipher = context.cipher
    if cipher.keyring.read_only:
        raise click.ClickException(
            "master keys come from DOCUMENT_MASTER_KEYS: add a key there, then run rewrap"
        )
    kid = cipher.keyring.generate()
    click.echo(f"new document master key: {kid}")
    changed = rewrap_all_documents(context.uow_factory, cipher)
    click.echo(f"re-wrapped {changed} document keys")
    if retire_old:
        for old in cipher.keyring.kids():
            if old != kid:
                cipher.keyring.retire(old)
                click.echo(f"retired {old}")


@documents_group.command("rewrap")
def rewrap_documents() -> None:
    """Re-wrap data keys still under an older master key (after adding a key to DOCUMENT_MASTER_KEYS)."""
    context = bootstrap()
    changed = rewrap_all_documents(context.uow_factory, context.cipher)
    click.echo(f"re-wrapped {changed} document keys")


@cli.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between passes.")
def worker(once: bool, interval: float) -> None:
    """Background duties: submit account openings the bank never accepted, poll unanswered ones;
    send the notifications that are due (first tries and retries)."""
    import datetime as dt
    import logging

    from shared.runtime import run_duty, stop_on_signals

    context = bootstrap()
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.onboarding.worker")
    poll_after = dt.timedelta(seconds=context.config.bank_opening_poll_after_seconds)
    while True:
        try:
            result = sync_openings(context.uow_factory, context.bank_accounts, poll_after=poll_after)
            if any(result.values()):
                log.info("account openings synced", extra=result)
        except Exception:  # noqa: BLE001 - a worker pass must never kill the worker
            log.exception("worker pass failed")
        run_duty(
            log,
            "notifications sent",
            lambda: send_due_notifications(context.uow_factory, context.sms, context.notifications),
        )
        if once or stop.wait(interval):
            return
