"""``hirfa onboarding …``: migrations, relay, API clients, signing keys, demo seed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from services.onboarding.adapters.screening_lists import ScreeningListError
from services.onboarding.bootstrap import bootstrap, screening_sources
from services.onboarding.config import load_config
from services.onboarding.context import OnboardingContext
from services.onboarding.service_layer.api_clients import bind_to_bank, create_client, ensure_client
from services.onboarding.service_layer.bank_accounts import sync_openings
from services.onboarding.service_layer.documents import rewrap_all_documents
from services.onboarding.service_layer.erasure import erase_due_artisans
from services.onboarding.service_layer.notifications import make_notification_handlers, send_due_notifications
from services.onboarding.service_layer.screening import refresh_lists, rescreen_all
from services.onboarding.service_layer.staff import (
    create_staff,
    disable_staff,
    ensure_demo_staff,
    list_staff,
    reset_second_factor,
    rewrap_totp_secrets,
)
from shared.auth.keys import SigningKeyStore
from shared.auth.scopes import STAFF_ROLES, Role
from shared.config import DEMO_ACCOUNTS_CLIENT_ID, DEMO_ACCOUNTS_CLIENT_SECRET, Process
from shared.errors import Conflict, NotFound, ValidationFailed
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
    # Accounts itself, reading payments for its completeness check (its development default).
    (DEMO_ACCOUNTS_CLIENT_ID, DEMO_ACCOUNTS_CLIENT_SECRET, "Accounts service (demo)", Role.SERVICE, None),
)

# Documented in the README; created only when ONBOARDING_DEMO_STAFF=true (make run, the e2e stack),
# already enrolled: (email, name, roles, TOTP secret). Tests and the console's demo compute codes
# with pyotp.TOTP(secret).now(). Every one signs in with DEMO_STAFF_PASSWORD.
DEMO_STAFF_PASSWORD = "demo-staff-password"
DEMO_STAFF = (
    ("amina.compliance@hirfa.test", "Amina Benali", ("compliance",), "AMINACOMPLIANCEDEMOTOTPSECRETAAA"),
    ("youssef.compliance@hirfa.test", "Youssef Alaoui", ("compliance",), "YOUSSEFCOMPLIANCEDEMOTOTPSECRETA"),
    ("salma.operator@hirfa.test", "Salma Idrissi", ("operator",), "SALMAOPERATORDEMOTOTPSECRETAAAAA"),
    # A second operator, for four-eyes decisions (an adjustment Salma proposes, Karim approves).
    ("karim.operator@hirfa.test", "Karim Fassi", ("operator",), "KARIMOPERATORDEMOTOTPSECRETAAAAA"),
)
# Where `staff create` reads the password when it cannot ask (CI, scripts: no terminal).
STAFF_PASSWORD_ENV = "HIRFA_STAFF_PASSWORD"

cli = service_cli(
    "onboarding",
    service_dir=Path(__file__).parent,
    load_config=load_config,
    bootstrap=bootstrap,
    # Notifications to artisans, from events about their money (payments, accounts) and their file.
    handlers=lambda config: make_notification_handlers(),
    subscribes_to=["payments.events", "accounts.events", "onboarding.events"],
)


def _context(process: Process) -> OnboardingContext:
    """Onboarding wired for ``process``: a command checks the secrets of the process whose work it
    does (re-wrapping documents' keys is the API's), most only the database's."""
    return bootstrap(load_config(process=process))


@cli.group("clients", help="API clients (marketplaces, bank partners, compliance).")
def clients() -> None:
    pass


@clients.command("create")
@click.option("--name", required=True, help="Who the client is, e.g. 'Souk Digital'.")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role if r not in (Role.ARTISAN, Role.STAFF)])
)
@click.option(
    "--bank-code",
    default=None,
    help="bank_partner only (and required): the three-digit code of the partner's bank, e.g. 145.",
)
def create(name: str, role: str, bank_code: str | None) -> None:
    """Create a client and print its credentials (the secret is shown only once)."""
    context = _context(Process.COMMAND)
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
    context = _context(Process.COMMAND)
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
    kid = SigningKeyStore(load_config(process=Process.COMMAND).keys_dir).generate()
    click.echo(f"new signing key: {kid}")


@cli.command("init")
def init() -> None:
    """Prepare a development stack: keys, the screening list, and, if enabled, the demo clients and staff."""
    config = load_config(process=Process.MIGRATE)
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
    if config.demo_staff and not config.is_production:
        for email, name, roles, totp_secret in DEMO_STAFF:
            created = ensure_demo_staff(
                context.uow_factory(),
                email=email,
                name=name,
                roles=list(roles),
                password=DEMO_STAFF_PASSWORD,
                totp_secret=totp_secret,
                policy=context.staff,
            )
            click.echo(f"onboarding: demo staff {email} {'created' if created else 'present'}")


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
    context = _context(Process.COMMAND)
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
    _print_rescreen(_context(Process.COMMAND))


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
    context = _context(Process.API)
    cipher = context.cipher
    if cipher.keyring.read_only:
        raise click.ClickException(
            "master keys come from DOCUMENT_MASTER_KEYS: add a key there, then run rewrap"
        )
    kid = cipher.keyring.generate()
    click.echo(f"new document master key: {kid}")
    changed = rewrap_all_documents(context.uow_factory, cipher)
    click.echo(f"re-wrapped {changed} document keys")
    # Staff TOTP secrets are sealed with the same master keys: re-wrapped before any is retired.
    click.echo(f"re-wrapped {rewrap_totp_secrets(context.uow_factory, cipher)} staff TOTP secret keys")
    if retire_old:
        for old in cipher.keyring.kids():
            if old != kid:
                cipher.keyring.retire(old)
                click.echo(f"retired {old}")


