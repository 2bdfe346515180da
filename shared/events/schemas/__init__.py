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

import calendar
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema

SCHEMA_DIR = Path(__file__).parent

_FORMAT_CHECKER = jsonschema.FormatChecker()

# jsonschema judges ``date-time`` with rfc3339_validator when it is installed (it is: the lock
# pins it), and passes every string without it.
try:
    import rfc3339_validator  # type: ignore[import-untyped]

    _RFC3339: re.Pattern[str] | None = rfc3339_validator.RFC3339_REGEX
except ImportError:  # pragma: no cover
    _RFC3339 = None


class EventSchemaError(ValueError):
    """The event does not match its envelope or data schema, or its type is unknown."""


# The length of each month (February's in a common year).
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_date_time(value: str) -> bool:
    """jsonschema's ``date-time`` judgement of a string, which is ``rfc3339_validator``'s of it
    upper-cased, done here with the same regular expression: without the checker's two calls around
    it, and with the month's length from a table instead of ``calendar.monthrange`` (which works out
    the month's first weekday too), it takes two thirds of the time. Every event has a time of its
    own, and a payment its own ``succeeded_at``: two of these a posting."""
    assert _RFC3339 is not None
    found = _RFC3339.match(value.upper())
    if found is None:
        return False
    year, month, day = map(int, found.groups())
    if not year:  # year 0 is no date
        return False
    last = 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month]
    return 1 <= day <= last


def _conforms(format_name: str) -> Callable[[str], bool]:
    """jsonschema's judgement of ``format_name``, remembered for the last few strings judged: the
    events a set-based write records together share their timestamps, so each of them is still
    judged, the same string once. (A string's judgement never changes.)"""

    @functools.lru_cache(maxsize=256)
    def judged(value: str) -> bool:
        if format_name == "date-time" and _RFC3339 is not None:
            return _is_date_time(value)
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
