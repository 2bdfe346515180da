"""Opening artisans' ledger accounts and reading their balances."""

from __future__ import annotations

import sqlalchemy as sa

from services.accounts.adapters.orm import ArtisanOwner, JournalLine, LedgerAccount
from services.accounts.domain.ledger import ARTISAN_ACCOUNT_KINDS
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.errors import NotFound
from shared.events import Event, make_event
from shared.ids import new_id


def make_on_artisan_registered(currency: str):
    def on_artisan_registered(uow: UnitOfWork, event: Event) -> None:
        """Open the artisan's pending and available accounts (once), and say so."""
        artisan_id = event.data["artisan_id"]
        session = uow.session
        if session.get(ArtisanOwner, (artisan_id, event.data["marketplace_id"])) is None:
            session.add(ArtisanOwner(artisan_id=artisan_id, marketplace_id=event.data["marketplace_id"]))
        existing = session.scalars(
            sa.select(LedgerAccount).where(
                LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id
            )
        ).all()
        if existing:
            return  # a second marketplace linking the same artisan: accounts already open
        accounts = [
            LedgerAccount(
                id=new_id("acct"), owner_type="artisan", owner_id=artisan_id, kind=str(kind), currency=currency
            )
            for kind in ARTISAN_ACCOUNT_KINDS
        ]
        session.add_all(accounts)
        uow.add_event(
            make_event(
                "accounts.ledger.artisan_accounts_opened",
                subject=artisan_id,
                data={
                    "artisan_id": artisan_id,
                    "currency": currency,
                    "accounts": [{"id": a.id, "kind": a.kind} for a in accounts],
                    "cause_event_id": event.id,
                },
            )
        )

    return on_artisan_registered


def artisan_balance(uow: UnitOfWork, artisan_id: str, principal: Principal) -> dict:
    with uow:
        session = uow.session
        if principal.is_marketplace and session.get(ArtisanOwner, (artisan_id, principal.client_id)) is None:
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        rows = session.execute(
            sa.select(LedgerAccount.kind, LedgerAccount.currency, sa.func.coalesce(sa.func.sum(JournalLine.amount), 0))
            .outerjoin(JournalLine, JournalLine.account_id == LedgerAccount.id)
            .where(LedgerAccount.owner_type == "artisan", LedgerAccount.owner_id == artisan_id)
            .group_by(LedgerAccount.kind, LedgerAccount.currency)
        ).all()
        if not rows:
            raise NotFound(f"No ledger accounts for artisan {artisan_id!r} (yet).", param="artisan_id")
        # Artisan accounts are liabilities: credits (negative lines) increase what we owe them.
        balances = {kind: {"amount": -int(total), "currency": currency} for kind, currency, total in rows}
        return {"artisan_id": artisan_id, **balances}
