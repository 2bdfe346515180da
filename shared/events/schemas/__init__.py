"""One JSON Schema per event type and version, kept beside this module.

A schema file is named ``<type>.v<schema_version>.json``. Producers validate before writing to the
outbox; consumers validate before handling, so a contract drift is caught on both sides.

Every event is checked twice (produced, consumed), so each schema is compiled once to Python
(fastjsonschema) and an event that passes costs a few microseconds. The compiled check judges
formats (``date-time``, ``date``) with jsonschema's own format checker, so it accepts exactly what
jsonschema accepts (tests/unit/test_event_schemas.py compares the two on generated documents). A
refused event is checked again with jsonschema, for the message it has always carried.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema

SCHEMA_DIR = Path(__file__).parent

_FORMAT_CHECKER = jsonschema.FormatChecker()


class EventSchemaError(ValueError):
    """The event does not match its envelope or data schema, or its type is unknown."""


def _conforms(format_name: str) -> Callable[[str], bool]:
    """jsonschema's judgement of ``format_name``, remembered for the last few strings judged: the
    events a set-based write records together share their timestamps, so each of them is still
    judged, the same string once. (A string's judgement never changes.)"""

    @functools.lru_cache(maxsize=256)
    def judged(value: str) -> bool:
        return _FORMAT_CHECKER.conforms(value, format_name)

    return lambda value: judged(value) if type(value) is str else _FORMAT_CHECKER.conforms(value, format_name)


# Every format either library knows, judged by jsonschema's checker (which passes a format it has
# no checker for, as jsonschema does): the compiled check never uses regexes of its own.
_FORMATS = {
    name: _conforms(name)
    for name in {*_FORMAT_CHECKER.checkers, *fastjsonschema.draft07.CodeGeneratorDraft07.FORMAT_REGEXS}
}


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise EventSchemaError(f"no schema for {name}")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = _schema(name)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=_FORMAT_CHECKER)


@functools.cache
def _compiled(name: str) -> Callable[[Any], Any]:
    _validator(name)  # the schema itself is checked against its metaschema first
    return fastjsonschema.compile(_schema(name), formats=_FORMATS)


def known_event_types() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in SCHEMA_DIR.glob("*.v*.json"))


def _check(name: str, document: Any) -> None:
    try:
        _compiled(name)(document)
    except fastjsonschema.JsonSchemaValueException as refused:
        errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.path))
        if not errors:
            raise EventSchemaError(f"{name}: {refused.message}") from None
        where = "/".join(str(part) for part in errors[0].path) or "(root)"
        raise EventSchemaError(f"{name}: {where}: {errors[0].message}") from None


def validate_event(envelope: Any) -> None:
    """Raise ``EventSchemaError`` unless ``envelope`` is a valid event of a known type."""
    _check("envelope", envelope)
    _check(f"{envelope['type']}.v{envelope['schema_version']}", envelope["data"])
