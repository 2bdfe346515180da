"""The ``hirfa`` command: one entry point for every operator task, grouped by service."""

from __future__ import annotations

import click

from services.accounts.cli import cli as accounts_cli
from services.onboarding.cli import cli as onboarding_cli
from services.payments.cli import cli as payments_cli
from services.stack import stack


@click.group(help="Hirfa operator commands.")
def main() -> None:
    pass


main.add_command(onboarding_cli)
main.add_command(payments_cli)
main.add_command(accounts_cli)
main.add_command(stack)

if __name__ == "__main__":
    main()