@documents_group.command("rewrap")
def rewrap_documents() -> None:
    """Re-wrap data keys still under an older master key (after adding a key to DOCUMENT_MASTER_KEYS)."""
    context = _context(Process.API)
    changed = rewrap_all_documents(context.uow_factory, context.cipher)
    click.echo(f"re-wrapped {changed} document keys")
    click.echo(
        f"re-wrapped {rewrap_totp_secrets(context.uow_factory, context.cipher)} staff TOTP secret keys"
    )


@cli.group("staff", help="Staff: compliance officers and operators who sign in to the console.")
def staff_group() -> None:
    pass


def _staff_password() -> str:
    """From HIRFA_STAFF_PASSWORD when set (CI, scripts), else asked twice on the terminal. Never a
    command-line option: those end up in shell history and process lists."""
    password = os.environ.get(STAFF_PASSWORD_ENV)
    if password:
        return password
    if not sys.stdin.isatty():
        raise click.ClickException(f"no terminal to ask for the password: set {STAFF_PASSWORD_ENV}")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@staff_group.command("create")
@click.option("--email", required=True, help="Their email: they sign in with it.")
@click.option("--name", required=True, help="Their name, as audit trails show it.")
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice([str(role) for role in STAFF_ROLES]),
    help="compliance, operator; repeat for both.",
)
def staff_create(email: str, name: str, roles: tuple[str, ...]) -> None:
    """Create a staff member (the first admin too) and print their enrolment token, once.

    The password is asked for, or read from HIRFA_STAFF_PASSWORD. The person enrols an
    authenticator app with the token (or signs in once with the password, which gives a new one).
    """
    context = _context(Process.COMMAND)
    try:
        new = create_staff(
            context.uow_factory(),
            email=email,
            name=name,
            roles=list(roles),
            password=_staff_password(),
            policy=context.staff,
        )
    except (ValidationFailed, Conflict) as error:
        raise click.ClickException(str(error.detail)) from None
    click.echo(f"staff_id:        {new.staff['id']}")
    click.echo(f"email:           {new.staff['email']}")
    click.echo(f"roles:           {', '.join(new.staff['roles'])}")
    click.echo(f"enrolment_token: {new.enrolment_token}")
    hours = context.config.staff_enrolment_ttl_hours
    click.echo(f"Give the token to {new.staff['name']} now: it is shown once and lasts {hours} hours.")


@staff_group.command("list")
def staff_list() -> None:
    """Every staff member: roles, status, whether enrolled, last sign-in."""
    for member in list_staff(_context(Process.COMMAND).uow_factory()):
        enrolled = "enrolled" if member["enrolled_at"] else "not enrolled"
        last = member["last_signed_in_at"].isoformat() if member["last_signed_in_at"] else "never"
        click.echo(
            f"{member['id']}  {member['email']:<32} {member['name']:<24} "
            f"{','.join(member['roles']):<20} {member['status']:<8} {enrolled:<12} last sign-in {last}"
        )


@staff_group.command("disable")
@click.argument("staff")
def staff_disable(staff: str) -> None:
    """Stop STAFF (an id or an email) from signing in; their current token expires within 15 minutes."""
    try:
        member = disable_staff(_context(Process.COMMAND).uow_factory(), staff)
    except NotFound as error:
        raise click.ClickException(str(error.detail)) from None
    click.echo(f"{member['id']} ({member['email']}): disabled")


@staff_group.command("reset-factor")
@click.argument("staff")
def staff_reset_factor(staff: str) -> None:
    """A lost phone: drop STAFF's authenticator and print a new enrolment token, once."""
    context = _context(Process.COMMAND)
    try:
        new = reset_second_factor(context.uow_factory(), staff, policy=context.staff)
    except (NotFound, Conflict) as error:
        raise click.ClickException(str(error.detail)) from None
    click.echo(f"enrolment_token: {new.enrolment_token}")


@cli.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between passes.")
def worker(once: bool, interval: float) -> None:
    """Background duties: submit account openings the bank never accepted, poll unanswered ones;
    send the notifications that are due (first tries and retries); erase the artisans whose
    anti-money-laundering retention duty is over (after their erasure request)."""
    import contextlib
    import datetime as dt
    import logging

    from shared.runtime import run_duty, serving_probes, stop_on_signals
    from shared.tracing import configure_tracing

    context = _context(Process.WORKER)
    configure_tracing("onboarding-worker", context.config)
    stop = stop_on_signals()
    log = logging.getLogger("hirfa.onboarding.worker")
    poll_after = dt.timedelta(seconds=context.config.bank_opening_poll_after_seconds)
    with (
        contextlib.nullcontext(None)
        if once
        else serving_probes(context, "onboarding-worker", broker=False, idle_seconds=interval)
    ) as heartbeat:
        while True:
            if heartbeat is not None:
                heartbeat.beat()
            run_duty(
                log,
                "account openings synced",
                lambda: sync_openings(context.uow_factory, context.bank_accounts, poll_after=poll_after),
            )
            run_duty(
                log,
                "notifications sent",
                lambda: send_due_notifications(context.uow_factory, context.sms, context.notifications),
            )
            run_duty(log, "artisans erased", lambda: erase_due_artisans(context.uow_factory))
            if once or stop.wait(interval):
                return
