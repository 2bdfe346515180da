"""The views' typed read of the payments context the app was built with."""

from __future__ import annotations

from typing import cast

from flask import current_app

from services.payments.context import PaymentsContext
from shared.db import UnitOfWork


def service_context() -> PaymentsContext:
    return cast(PaymentsContext, current_app.extensions["hirfa"])


def unit_of_work() -> UnitOfWork:
    """A new unit of work for one handler call."""
    return service_context().uow_factory()
