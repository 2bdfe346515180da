"""Money: integer minor units with an ISO 4217 currency. No float ever touches an amount."""

from __future__ import annotations

import dataclasses
from typing import Any

from marshmallow import Schema, ValidationError, fields

# ISO 4217 code -> (numeric code, minor-unit exponent). Only currencies Hirfa settles in.
CURRENCIES: dict[str, tuple[str, int]] = {
    "MAD": ("504", 2),
    "EUR": ("978", 2),
    "USD": ("840", 2),
}
DEFAULT_CURRENCY = "MAD"


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


@dataclasses.dataclass(frozen=True, order=False)
class Money:
    amount: int
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        # bool is an int subclass in Python; True is not an amount.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MoneyError("amount must be an integer number of minor units")
        if self.currency not in CURRENCIES:
            raise MoneyError(f"unsupported currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(0, currency)

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("can only combine Money with Money")
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def decimal_string(self) -> str:
        """The amount in major units as an exact decimal string (``1250`` centimes: ``"12.50"``)."""
        exponent = CURRENCIES[self.currency][1]
        sign = "-" if self.amount < 0 else ""
        whole, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{whole}.{minor:0{exponent}d}" if exponent else f"{sign}{whole}"

    def format(self) -> str:
        """Human display only (``12.50 MAD``); never parse this back."""
        return f"{self.decimal_string()} {self.currency}"

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}


class MinorUnits(fields.Integer):
    """An integer amount in minor units. Refuses floats (even 10.0), strings and booleans."""

    default_error_messages = {
        "invalid": "Must be an integer number of minor units (centimes), not a decimal or string.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._validated(value)


class CurrencyCode(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in CURRENCIES:
            raise ValidationError(f"Unsupported currency; one of {sorted(CURRENCIES)}.")
        return code


class MoneyField(fields.Field[Money]):
    """``{"amount": 1250, "currency": "MAD"}`` <-> ``Money``."""

    def _serialize(self, value: Money | None, attr: Any, obj: Any, **kwargs: Any) -> dict[str, Any] | None:
        return None if value is None else value.to_json()

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Money:
        if not isinstance(value, dict) or set(value) - {"amount", "currency"}:
            raise ValidationError("Must be an object {amount: integer minor units, currency}.")
        amount = value.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationError("amount must be an integer number of minor units.")
        try:
            return Money(amount, value.get("currency", DEFAULT_CURRENCY))
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None


class MoneySchema(Schema):
    """Output shape of an amount: ``{"amount": 1250, "currency": "MAD"}``."""

    amount = fields.Integer(required=True, metadata={"description": "Minor units (centimes)."})
    currency = fields.String(required=True, metadata={"example": "MAD"})


class MoneyWithDecimalSchema(MoneySchema):
    """An amount for people as well as programs: ``{"amount": 1250, "currency": "MAD",
    "amount_decimal": "12.50"}``. The decimal is a string, exact, never a float."""

    amount_decimal = fields.Method(
        "_decimal", metadata={"description": "In major units (dirhams), e.g. `12.50`."}
    )

    def _decimal(self, value: Any) -> str:
        money = value if isinstance(value, Money) else Money(value["amount"], value["currency"])
        return money.decimal_string()
