"""Roles and the scopes each may be granted (DESIGN §6)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    MARKETPLACE = "marketplace"
    BANK_PARTNER = "bank_partner"
    COMPLIANCE = "compliance"
    ARTISAN = "artisan"
    OPERATOR = "operator"


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.MARKETPLACE: frozenset(
        {
            "artisans:write",
            "artisans:read",
            "payments:write",
            "payments:read",
            "balances:read",
            "webhooks:manage",
        }
    ),
    Role.BANK_PARTNER: frozenset({"reconciliation:read", "payouts:write", "balances:read", "ledger:read"}),
    Role.COMPLIANCE: frozenset({"kyc:review", "artisans:read"}),
    # An artisan reads their own data and may ask for payouts of their own available balance; with
    # ``self:write`` they upload their own KYC documents and link their own bank accounts.
    Role.ARTISAN: frozenset({"self:read", "self:write", "payouts:request"}),
    # Back-office staff who run the ledger: integrity checks, cases, payouts on an artisan's behalf.
    Role.OPERATOR: frozenset(
        {
            "ledger:read",
            "ledger:operate",
            "balances:read",
            "payouts:write",
            "artisans:read",
            # List and revoke an artisan's signed-in devices (a lost or stolen phone).
            "devices:manage",
        }
    ),
}

ALL_SCOPES = frozenset().union(*ROLE_SCOPES.values())
