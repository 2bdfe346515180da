"""Opening artisans' ledger accounts and reading their balances."""

from __future__ import annotations

from typing import Any

from services.accounts.adapters import ledger
from services.accounts.adapters.orm import ArtisanLimits, ArtisanOwner
from services.accounts.adapters.payouts import is_paid_at
from services.accounts.domain.ledger import ARTISAN_ACCOUNT_KINDS
from shared.auth import Principal
from shared.auth.scopes import Role
from shared.db import UnitOfWork
from shared.errors import NotFound
from shared.events import Event, make_event
from shared.events.consumer import Handler


def add_artisan_owner(uow: UnitOfWork, artisan_id: str, marketplace_id: str) -> None:
    """Let ``marketplace_id`` read the artisan's balance (once)."""
    if uow.session.get(ArtisanOwner, (artisan_id, marketplace_id)) is None:
        uow.session.add(ArtisanOwner(artisan_id=artisan_id, marketplace_id=marketplace_id))


def open_artisan_accounts(uow: UnitOfWork, artisan_id: str, currency: str, cause_event_id: str) -> bool:
    """Open the artisan's pending and available accounts unless they are open, and say so.

    Any onboarding event that may be the first we hear of an artisan calls this, so
    ``accounts.ledger.artisan_accounts_opened`` is emitted once, by whichever comes first.
    Returns whether the accounts were opened now.
    """
    # A batch of events for one artisan asks once per transaction.
    if ledger.artisan_has_accounts(uow.session, artisan_id):
        return False
    accounts = ledger.add_artisan_accounts(
        uow.session, artisan_id, currency, [str(kind) for kind in ARTISAN_ACCOUNT_KINDS]
    )
    uow.add_event(
        make_event(
            "accounts.ledger.artisan_accounts_opened",
            subject=artisan_id,
            data={
                "artisan_id": artisan_id,
                "currency": currency,
                "accounts": [{"id": a.id, "kind": a.kind} for a in accounts],
                "cause_event_id": cause_event_id,
            },
        )
    )
    return True


def make_on_artisan_registered(currency: str) -> Handler:
    def on_artisan_registered(uow: UnitOfWork, event: Event) -> None:
        """Record the registering marketplace and open the artisan's accounts (once)."""
        artisan_id = event.data["artisan_id"]
        add_artisan_owner(uow, artisan_id, event.data["marketplace_id"])
        # A second marketplace linking the same artisan finds the accounts already open.
        open_artisan_accounts(uow, artisan_id, currency, cause_event_id=event.id)

    return on_artisan_registered


def check_artisan_visible(session, artisan_id: str, principal: Principal) -> None:
    """Artisans see their own data, marketplaces the artisans they registered, bank partners the
    artisans with a payout account at their bank, operators all; anything else is "not found",
    never "forbidden" (a bank learns nothing of another bank's customers, not even that they exist).
    """
    if principal.role == Role.ARTISAN:
        visible = principal.client_id == artisan_id
    elif principal.is_marketplace:
        visible = session.get(ArtisanOwner, (artisan_id, principal.client_id)) is not None
    elif principal.is_bank_partner:
        visible = is_paid_at(session, artisan_id, principal.bank_code)
    else:
        visible = True
    if not visible:
        raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")


def artisan_balance(uow: UnitOfWork, artisan_id: str, principal: Principal) -> dict[str, Any]:
    """One indexed read of the stored balances (kept by every posting), no sum over lines."""
    with uow:
        session = uow.session
        check_artisan_visible(session, artisan_id, principal)
        rows = ledger.artisan_stored_balances(session, artisan_id)
        if not rows:
            raise NotFound(f"No ledger accounts for artisan {artisan_id!r} (yet).", param="artisan_id")
        # Artisan accounts are liabilities: credits (negative lines) increase what we owe them.
        balances = {kind: {"amount": -balance, "currency": currency} for kind, currency, balance in rows}
        result: dict[str, Any] = {"artisan_id": artisan_id, **balances}
        limits = session.get(ArtisanLimits, artisan_id)
        # Unknown (null) until onboarding's tier news has arrived; never an invented tier.
        result["kyc_tier"] = limits.kyc_tier if limits is not None else None
        result["cap"] = (
            {"amount": limits.cap_amount, "currency": limits.currency} if limits is not None else None
        )
        return result
