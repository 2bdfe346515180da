"""Console settings (``CONSOLE_*`` environment variables).

The console is not a service like the other three: no database, no broker. Its settings are its
own dataclass, read the same way (the ``CONSOLE_`` variable first, then the shared one).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Self

from shared.config import (
    CONSOLE_PORT,
    SERVICE_PORTS,
    ConfigError,
    _coerce,
    check_secret_fields,
    is_loopback_url,
    public_field,
    secret_field,
)

__all__ = ["CONSOLE_PORT", "LANGUAGES", "ConsoleConfig", "load_config"]
LANGUAGES = ("fr", "en", "ar")
# Development only: production must set its own (see validate).
DEVELOPMENT_SECRET_KEY = "development-console-secret-key-not-for-production"


def _local(service: str) -> str:
    return f"http://127.0.0.1:{SERVICE_PORTS[service]}"


@dataclasses.dataclass(frozen=True)
class ConsoleConfig:
    environment: str = "development"
    # The three services' public APIs, called with the signed-in person's own token.
    onboarding_url: str = _local("onboarding")
    payments_url: str = _local("payments")
    accounts_url: str = _local("accounts")
    # Where staff sign in and enrol (onboarding, the token issuer, unless told otherwise).
    staff_auth_url: str = ""
    http_timeout_seconds: float = 5.0
    # Encrypts and signs the session cookie (it holds the staff token): 32+ random characters.
    secret_key: str = secret_field(DEVELOPMENT_SECRET_KEY)
    # Secure cookies need HTTPS; plain http://localhost in development turns this off.
    secure_cookies: bool = True
    # Back to the sign-in page after this long without a request.
    idle_timeout_seconds: int = 900
    default_language: str = "fr"
    log_level: str = "INFO"
    log_json: bool = True
    # A page of the review queue fetches each case's artisan (for the name): this many at most.
    review_page_size: int = 50
    session_cookie_name: str = public_field("hirfa_console")

    def __post_init__(self) -> None:
        check_secret_fields(type(self))

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def staff_sign_in_url(self) -> str:
        return self.staff_auth_url or self.onboarding_url

    def validate(self) -> None:
        if self.default_language not in LANGUAGES:
            raise ConfigError(f"CONSOLE_DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}")
        if self.idle_timeout_seconds < 1:
            raise ConfigError("CONSOLE_IDLE_TIMEOUT_SECONDS must be at least 1")
        if len(self.secret_key) < 32:
            raise ConfigError("CONSOLE_SECRET_KEY must be at least 32 characters")
        if not self.is_production:
            return
        if self.secret_key == DEVELOPMENT_SECRET_KEY:
            raise ConfigError("CONSOLE_SECRET_KEY must be set in production")
        if not self.secure_cookies:
            raise ConfigError("CONSOLE_SECURE_COOKIES cannot be off in production")
        for name in ("onboarding_url", "payments_url", "accounts_url"):
            if is_loopback_url(getattr(self, name)):
                raise ConfigError(f"CONSOLE_{name.upper()} points at this machine in production")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            own = "CONSOLE_" + field.name.upper()
            setting = own if own in environ else field.name.upper()
            if setting in environ:
                values[field.name] = _coerce(field, environ[setting], setting)
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config


def load_config(**overrides: Any) -> ConsoleConfig:
    return ConsoleConfig.from_env(**overrides)
