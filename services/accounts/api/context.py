"""The accounts context of the app serving the request."""

from __future__ import annotations

from flask import current_app

from services.accounts.context import AccountsContext


def service_context() -> AccountsContext:
    context = current_app.extensions["hirfa"]
    assert isinstance(context, AccountsContext)
    return context
