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
    # An artisan reads their own data and may ask for payouts of their own available balance.
    Role.ARTISAN: frozenset({"self:read", "payouts:request"}),
    # Back-office staff who run the ledger: integrity checks, cases, payouts on an artisan's behalf,
    # and reconciliation (runs, cases: reading and acting).
    Role.OPERATOR: frozenset(
        {
            "ledger:read",
            "ledger:operate",
            "balances:read",
            "payouts:write",
            "artisans:read",
            "reconciliation:read",
            "reconciliation:operate",
        }
    ),
}

ALL_SCOPES = frozenset().union(*ROLE_SCOPES.values())
