"""The artisan's signed income statement ("financial passport"), from the ledger.

``issue_income_statement`` reads the journal lines of the artisan's entries for whole months (one
snapshot), adds them up (``domain/income_statements.py``), signs the statement as a compact JWS with
accounts' statement key, and keeps it under a fresh verification code. Every call issues a new
statement with its own code; none of them changes anything else, so a retried request is harmless.

Who may ask: the artisan (their own) and operators. Everyone else gets "not found", as for any
other artisan data: marketplaces too, since the statement shows the artisan's sales through every
marketplace, not only theirs. A bank does not call this: the artisan hands it the PDF or the code,
and the bank fetches (``statement_by_code``) or checks (``verify_statement``) without an account.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import (
    ArtisanLimits,
    IssuedStatement,
    JournalEntry,
    JournalLine,
    LedgerAccount,
)
from services.accounts.domain.income_statements import (
    Movement,
    Period,
    PeriodError,
    add_up,
    code_digest,
    new_verification_code,
    normalize_code,
)
from services.accounts.domain.ports import StatementRenderer, StatementSigner
from services.accounts.service_layer.statements import _money, _one_snapshot
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import UnitOfWork, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.ids import new_id

STATEMENT_VERSION = 1
FIGURES = ("gross_sales", "refunds", "marketplace_fees", "disputes", "net_income", "payouts")
VERIFY_PATH = "/v1/income-statements/verify"


class CallerLimiter(Protocol):
    def hit(self, caller: str) -> None: ...


@dataclasses.dataclass(frozen=True)
class IncomeStatementSettings:
    signer: StatementSigner
    renderer: StatementRenderer
    public_limiter: CallerLimiter  # the public endpoints' requests per caller
    public_url: str  # accounts' public base URL, printed on the statement
    currency: str

    @property
    def verify_url(self) -> str:
        return self.public_url.rstrip("/") + VERIFY_PATH

    def statement_url(self, code: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/income-statements/{code}"


@dataclasses.dataclass(frozen=True)
class IssuedIncomeStatement:
    statement: dict[str, Any]
    jws: str
    kid: str
    code: str


def _check_may_read(artisan_id: str, principal: Principal) -> None:
    """The artisan (their own, ``self:read``) and operators (``ledger:read``); anyone else: not found."""
    if (
        principal.role == Role.ARTISAN
        and principal.client_id == artisan_id
        and principal.has_scopes("self:read")
    ):
        return
    if principal.acts_as(Role.OPERATOR) and principal.has_scopes("ledger:read"):
        return
    raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")


def _movements(session: Session, artisan_id: str, currency: str, period: Period) -> list[Movement]:
    rows = session.execute(
        sa.select(
            JournalEntry.id,
            JournalEntry.cause,
            JournalEntry.cause_id,
            JournalEntry.posted_at,
            LedgerAccount.owner_type,
            LedgerAccount.owner_id,
            LedgerAccount.kind,
            JournalLine.amount,
        )
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
        .where(
            JournalEntry.artisan_id == artisan_id,
            JournalEntry.posted_at >= period.start,
            JournalEntry.posted_at < period.end,
            JournalLine.currency == currency,
        )
        .order_by(JournalEntry.posted_at, JournalLine.id)
    ).all()
    return [Movement(*row[:7], amount=int(row[7])) for row in rows]


def _artisan_balance_before(session: Session, artisan_id: str, currency: str, moment: dt.datetime) -> int:
    """What the artisan's accounts held just before ``moment`` (as people read it)."""
    stored = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(JournalLine.amount), 0))
        .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(
            LedgerAccount.owner_type == "artisan",
            LedgerAccount.owner_id == artisan_id,
            LedgerAccount.currency == currency,
            JournalEntry.posted_at < moment,
        )
    )
    return -int(stored or 0)  # credit-normal accounts


def _first_sale(session: Session, artisan_id: str) -> dt.datetime | None:
    return session.scalar(
        sa.select(sa.func.min(JournalEntry.posted_at)).where(
            JournalEntry.artisan_id == artisan_id, JournalEntry.cause == "payment"
        )
    )


def _artisan_known(session: Session, artisan_id: str) -> bool:
    if session.get(ArtisanLimits, artisan_id) is not None:
        return True
    return (
        session.scalar(
            sa.select(LedgerAccount.id).where(
                LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id
            )
        )
        is not None
    )


def parse_period(period_from: str, period_to: str, *, today: dt.date) -> Period:
    try:
        return Period.parse(period_from, period_to, today=today)
    except PeriodError as error:
        raise ValidationFailed(str(error), param=error.param) from None


