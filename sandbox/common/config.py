"""Settings of a sandbox, read from ``<PREFIX><FIELD>`` environment variables.

A sandbox's config is a frozen dataclass that also derives from ``EnvConfig`` and names its
``ENV_PREFIX``; ``from_env`` then reads each field from the variable of the same name in upper case.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn, Self

from shared.config import ConfigError, check_secret_fields

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


# Keyed by the annotation text: with postponed annotations, dataclass field types are strings.
_PARSERS = {"str": str, "int": int, "float": float, "bool": parse_bool}


class EnvConfig:
    ENV_PREFIX: ClassVar[str] = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every field from ``<ENV_PREFIX><FIELD>``; a variable that is not set keeps the default."""
        environ = os.environ if environ is None else environ
        # Secrets are declared with shared.config.secret_field: out of the repr, never echoed.
        check_secret_fields(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            name = cls.ENV_PREFIX + field.name.upper()
            raw = environ.get(name)
            if raw is None:
                continue
            type_name = field.type if isinstance(field.type, str) else field.type.__name__
            try:
                values[field.name] = _PARSERS[type_name](raw)
            except ValueError as exc:
                # The message names the variable, never its value: some of them are secrets.
                raise ConfigError(f"{name}: cannot parse as {type_name}") from exc
        return cls(**values)

    def refuse(self, setting: str, problem: str) -> NoReturn:
        """Raise the ``ConfigError`` for ``setting`` (a field name, or a pattern like ``callback_*``)."""
        raise ConfigError(f"{self.ENV_PREFIX}{setting.upper()} {problem}")
