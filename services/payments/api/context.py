"""The views' typed read of the payments context the app was built with."""

from __future__ import annotations

from typing import cast

from flask import current_app

from services.payments.context import PaymentsContext
from shared.db import UnitOfWork
from shared.idempotency import joined_to_request


def service_context() -> PaymentsContext:
    return cast(PaymentsContext, current_app.extensions["hirfa"])


def unit_of_work() -> UnitOfWork:
    """A new unit of work for one handler call; in a view that keeps its idempotency key in its
    own transaction (``idempotent_in_transaction``), one joined to that transaction."""
    return joined_to_request(service_context().uow_factory())
