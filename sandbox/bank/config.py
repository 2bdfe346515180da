"""The bank sandbox's settings, read from ``BANK_SANDBOX_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from shared.config import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


# Keyed by the annotation text: with postponed annotations, dataclass field types are strings.
_PARSERS = {"str": str, "int": int, "float": float, "bool": _parse_bool}


@dataclasses.dataclass(frozen=True)
class SandboxBankConfig:
    # repr=False: the config object may be logged or shown in a traceback; the secrets must not be.
    callback_secret: str = dataclasses.field(default="sandbox-bank-callback-secret", repr=False)
    api_key: str = dataclasses.field(default="sandbox-bank-api-key", repr=False)
    callback_delay_seconds: float = 1.0
    # Real banks sometimes deliver a callback twice; on by default so receivers are tested for it.
    duplicate_callbacks: bool = True
    callback_timeout_seconds: float = 5.0
    # Retries after the first attempt, on connection errors, timeouts, 408, 429 and 5xx.
    callback_retries: int = 5
    # First wait between attempts; it doubles on each retry, up to callback_max_backoff_seconds.
    callback_backoff_seconds: float = 0.5
    callback_max_backoff_seconds: float = 30.0

    ENV_PREFIX: ClassVar[str] = "BANK_SANDBOX_"

    def __post_init__(self) -> None:
        if not self.callback_secret:
            raise ConfigError(f"{self.ENV_PREFIX}CALLBACK_SECRET must not be empty")
        if not self.api_key:
            raise ConfigError(f"{self.ENV_PREFIX}API_KEY must not be empty")
        if self.callback_delay_seconds < 0:
            raise ConfigError(f"{self.ENV_PREFIX}CALLBACK_DELAY_SECONDS must not be negative")
        if self.callback_timeout_seconds <= 0:
            raise ConfigError(f"{self.ENV_PREFIX}CALLBACK_TIMEOUT_SECONDS must be positive")
        if self.callback_retries < 0:
            raise ConfigError(f"{self.ENV_PREFIX}CALLBACK_RETRIES must not be negative")
        if self.callback_backoff_seconds < 0 or self.callback_max_backoff_seconds < 0:
            raise ConfigError(f"{self.ENV_PREFIX}CALLBACK_*BACKOFF_SECONDS must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxBankConfig:
        """Read every field from ``BANK_SANDBOX_<FIELD>``; a variable that is not set keeps the default."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = cls.ENV_PREFIX + field.name.upper()
            raw = environ.get(name)
            if raw is None:
                continue
            try:
                values[field.name] = _PARSERS[str(field.type)](raw)
            except ValueError as exc:
                # The message names the variable, never its value: some of them are secrets.
                raise ConfigError(f"{name}: cannot parse as {field.type}") from exc
        return cls(**values)
