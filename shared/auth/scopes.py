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

ALL_SCOPES = frozenset().union(*ROLE_SCOPES.values())

# Onboarding gathers what payments and accounts hold about an artisan for a personal-data export.
# No API client is granted it (it is no role's): only onboarding, the token issuer, puts it in the
# short-lived tokens it mints for itself (``ONBOARDING_SERVICE_ID``) to make those reads.
PERSONAL_DATA_COLLECT = "personal_data:collect"
ONBOARDING_SERVICE_ID = "svc_onboarding"
