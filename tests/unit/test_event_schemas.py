"""The compiled event schemas accept exactly what jsonschema accepts.

Events are checked with schemas compiled to Python (``shared.events.schemas``) for speed; the
schemas are written for JSON Schema 2020-12 and jsonschema is the reference. Documents are
generated from each schema, mostly valid with a mistake here and there (a missing or extra key, a
value of another type, an integer just outside its bounds, a string off its pattern, a malformed
or impossible date), and both must give the same verdict on every one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import fastjsonschema
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import EventSchemaError, make_event
from shared.events.schemas import SCHEMA_DIR, _compiled, _validator, known_event_types

SCHEMAS = ["envelope", *known_event_types()]

# The keywords the generator below exercises, and so the ones the comparison vouches for; a schema
# using another one fails here until the generator learns it.
KEYWORDS = {
    "$schema", "$id", "$defs", "$ref", "title", "description",
    "type", "enum", "const", "oneOf", "not", "properties", "required", "additionalProperties",
    "items", "minItems", "pattern", "minLength", "maxLength", "format", "minimum", "maximum",
}  # fmt: skip

# Values of every JSON type, for "the wrong type here".
ANY_JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([1.0, 2.5, -0.0, 1e20]),
    st.text(max_size=4),
    st.just({}),
    st.just([]),
)

DATE_TIMES = st.one_of(
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=1))])).map(
        lambda moment: moment.isoformat()
    ),
    st.sampled_from(
        [
            "2026-12-06T10:00:00Z",
            "2026-12-06t10:00:00z",
            "2026-12-06T10:00:00.123456+01:00",
            "2026-12-06T10:00:00",  # no offset
            "2026-12-06 10:00:00Z",
            "2026-02-30T10:00:00Z",  # no such day
            "2028-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",  # a leap year (divisible by 400)
            "2100-02-29T00:00:00Z",  # not one (divisible by 100)
            "2026-04-31T00:00:00Z",
            "2026-12-31T23:59:59Z\n",  # the expression's $ takes a final newline
            "2026-12-06T24:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-12-06T10:00:60Z",
            "2026-12-06",
        ]
    ),
)
DATES = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(["2026-12-06", "2026-02-30", "2026-1-06", "20261206", "2026-12-06T00:00:00Z", ""]),
)


def keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            children = value.values() if key in ("properties", "$defs") else [value]
            for child in children:
                found |= keywords(child)
    elif isinstance(node, list):
        for item in node:
            found |= keywords(item)
    return found


@functools.cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten: a document then has one mistake or two, and each decides."""
    return st.integers(0, 9).flatmap(lambda roll: odd if roll == 0 else usual)


def documents(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Documents for ``node``: mostly valid, sometimes not."""
    return mostly(_valid_ish(node, root), ANY_JSON) if node else ANY_JSON


def _valid_ish(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _valid_ish(target, root)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "oneOf" in node:
        return st.one_of([_valid_ish(choice, root) for choice in node["oneOf"]])
    if "not" in node:
        return ANY_JSON
    kinds = node.get("type")
    if isinstance(kinds, list):
        return st.one_of([_valid_ish({**node, "type": kind}, root) for kind in kinds])
    if kinds == "object":
        return _objects(node, root)
    if kinds == "array":
        least = node.get("minItems", 0)
        return st.lists(
            documents(node.get("items", {}), root), min_size=max(0, least - 1), max_size=least + 2
        )
    if kinds == "string":
        return _strings(node)
    if kinds == "integer":
        low = node.get("minimum", -5)
        high = node.get("maximum", low + 1_000_000)
        return st.one_of(st.integers(low - 2, high + 2), st.sampled_from([float(low), low + 0.5, True]))
    if kinds == "number":
        return st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False))
    if kinds == "boolean":
        return st.one_of(st.booleans(), st.sampled_from([0, 1]))
    if kinds == "null":
        return st.none()
    return ANY_JSON


def _objects(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties = node.get("properties", {})
    required = [name for name in node.get("required", []) if name in properties]
    optional = {name: documents(sub, root) for name, sub in properties.items() if name not in required}
    base = st.fixed_dictionaries(
        {name: documents(properties[name], root) for name in required}, optional=optional
    )

    def spoil(document: dict[str, Any], drop: str | None, extra: bool) -> dict[str, Any]:
        document = dict(document)
        if drop is not None:
            document.pop(drop, None)
        if extra:
            document["unexpected"] = 1
        return document

    drops = mostly(st.none(), st.sampled_from(required)) if required else st.none()
    return st.builds(spoil, base, drops, mostly(st.just(False), st.just(True)))


def _strings(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if node.get("format") == "date-time":
        return DATE_TIMES
    if node.get("format") == "date":
        return DATES
    short, long = node.get("minLength", 0), node.get("maxLength", 12)
    sized = st.text(min_size=max(0, short - 1), max_size=long + 1)
    if "pattern" in node:
        return mostly(st.from_regex(node["pattern"], fullmatch=True), sized)
    return sized


def test_every_schema_uses_only_keywords_the_comparison_covers():
    for name in SCHEMAS:
        assert keywords(schema(name)) <= KEYWORDS, name


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_schema_agrees_with_jsonschema(name, data):
    document = data.draw(documents(schema(name), schema(name)))
    try:
        _compiled(name)(document)
        compiled_accepts = True
    except fastjsonschema.JsonSchemaValueException:
        compiled_accepts = False
    reference_accepts = _validator(name).is_valid(document)
    assert compiled_accepts == reference_accepts, (name, document)


def test_a_refused_event_says_where_and_why_as_jsonschema_does():
    data = {
        "artisan_id": "art_01JD0000000000000000000000",
        "marketplace_id": "cli_demo",
        "kyc_tier": 7,
        "tier_cap": {"amount": 0, "currency": "MAD"},
        "region": "souss_massa",
        "craft": "carpets",
        "registered_at": "2026-11-23T10:00:00+00:00",
    }
    with pytest.raises(EventSchemaError) as refused:
        make_event("onboarding.artisan.registered", subject=data["artisan_id"], data=data)
    assert (
        str(refused.value) == "onboarding.artisan.registered.v1: kyc_tier: 7 is greater than the maximum of 3"
    )


def test_formats_are_judged_as_jsonschema_judges_them():
    validator = jsonschema.Draft202012Validator(schema("envelope"), format_checker=jsonschema.FormatChecker())
    for time in (
        "2026-02-30T10:00:00Z",
        "2026-12-06T10:00:00",
        "2026-12-06t10:00:00z",
        "2000-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2028-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-12-31T23:59:59Z\n",
    ):
        envelope = {
            "id": "evt_01JD0000000000000000000000",
            "type": "payments.payment.succeeded",
            "source": "payments",
            "subject": "art_01JD0000000000000000000000",
            "time": time,
            "schema_version": 1,
            "data": {},
        }
        try:
            _compiled("envelope")(envelope)
            compiled_accepts = True
        except fastjsonschema.JsonSchemaValueException:
            compiled_accepts = False
        assert compiled_accepts == validator.is_valid(envelope), time
