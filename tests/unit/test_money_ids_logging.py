"""The small shared building blocks: money, ids, masking, problem bodies."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from shared.errors import IdempotencyKeyReuse, ValidationFailed
from shared.ids import has_prefix, new_id, reserve_ulids, ulid_in_block, ulid_tail_sql
from shared.logging import JsonFormatter, mask_sensitive, request_id_var
from shared.money import MinorUnits, Money, MoneyError, MoneyField, MoneyWithDecimalSchema


class TestMoney:
    def test_adds_same_currency(self):
        assert Money(1250) + Money(50) == Money(1300, "MAD")

    def test_refuses_mixed_currencies(self):
        with pytest.raises(MoneyError):
            Money(1, "MAD") + Money(1, "EUR")

    @pytest.mark.parametrize("amount", [10.0, 10.5, "10", True, None])
    def test_refuses_non_integer_amounts(self, amount):
        with pytest.raises(MoneyError):
            Money(amount)

    def test_refuses_unknown_currency(self):
        with pytest.raises(MoneyError):
            Money(1, "XYZ")

    def test_formats_for_humans(self):
        assert Money(123456).format() == "1234.56 MAD"
        assert Money(-5).format() == "-0.05 MAD"

    def test_the_decimal_string_is_exact(self):
        assert [Money(amount).decimal_string() for amount in (0, 5, 1250, -1250, 10**17 + 1)] == [
            "0.00",
            "0.05",
            "12.50",
            "-12.50",
            "1000000000000000.01",
        ]
        assert MoneyWithDecimalSchema().dump({"amount": 13_500, "currency": "MAD"}) == {
            "amount": 13_500,
            "currency": "MAD",
            "amount_decimal": "135.00",
        }

    @given(st.integers(), st.integers())
    def test_addition_is_exact_for_any_integers(self, a, b):
        assert (Money(a) + Money(b)).amount == a + b


class AmountSchema(Schema):
    amount = MinorUnits(required=True)
    price = MoneyField()


class TestMoneyFields:
    @pytest.mark.parametrize("bad", [10.0, 10.5, "100", True, [1]])
    def test_minor_units_refuse_floats_strings_and_booleans(self, bad):
        with pytest.raises(ValidationError) as error:
            AmountSchema().load({"amount": bad})
        assert "amount" in error.value.messages

    def test_minor_units_accept_integers(self):
        assert AmountSchema().load({"amount": 1250}) == {"amount": 1250}

    def test_money_field_round_trip(self):
        loaded = AmountSchema().load({"amount": 1, "price": {"amount": 1250, "currency": "MAD"}})
        assert loaded["price"] == Money(1250, "MAD")
        assert AmountSchema().dump(loaded)["price"] == {"amount": 1250, "currency": "MAD"}

    @pytest.mark.parametrize(
        "bad",
        [{"amount": 12.5, "currency": "MAD"}, {"amount": 1, "currency": "XXX"}, {"amount": 1, "extra": 1}, 5],
    )
    def test_money_field_refuses_bad_shapes(self, bad):
        with pytest.raises(ValidationError):
            AmountSchema().load({"amount": 1, "price": bad})


class TestIds:
    def test_prefix_and_shape(self):
        value = new_id("art")
        assert has_prefix(value, "art")
        assert not has_prefix(value, "pay")
        assert not has_prefix("art_short", "art")

    def test_ids_sort_by_creation(self):
        ids = [new_id("evt") for _ in range(2000)]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)


class TestMasking:
    @pytest.mark.parametrize(
        "text, secret",
        [
            ("card 4111 1111 1111 1111 used", "4111 1111 1111 1111"),
            ("card 4111111111111111 used", "4111111111111111"),
            ("call +212612345678", "612345678"),
            ("call 0612345678 now", "0612345678"),
            ("rib 011780000012345678901234", "0117800000123456789"),
            ("cin AB123456 checked", "AB123456"),
        ],
    )
    def test_sensitive_values_never_survive(self, text, secret):
        assert secret not in mask_sensitive(text)

    def test_ordinary_numbers_and_ids_are_kept(self):
        text = "amount 125000 order 2026-11-23 id art_01JD8Z6W5Q0T2C7S9K3M4N5P6R"
        assert mask_sensitive(text) == text

    def test_json_log_lines_carry_request_id_and_are_masked(self):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("0612345678",), None)
        record.cin = "AB123456"
        token = request_id_var.set("req_test_123456")
        try:
            line = json.loads(JsonFormatter("onboarding").format(record))
        finally:
            request_id_var.reset(token)
        assert line["request_id"] == "req_test_123456"
        assert "0612345678" not in line["message"]
        assert line["cin"] != "AB123456"


class TestProblems:
    def test_problem_body_has_stable_fields(self):
        body = IdempotencyKeyReuse(param="Idempotency-Key").to_problem(request_id="req_1")
        assert body["code"] == "idempotency_key_reuse"
        assert body["status"] == 409
        assert body["type"].endswith("/idempotency_key_reuse")
        assert body["param"] == "Idempotency-Key"
        assert body["request_id"] == "req_1"

    def test_validation_problem_lists_every_field(self):
        errors = [{"param": "a", "message": "bad"}, {"param": "b", "message": "bad"}]
        assert ValidationFailed(errors=errors).to_problem()["errors"] == errors


def test_a_reserved_block_of_ids_is_well_formed_in_order_and_never_handed_out_again():
    before = new_id("je")
    head, first = reserve_ulids(1000)
    block = [f"je_{ulid_in_block(head, first + i)}" for i in range(1000)]
    after = new_id("je")
    assert all(has_prefix(id_, "je") for id_ in block)
    assert [before, *block, after] == sorted({before, *block, after})  # increasing, none repeated
    # SQL spells the block's tails as Python does.
    spelled = sqlite3.connect(":memory:").execute(f"SELECT {ulid_tail_sql(str(first + 999))}").fetchone()[0]
    assert f"je_{head}{spelled}" == block[-1]
