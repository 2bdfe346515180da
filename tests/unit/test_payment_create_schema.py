"""``PaymentCreateSchema.load`` reads a plainly valid creation body directly (it runs in every
``POST /v1/payments``): it loads exactly what marshmallow loads, and whatever it is not sure of,
every refusal included, is still marshmallow's, with marshmallow's messages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from services.payments.api.schemas import MAX_AMOUNT, PaymentCreateSchema, _plainly_valid_creation

SCHEMA = PaymentCreateSchema()

VALID = {
    "artisan_id": "art_01JD8Z6W5Q0T2C7S9K3M4N5P6R",
    "amount": 15_000,
    "currency": "MAD",
    "application_fee": 1_500,
    "payment_method_type": "card",
}


def marshmallow_load(data: Any) -> Any:
    """What marshmallow itself loads (or the messages it refuses with)."""
    try:
        return Schema.load(SCHEMA, data)
    except ValidationError as error:
        return ("refused", error.messages)


def schema_load(data: Any) -> Any:
    try:
        return SCHEMA.load(data)
    except ValidationError as error:
        return ("refused", error.messages)


@pytest.mark.parametrize(
    "body",
    [
        VALID,
        {**VALID, "application_fee": 0, "capture_method": "manual", "payment_method_type": "mobile_wallet"},
        {**VALID, "description": "Tapis de Taznakht", "order_reference": "ORD-1", "metadata": {"cart": "42"}},
        {**VALID, "description": None, "order_reference": None, "metadata": {}},
        {key: value for key, value in VALID.items() if key != "application_fee"},
        {
            **VALID,
            "amount": MAX_AMOUNT,
            "application_fee": MAX_AMOUNT,
            "description": "",
            "metadata": {"k": ""},
        },
    ],
)
def test_a_plainly_valid_body_is_read_directly_as_marshmallow_loads_it(body):
    assert _plainly_valid_creation(body) is not None
    assert SCHEMA.load(body) == marshmallow_load(body)


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 10.0},
        {"amount": True},
        {"amount": "15000"},
        {"amount": 0},
        {"amount": MAX_AMOUNT + 1},
        {"application_fee": None},
        {"application_fee": -1},
        {"currency": "XXX"},
        {"currency": None},
        {"artisan_id": ""},
        {"artisan_id": "a" * 41},
        {"payment_method_type": "cash"},
        {"payment_method_type": ["card"]},
        {"capture_method": None},
        {"description": "d" * 501},
        {"order_reference": ""},
        {"metadata": None},
        {"metadata": {"": "x"}},
        {"metadata": {"k": 1}},
        {"metadata": {f"k{i}": "v" for i in range(21)}},
        {"unexpected": 1},
    ],
)
def test_anything_else_is_left_to_marshmallow_and_refused_in_its_words(changes):
    body = {**VALID, **changes}
    assert _plainly_valid_creation(body) is None
    refused = schema_load(body)
    assert refused[0] == "refused"
    assert refused == marshmallow_load(body)


def test_a_body_missing_a_required_field_is_refused_as_marshmallow_refuses_it():
    body = {key: value for key, value in VALID.items() if key != "artisan_id"}
    assert (
        schema_load(body)
        == marshmallow_load(body)
        == ("refused", {"artisan_id": ["Missing data for required field."]})
    )
    assert schema_load([VALID]) == marshmallow_load([VALID])


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=MAX_AMOUNT + 2),
    st.sampled_from([0, 1, 100, 15_000, 10.0, 1.5]),
    st.text(max_size=45),
    st.sampled_from(["MAD", "EUR", "XXX", "card", "mobile_wallet", "automatic", "manual", "", "a" * 201]),
    st.dictionaries(st.text(max_size=41), st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from([*VALID, "capture_method", "description", "metadata", "order_reference", "other"]),
        _VALUES,
        max_size=4,
    ),
    dropped=st.sets(st.sampled_from(list(VALID)), max_size=2),
)
def test_any_body_loads_or_is_refused_exactly_as_marshmallow_decides(changes, dropped):
    body = {key: value for key, value in {**VALID, **changes}.items() if key not in dropped}
    assert schema_load(body) == marshmallow_load(body)
