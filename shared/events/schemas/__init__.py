"""One JSON Schema per event type and version, kept beside this module.

A schema file is named ``<type>.v<schema_version>.json``. Producers validate before writing to the
outbox; consumers validate before handling, so a contract drift is caught on both sides.

Every event is checked twice on its way (by its producer and by each consumer), so the check is on
the hot path of every posting: schemas are compiled once into jsonschema-rs validators (formats
checked, as ``jsonschema``'s ``FormatChecker`` does), about a hundred times faster than
interpreting them; ``jsonschema`` itself still checks each schema against its metaschema when it
is loaded.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

SCHEMA_DIR = Path(__file__).parent


class EventSchemaError(ValueError):
    """The event does not match its envelope or data schema, or its type is unknown."""


@functools.cache
def _validator(name: str) -> jsonschema_rs.Validator:
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise EventSchemaError(f"no schema for {name}")
    schema = json.loads(path.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    # The schemas refer only to themselves: nothing is ever fetched.
    return jsonschema_rs.validator_for(schema, validate_formats=True, ignore_unknown_formats=False)


def known_event_types() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in SCHEMA_DIR.glob("*.v*.json"))


def _check(name: str, document: Any) -> None:
    validator = _validator(name)
    if validator.is_valid(document):
        return
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(part) for part in e.instance_path])
    where = "/".join(str(part) for part in errors[0].instance_path) or "(root)"
    raise EventSchemaError(f"{name}: {where}: {errors[0].message}")


def validate_event(envelope: Any) -> None:
    """Raise ``EventSchemaError`` unless ``envelope`` is a valid event of a known type."""
    _check("envelope", envelope)
    _check(f"{envelope['type']}.v{envelope['schema_version']}", envelope["data"])
