"""What the console's views need, built once by ``bootstrap``."""

from __future__ import annotations

import dataclasses

from services.console.adapters.hirfa_api import HirfaApis
from services.console.adapters.staff_auth import StaffAuth
from services.console.adapters.staff_directory import StaffDirectory
from services.console.config import ConsoleConfig


@dataclasses.dataclass(frozen=True)
class ConsoleContext:
    config: ConsoleConfig
    apis: HirfaApis
    staff_auth: StaffAuth
    staff_directory: StaffDirectory
