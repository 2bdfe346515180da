"""What an artisan is told, and when: one notification per event about their money or their file.

Pure rules, no database. ``draft_for`` reads an event (from payments, accounts or onboarding) and
says which message it calls for, with its values; ``render`` writes that message in the artisan's
language from the catalogue (``shared/locales``), amounts and dates in CLDR form. ``sms_text`` and
``sms_segments`` say what goes over SMS and how many segments it takes (GSM-7: 160 characters in
one segment, 153 per part; anything outside GSM-7, Arabic for one, UCS-2: 70, 67 per part).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from shared.i18n import N_, format_datetime, format_money, translate
from shared.money import Money

# Statuses of one notification: queued (waiting for its send, first or retried), sent (the
# provider accepted it), delivered / failed (the provider's receipt, or failed after the last try).
QUEUED, SENT, DELIVERED, FAILED = "queued", "sent", "delivered", "failed"
STATUSES = (QUEUED, SENT, DELIVERED, FAILED)
# A receipt may arrive before, after or twice: these moves are allowed, anything else is ignored.
RECEIPT_MOVES = {(SENT, DELIVERED), (SENT, FAILED), (QUEUED, DELIVERED), (QUEUED, FAILED)}

SMS, INBOX = "sms", "inbox"

# One message id per kind (and per reason where the reason changes what to do).
MESSAGES: Mapping[str, str] = {
    "payment_received": N_(
        "Hirfa: payment of {amount} from {marketplace} received. Pending, available in a few days."
    ),
    "funds_available": N_("Hirfa: {amount} is now available. You can ask for a payout in the app."),
    "payout_sent": N_("Hirfa: payout of {amount} sent to your account ending {rib_last4}."),
    "payout_paid": N_("Hirfa: {amount} has arrived in your account ending {rib_last4}."),
    "payout_failed.account_closed": N_(
        "Hirfa: payout of {amount} failed: your bank account is closed. "
        "Add another account in the app. The money is back in your balance."
    ),
    "payout_failed.invalid_rib": N_(
        "Hirfa: payout of {amount} failed: the account number (RIB) is wrong. "
        "Correct it in the app. The money is back in your balance."
    ),
    "payout_failed.name_mismatch": N_(
        "Hirfa: payout of {amount} failed: the account is not in your name. "
        "Add an account in your name. The money is back in your balance."
    ),
    "payout_failed.bank_unavailable": N_(
        "Hirfa: payout of {amount} failed: the bank was unavailable. "
        "Ask again later. The money is back in your balance."
    ),
    # A failure code this version does not know yet: the money is back, the artisan checks their account.
    "payout_failed.other": N_(
        "Hirfa: payout of {amount} failed. The money is back in your balance. Check your bank account in the app."
    ),
    "payout_failed.held": N_(
        "Hirfa: payout of {amount} failed. The money is held for a check: Hirfa support will call you."
    ),
    "kyc_tier_up": N_("Hirfa: your account is now level {tier}. You can receive up to {cap}."),
    "kyc_documents_needed.document_unreadable": N_(
        "Hirfa: your ID photos could not be read. Please send clear new photos in the app."
    ),
    "kyc_documents_needed.document_expired": N_(
        "Hirfa: your ID card has expired. Please send photos of a valid card in the app."
    ),
    "kyc_rejected.remediable": N_(
        "Hirfa: your identity check was not accepted. Check your details and send your documents again."
    ),
    "kyc_rejected.final": N_(
        "Hirfa: your identity check was refused: your account cannot receive money. Call Hirfa support."
    ),
    "device_signed_in": N_(
        "Hirfa: a new phone signed in to your account on {signed_in_at}. Not you? Call Hirfa support now."
    ),
}

# Rejections the artisan fixes by sending documents again.
DOCUMENT_REASONS = ("document_unreadable", "document_expired")
DISQUALIFYING_REASONS = ("sanctions_match", "document_forged", "identity_fraud")


@dataclasses.dataclass(frozen=True)
class Draft:
    """A notification decided but not written yet: whom, which message, with which values
    (``Money`` and ``datetime`` values are formatted per language when rendered)."""

    artisan_id: str
    kind: str
    message: str  # a key of MESSAGES
    params: Mapping[str, Any]


def _money(value: Mapping[str, Any]) -> Money:
    return Money(int(value["amount"]), str(value["currency"]))


def _moment(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _payment_received(data: Mapping[str, Any], name_of: Callable[[str], str]) -> Draft:
    return Draft(
        data["artisan_id"],
        "payment_received",
        "payment_received",
        {"amount": _money(data["net"]), "marketplace": name_of(data["marketplace_id"])},
    )


def _entry_posted(data: Mapping[str, Any], _name_of: Callable[[str], str]) -> Draft | None:
    artisan_id = data.get("artisan_id")
    if data.get("cause") != "release" or not artisan_id:
        return None
    # The artisan's available account is credited (a negative line) with what was released.
    credited = [
        line
        for line in data["lines"]
        if line["owner_type"] == "artisan" and line["owner_id"] == artisan_id and line["kind"] == "available"
    ]
    amount = -sum(int(line["amount"]) for line in credited)
    if amount <= 0:
        return None
    currency = str(credited[0]["currency"])
    return Draft(artisan_id, "funds_available", "funds_available", {"amount": Money(amount, currency)})


def _payout(kind: str) -> Callable[[Mapping[str, Any], Callable[[str], str]], Draft]:
    def draft(data: Mapping[str, Any], _name_of: Callable[[str], str]) -> Draft:
        params = {"amount": _money(data["amount"]), "rib_last4": data["rib_last4"]}
        if kind != "payout_failed":
            return Draft(data["artisan_id"], kind, kind, params)
        reason = data["failure_code"] if data.get("funds_returned", True) else "held"
        message = f"payout_failed.{reason}"
        return Draft(
            data["artisan_id"], kind, message if message in MESSAGES else "payout_failed.other", params
        )

    return draft


def _tier_changed(data: Mapping[str, Any], _name_of: Callable[[str], str]) -> Draft | None:
    if data["direction"] != "up":
        return None
    params = {"tier": data["kyc_tier"], "cap": _money(data["tier_cap"])}
    return Draft(data["artisan_id"], "kyc_tier_up", "kyc_tier_up", params)


def _kyc_rejected(data: Mapping[str, Any], _name_of: Callable[[str], str]) -> Draft | None:
    reason = data["reason_code"]
    final = data["kyc_status"] == "rejected" or reason in DISQUALIFYING_REASONS
    if data["review_kind"] == "bank_account_claim" and not final:
        return None  # only the bank-account claim was refused; the artisan's file stands
    if final:
        return Draft(data["artisan_id"], "kyc_rejected", "kyc_rejected.final", {})
    if reason in DOCUMENT_REASONS:
        return Draft(data["artisan_id"], "kyc_documents_needed", f"kyc_documents_needed.{reason}", {})
    return Draft(data["artisan_id"], "kyc_rejected", "kyc_rejected.remediable", {})


def _device_signed_in(data: Mapping[str, Any], _name_of: Callable[[str], str]) -> Draft:
    params = {"signed_in_at": _moment(data["signed_in_at"])}
    return Draft(data["artisan_id"], "device_signed_in", "device_signed_in", params)


# The events that concern an artisan, by type.
DRAFTERS: Mapping[str, Callable[[Mapping[str, Any], Callable[[str], str]], Draft | None]] = {
    "payments.payment.succeeded": _payment_received,
    "accounts.ledger.entry_posted": _entry_posted,
    "accounts.payout.in_transit": _payout("payout_sent"),
    "accounts.payout.paid": _payout("payout_paid"),
    "accounts.payout.failed": _payout("payout_failed"),
    "onboarding.artisan.kyc_tier_changed": _tier_changed,
    "onboarding.artisan.kyc_rejected": _kyc_rejected,
    "onboarding.artisan.device_signed_in": _device_signed_in,
}
KINDS = (
    "payment_received",
    "funds_available",
    "payout_sent",
    "payout_paid",
    "payout_failed",
    "kyc_tier_up",
    "kyc_documents_needed",
    "kyc_rejected",
    "device_signed_in",
)


def draft_for(event_type: str, data: Mapping[str, Any], name_of: Callable[[str], str]) -> Draft | None:
    """The notification ``event_type`` calls for, or ``None``; ``name_of`` names a marketplace."""
    drafter = DRAFTERS.get(event_type)
    return drafter(data, name_of) if drafter else None


def render(draft: Draft, language: str) -> str:
    """The message in ``language``: one catalogued sentence, values in CLDR form."""
    values: dict[str, Any] = {}
    for name, value in draft.params.items():
        if isinstance(value, Money):
            values[name] = format_money(value.amount, value.currency, language)
        elif isinstance(value, dt.datetime):
            values[name] = format_datetime(value, language)
        else:
            values[name] = value
    return translate(language, MESSAGES[draft.message], **values)


# GSM 03.38: the basic set (one septet each) and its extension table (two septets each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
# CLDR puts no-break spaces in amounts (1 234,50 MAD); over SMS a plain space keeps GSM-7.
_SMS_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


def sms_text(text: str) -> str:
    """The text as it goes over SMS: CLDR's no-break spaces become plain spaces."""
    return text.translate(_SMS_SPACES)


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes once ``sms_text`` has been applied."""
    text = sms_text(text)
    if is_gsm7(text):
        length = sum(2 if char in GSM7_EXTENSION else 1 for char in text)
        return 1 if length <= 160 else math.ceil(length / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
