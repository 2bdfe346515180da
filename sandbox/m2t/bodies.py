"""The request bodies of the M2T API, validated; a fault is a 422 in M2T's error shape.

Codes: ``invalid_body`` (not a JSON object), ``missing_field``, ``invalid_field`` (wrong type, empty,
too long, not an absolute http(s) URL, not a Moroccan mobile...), ``unsupported_currency`` (only
``MAD``); ``param`` names the field. The first fault found is reported.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from sandbox.common.bodies import amount, json_object
from sandbox.common.bodies import text as common_text
from sandbox.common.errors import ApiError
from sandbox.m2t.wallets import MOROCCAN_MOBILE

CURRENCIES = ("MAD",)
METHODS = ("card", "mobile_wallet")
DISPUTE_REASONS = ("fraudulent", "product_not_received", "duplicate", "other")
DISPUTE_OUTCOMES = ("won", "lost")
_MAX_LENGTHS = {
    "reference": 100,
    "description": 500,
    "card_token": 100,
    "return_url": 2048,
    "callback_url": 2048,
}


def text(payload: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    return common_text(payload, name, required=required, limit=_MAX_LENGTHS.get(name))


def one_of(
    payload: dict[str, Any], name: str, choices: tuple[str, ...], *, default: str | None = None
) -> str:
    value = payload.get(name, default)
    if value is None:
        raise ApiError(422, "missing_field", f"{name} is required.", param=name)
    if value not in choices:
        raise ApiError(422, "invalid_field", f"{name} must be one of: {', '.join(choices)}.", param=name)
    return value


def url(payload: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = text(payload, name, required=required)
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ApiError(422, "invalid_field", f"{name} must be an absolute http(s) URL.", param=name)
    return value


@dataclasses.dataclass(frozen=True)
class TransactionRequest:
    reference: str
    amount: int
    currency: str
    method: str
    capture: bool
    callback_url: str
    card_token: str | None = None
    phone: str | None = None
    return_url: str | None = None
    description: str | None = None


def parse_transaction(payload: Any) -> TransactionRequest:
    body = json_object(payload)
    reference = text(body, "reference")
    value = amount(body)
    currency = text(body, "currency")
    if currency not in CURRENCIES:
        raise ApiError(
            422,
            "unsupported_currency",
            f"currency must be one of: {', '.join(CURRENCIES)}.",
            param="currency",
        )
    method = one_of(body, "method", METHODS)
    card_token = phone = None
    if method == "card":
        card_token = text(body, "card_token")
    else:
        phone = text(body, "phone")
        if not MOROCCAN_MOBILE.fullmatch(phone or ""):
            raise ApiError(
                422,
                "invalid_field",
                "phone must be a Moroccan mobile number in E.164, like +212612345678.",
                param="phone",
            )
    capture = body.get("capture", True)
    if not isinstance(capture, bool):
        raise ApiError(422, "invalid_field", "capture must be true or false.", param="capture")
    return TransactionRequest(
        reference=reference or "",
        amount=value or 0,
        currency=currency or "",
        method=method,
        capture=capture,
        callback_url=url(body, "callback_url") or "",
        card_token=card_token,
        phone=phone,
        return_url=url(body, "return_url", required=False),
        description=text(body, "description", required=False),
    )


def parse_capture_amount(payload: Any) -> int | None:
    return amount(json_object(payload, optional=True), required=False)


@dataclasses.dataclass(frozen=True)
class RefundRequest:
    reference: str
    amount: int


def parse_refund(payload: Any) -> RefundRequest:
    body = json_object(payload)
    return RefundRequest(reference=text(body, "reference") or "", amount=amount(body) or 0)


@dataclasses.dataclass(frozen=True)
class DisputeRequest:
    amount: int | None
    reason: str


def parse_dispute(payload: Any) -> DisputeRequest:
    body = json_object(payload, optional=True)
    return DisputeRequest(
        amount=amount(body, required=False),
        reason=one_of(body, "reason", DISPUTE_REASONS, default="fraudulent"),
    )


def parse_dispute_outcome(payload: Any) -> str:
    return one_of(json_object(payload), "outcome", DISPUTE_OUTCOMES)
