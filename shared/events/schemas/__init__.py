"""One JSON Schema per event type and version, kept beside this module.

A schema file is named ``<type>.v<schema_version>.json``. Producers validate before writing to the
outbox; consumers validate before handling, so a contract drift is caught on both sides.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).parent


class EventSchemaError(ValueError):
    """The event does not match its envelope or data schema, or its type is unknown."""


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise EventSchemaError(f"no schema for {name}")
    schema = json.loads(path.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=jsonschema.FormatChecker())


def known_event_types() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in SCHEMA_DIR.glob("*.v*.json"))


def _check(name: str, document: Any) -> None:
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(part) for part in errors[0].path) or "(root)"
        raise EventSchemaError(f"{name}: {where}: {errors[0].message}")


def validate_event(envelope: Any) -> None:
    """Raise ``EventSchemaError`` unless ``envelope`` is a valid event of a known type."""
    _check("envelope", envelope)
    _check(f"{envelope['type']}.v{envelope['schema_version']}", envelope["data"])
