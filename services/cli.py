"""The ``hirfa`` command: one entry point for every operator task, grouped by service.

Each group is imported only when it is invoked: ``hirfa payments relay`` loads payments alone. With
a dozen processes starting at once (``make run``), every process importing all three services would
cost seconds of CPU before anything is ready.
"""

from __future__ import annotations

import importlib

import click

# group name -> "module:attribute"
GROUPS = {
    "onboarding": "services.onboarding.cli:cli",
    "payments": "services.payments.cli:cli",
    "accounts": "services.accounts.cli:cli",
    "stack": "services.stack:stack",
    "docs": "services.docs:docs",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = GROUPS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, help="Hirfa operator commands.")
def main() -> None:
    pass


if __name__ == "__main__":
    main()
