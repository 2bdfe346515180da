"""The console's composition root: the HTTP clients of the three services and of staff sign-in.

Tests pass their fakes as keyword arguments (``apis=``, ``staff_auth=``).
"""

from __future__ import annotations

from services.console.adapters.hirfa_api import HirfaApis, ServiceApi
from services.console.adapters.staff_auth import HttpStaffAuth, StaffAuth
from services.console.adapters.staff_directory import StaffDirectory
from services.console.config import ConsoleConfig, load_config
from services.console.context import ConsoleContext


def bootstrap(
    config: ConsoleConfig | None = None,
    *,
    apis: HirfaApis | None = None,
    staff_auth: StaffAuth | None = None,
) -> ConsoleContext:
    config = config or load_config()
    timeout = config.http_timeout_seconds
    apis = apis or HirfaApis(
        onboarding=ServiceApi(config.onboarding_url, timeout),
        payments=ServiceApi(config.payments_url, timeout),
        accounts=ServiceApi(config.accounts_url, timeout),
    )
    return ConsoleContext(
        config=config,
        apis=apis,
        staff_auth=staff_auth or HttpStaffAuth(config.staff_sign_in_url, timeout),
        staff_directory=StaffDirectory(apis.onboarding),
    )