def issue_income_statement(
    uow: UnitOfWork,
    artisan_id: str,
    principal: Principal,
    *,
    period_from: str,
    period_to: str,
    settings: IncomeStatementSettings,
    now: dt.datetime | None = None,
) -> IssuedIncomeStatement:
    """Compute the statement of ``artisan_id`` for whole months ``period_from`` to ``period_to``
    (``YYYY-MM``, UTC months), sign it and keep it under a new verification code."""
    _check_may_read(artisan_id, principal)
    now = now or utcnow()
    period = parse_period(period_from, period_to, today=now.date())
    currency = settings.currency
    with uow:
        session = uow.session
        _one_snapshot(session)
        if not _artisan_known(session, artisan_id):
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        figures = add_up(period, _movements(session, artisan_id, currency, period))
        opening = _artisan_balance_before(session, artisan_id, currency, period.start)
        closing = _artisan_balance_before(session, artisan_id, currency, min(period.end, now))
        first_sale = _first_sale(session, artisan_id)
        limits = session.get(ArtisanLimits, artisan_id)

        code = new_verification_code()
        statement_id = new_id("ist")
        statement: dict[str, Any] = {
            "object": "income_statement",
            "version": STATEMENT_VERSION,
            "id": statement_id,
            "issuer": settings.public_url,
            "source": "ledger",
            "artisan_id": artisan_id,
            "issued_at": now.isoformat(),
            "period": {"from": str(period.first), "to": str(period.last), "timezone": "UTC"},
            "currency": currency,
            "kyc": {
                # Null until onboarding's tier news has reached accounts: never an invented tier.
                "tier": limits.kyc_tier if limits is not None else None,
                "status": limits.kyc_status if limits is not None else None,
            },
            "months_active": figures.months_active,
            "first_sale_month": first_sale.strftime("%Y-%m") if first_sale is not None else None,
            # The ledger knows payments, not buyers: this counts payments (see the domain module).
            "payments_count": len(figures.payments),
            "marketplaces": figures.marketplaces,
            "totals": {name: _money(figures.total(name), currency) for name in FIGURES},
            "balance": {"opening": _money(opening, currency), "closing": _money(closing, currency)},
            "months": [
                {
                    "month": str(month.month),
                    **{name: _money(int(getattr(month, name)), currency) for name in FIGURES},
                    "payments_count": len(month.payments),
                    "marketplaces_count": len(month.marketplaces),
                }
                for month in figures.months
            ],
            "verification": {
                "code": code,
                "statement_url": settings.statement_url(code),
                "verify_url": settings.verify_url,
            },
        }
        jws, kid = settings.signer.sign(statement)
        session.add(
            IssuedStatement(
                id=statement_id,
                code_digest=code_digest(code),
                artisan_id=artisan_id,
                period_from=str(period.first),
                period_to=str(period.last),
                kid=kid,
                jws=jws,
                issued_by=principal.client_id,
                issued_at=now,
            )
        )
        uow.commit()
    return IssuedIncomeStatement(statement=statement, jws=jws, kid=kid, code=code)


def render_pdf(issued: IssuedIncomeStatement, language: str, settings: IncomeStatementSettings) -> bytes:
    return settings.renderer.render(
        issued.statement, language=language, verification_url=settings.verify_url, kid=issued.kid
    )


def statement_by_code(uow: UnitOfWork, code: str) -> dict[str, Any]:
    """The signed statement a verification code names (public: the code is the capability)."""
    normalized = normalize_code(code)
    if normalized is None:
        raise NotFound("No income statement has this verification code.", param="code")
    with uow:
        issued = uow.session.scalar(
            sa.select(IssuedStatement).where(IssuedStatement.code_digest == code_digest(normalized))
        )
        if issued is None:
            raise NotFound("No income statement has this verification code.", param="code")
        return {
            "object": "signed_income_statement",
            "verification_code": normalized,
            "kid": issued.kid,
            "issued_at": issued.issued_at,
            "jws": issued.jws,
        }


def verify_statement(jws: str, settings: IncomeStatementSettings) -> dict[str, Any]:
    """Whether ``jws`` is a statement signed with one of our statement keys, and what it says.

    ``statement`` is given only for a valid signature: an altered document's claims are not shown
    as if they were ours."""
    check = settings.signer.verify(jws)
    statement: Mapping[str, object] | None = check.statement if check.valid else None
    return {"valid": check.valid, "reason": check.reason, "kid": check.kid, "statement": statement}
