"""Whose is it? A marketplace sees only its own payments, refunds, disputes and webhooks.

Another marketplace's object gets the answer of a missing one: nothing leaks, not even that it
exists. Every read of an object by its id on behalf of a caller goes through ``yours``.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payment
from services.payments.adapters.repositories import payments
from shared.auth import Principal
from shared.errors import Forbidden, NotFound


class Owned(Protocol):
    @property
    def marketplace_id(self) -> str: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def yours(found: OwnedT | None, principal: Principal, not_found: NotFound) -> OwnedT:
    """``found`` if the caller's marketplace owns it; otherwise ``not_found`` is raised."""
    if found is None or found.marketplace_id != principal.client_id:
        raise not_found
    return found


def payment_not_found(param: str = "id") -> NotFound:
    return NotFound("No payment has this id.", code="payment_not_found", param=param)


def visible_payment(
    session: Session, payment_id: str, principal: Principal, *, lock: bool = False, param: str = "id"
) -> Payment:
    """The payment, if the caller's marketplace owns it (``lock``: under a row lock, read afresh)."""
    found = payments.locked(session, payment_id) if lock else payments.get(session, payment_id)
    return yours(found, principal, payment_not_found(param))


def require_marketplace(principal: Principal) -> None:
    """Webhooks belong to marketplaces: no other kind of caller has any."""
    if not principal.is_marketplace:
        raise Forbidden("Webhooks belong to marketplaces.", code="role_not_allowed")
