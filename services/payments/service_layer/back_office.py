"""The back office's view of payments: what needs an operator's attention across every marketplace,
and the figures of a period. Read only; for staff acting as operators (a marketplace sees its own
payments through the marketplace endpoints, never another's)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from services.payments.adapters.repositories import back_office
from services.payments.domain.back_office import success_rate
from services.payments.domain.gateway import PaymentMethod
from services.payments.domain.payments import PaymentStatus
from services.payments.service_layer.settings import PaymentSettings
from shared.auth import Principal, Role
from shared.db import UnitOfWork, utcnow
from shared.errors import Forbidden, ValidationFailed
from shared.money import Money
from shared.pagination import Page

# The longest period one request of figures may cover.
MAX_FIGURES_PERIOD = dt.timedelta(days=92)


def require_operator(principal: Principal) -> None:
    """Only Hirfa's operators (an operator client, or a staff member holding the role) look across
    marketplaces."""
    if not principal.acts_as(Role.OPERATOR):
        raise Forbidden("The back office's views of payments are for operators.", code="role_not_allowed")


def reversals_to_review(
    uow: UnitOfWork, principal: Principal, *, limit: int, starting_after: str | None
) -> Page:
    """Payments whose held money the gateway would not give back: an operator must (oldest first)."""
    require_operator(principal)
    with uow:
        return back_office.reversals_to_review(uow.session, limit=limit, starting_after=starting_after)


def stuck_payments(
    uow: UnitOfWork,
    principal: Principal,
    settings: PaymentSettings,
    *,
    limit: int,
    starting_after: str | None,
    now: dt.datetime | None = None,
) -> Page:
    """Payments processing for longer than the recovery job waits before asking the gateway itself."""
    require_operator(principal)
    waiting_before = (now or utcnow()) - settings.recovery_after
    with uow:
        return back_office.stuck_payments(
            uow.session, waiting_before=waiting_before, limit=limit, starting_after=starting_after
        )


def disputes(
    uow: UnitOfWork, principal: Principal, *, status: str | None, limit: int, starting_after: str | None
) -> Page:
    require_operator(principal)
    with uow:
        return back_office.disputes(uow.session, status=status, limit=limit, starting_after=starting_after)


def webhook_failures(
    uow: UnitOfWork, principal: Principal, *, limit: int, starting_after: str | None
) -> Page:
    require_operator(principal)
    with uow:
        return back_office.webhook_failures(uow.session, limit=limit, starting_after=starting_after)


@dataclasses.dataclass(frozen=True)
class MethodFigures:
    payment_method_type: str
    count: int
    succeeded: int
    failed: int
    volume: list[Money]  # captured by the payments that succeeded, per currency

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.succeeded, self.failed)


@dataclasses.dataclass(frozen=True)
class PaymentStats:
    created_gte: dt.datetime
    created_lt: dt.datetime
    by_method: list[MethodFigures]

    @property
    def count(self) -> int:
        return sum(method.count for method in self.by_method)

    @property
    def volume(self) -> list[Money]:
        return _per_currency(money for method in self.by_method for money in method.volume)


def payment_stats(
    uow: UnitOfWork,
    principal: Principal,
    *,
    created_gte: dt.datetime,
    created_lt: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> PaymentStats:
    """The payments created in ``[created_gte, created_lt)`` (default: until now), per method: how
    many, how many succeeded and failed, and the volume the succeeded ones captured."""
    require_operator(principal)
    created_lt = created_lt or now or utcnow()
    if created_lt <= created_gte:
        raise ValidationFailed("created_lt must be later than created_gte.", param="created_lt")
    if created_lt - created_gte > MAX_FIGURES_PERIOD:
        raise ValidationFailed("A period of figures covers at most 92 days.", param="created_gte")
    with uow:
        figures = back_office.payment_figures(uow.session, created_gte=created_gte, created_lt=created_lt)
    methods = [str(method) for method in PaymentMethod]
    methods += sorted({row.payment_method_type for row in figures} - set(methods))
    by_method = []
    for method in methods:
        rows = [row for row in figures if row.payment_method_type == method]
        succeeded = [row for row in rows if row.status == PaymentStatus.SUCCEEDED]
        by_method.append(
            MethodFigures(
                payment_method_type=method,
                count=sum(row.count for row in rows),
                succeeded=sum(row.count for row in succeeded),
                failed=sum(row.count for row in rows if row.status == PaymentStatus.FAILED),
                volume=_per_currency(Money(row.captured, row.currency) for row in succeeded),
            )
        )
    return PaymentStats(created_gte=created_gte, created_lt=created_lt, by_method=by_method)


def _per_currency(amounts: Iterable[Money]) -> list[Money]:
    totals: dict[str, int] = {}
    for money in amounts:
        totals[money.currency] = totals.get(money.currency, 0) + money.amount
    return [Money(amount, currency) for currency, amount in sorted(totals.items())]
