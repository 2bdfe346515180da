"""Authentication: JWT issuing (onboarding) and offline verification (every service)."""

from shared.auth.principal import Principal
from shared.auth.scopes import ROLE_SCOPES, Role

__all__ = ["Principal", "ROLE_SCOPES", "Role"]
