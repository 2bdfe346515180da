"""Roles and the scopes each may be granted (DESIGN §6)."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Role(enum.StrEnum):
    MARKETPLACE = "marketplace"
    BANK_PARTNER = "bank_partner"
    COMPLIANCE = "compliance"
    ARTISAN = "artisan"
    OPERATOR = "operator"
    # A person of the back office signed in with password and TOTP (not an API client): their token
    # carries the scopes of the roles they hold (compliance, operator or both), and ``sub`` names them.
    STAFF = "staff"
    # Another Hirfa service checking this one's work (accounts comparing the payments that
    # succeeded with its ledger): it reads across marketplaces, and changes nothing.
    SERVICE = "service"


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
    # ``personal_data:manage``: an artisan's rights under law 09-08 exercised through compliance
    # (a request by letter or at a counter): the export of everything Hirfa holds about them, and
    # their erasure request.
    Role.COMPLIANCE: frozenset({"kyc:review", "artisans:read", "personal_data:manage"}),
    # An artisan reads their own data and may ask for payouts of their own available balance; with
    # ``self:write`` they upload their own KYC documents and link their own bank accounts.
    Role.ARTISAN: frozenset({"self:read", "self:write", "payouts:request"}),
    # Back-office staff who run the ledger: integrity checks, cases, payouts on an artisan's behalf,
    # reconciliation (runs, cases: reading and acting), and what needs attention in payments.
    Role.OPERATOR: frozenset(
        {
            "ledger:read",
            "ledger:operate",
            "balances:read",
            "payouts:write",
            "artisans:read",
            # List and revoke an artisan's signed-in devices (a lost or stolen phone).
            "devices:manage",
            "reconciliation:read",
            "reconciliation:operate",
            # Read payments across every marketplace for the back office: reversals to review,
            # stuck payments, open disputes, failing webhooks, and the day's figures.
            "payments:oversee",
        }
    ),
    # Which succeeded payments the ledger has not confirmed posting (accounts' completeness check).
    Role.SERVICE: frozenset({"payments:audit"}),
}

# The roles a staff member may hold: their token carries the union of these roles' scopes.
STAFF_ROLES = (Role.COMPLIANCE, Role.OPERATOR)


def staff_scopes(roles: Iterable[Role]) -> frozenset[str]:
    """The scopes of a staff member holding ``roles`` (each one of ``STAFF_ROLES``)."""
    held = set(roles)
    if not held <= set(STAFF_ROLES):
        raise ValueError(f"a staff member holds only {', '.join(STAFF_ROLES)}")
    return frozenset().union(*(ROLE_SCOPES[role] for role in held))


# At most, a staff token carries every staff role's scopes.
ROLE_SCOPES[Role.STAFF] = staff_scopes(STAFF_ROLES)

# Onboarding gathers what payments and accounts hold about an artisan for a personal-data export.
# No API client is granted it (it is no role's): only onboarding, the token issuer, puts it in the
# short-lived tokens it mints for itself (``ONBOARDING_SERVICE_ID``) to make those reads.
PERSONAL_DATA_COLLECT = "personal_data:collect"
ONBOARDING_SERVICE_ID = "svc_onboarding"

# Every scope a token may carry: the roles' and onboarding's own.
ALL_SCOPES = frozenset().union(*ROLE_SCOPES.values(), {PERSONAL_DATA_COLLECT})

# What each scope lets a token do, as the OpenAPI documents show it.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "artisans:write": "Register your marketplace's artisans, verify their phones, upload KYC documents, link bank accounts.",
    "artisans:read": "Read artisans, their KYC and bank accounts (a marketplace: its own artisans only).",
    "payments:write": "Create, confirm, capture and cancel payments; refund them.",
    "payments:read": "Read your marketplace's payments, refunds and disputes.",
    "balances:read": "Read artisans' balances, transactions and payouts (a bank partner: its own bank's).",
    "webhooks:manage": "Register, list and remove webhook endpoints; read and retry deliveries.",
    "reconciliation:read": "Read reconciliation runs, items and cases, and bank statements (a bank partner: its own bank's).",
    "reconciliation:operate": "Upload settlement files and statements; assign, annotate, resolve and write off cases.",
    "payouts:write": "Operators: ask for payouts on an artisan's behalf, set payout schedules; bank partners: read payouts.",
    "payouts:request": "An artisan: ask for a payout of their own available balance.",
    "ledger:read": "Read the ledger: journal entries, accounts, integrity, payout figures.",
    "ledger:operate": "Work the ledger: cases, adjustments (four-eyes), reserves, marketplace settings.",
    "kyc:review": "Review KYC cases: decide, downgrade, rescreen, read documents and the audit log.",
    "self:read": "An artisan: read their own data (profile, KYC, balance, statements, notifications).",
    "self:write": "An artisan: upload their own KYC documents and link their own bank accounts.",
    "devices:manage": "List and revoke an artisan's signed-in devices.",
    "payments:oversee": "Operators: the back office's views of payments across every marketplace.",
    "payments:audit": "Another Hirfa service: which succeeded payments the ledger has not confirmed.",
    "personal_data:manage": "Compliance: export an artisan's personal data, file their erasure request, see them once restricted.",
    PERSONAL_DATA_COLLECT: "Onboarding only (no client is granted it): read an artisan's data for their export.",
}
