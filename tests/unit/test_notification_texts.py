"""What artisans read: one message per money or KYC event, in French, Arabic and English, amounts in
CLDR form, and how many SMS segments each takes.

The rendered texts are snapshot-tested (``snapshots/notification_texts.json``): a change of wording
shows up in review. After an intended change: ``UPDATE_SNAPSHOTS=1 pytest tests/unit/test_notification_texts.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.onboarding.domain.notifications import (
    DRAFTERS,
    MESSAGES,
    draft_for,
    is_gsm7,
    render,
    sms_segments,
    sms_text,
)
from shared.errors import HirfaError
from shared.i18n import (
    format_money,
    negotiate,
    normalize_language,
    translate,
    translate_text,
    translations,
)

SNAPSHOT = Path(__file__).parent / "snapshots" / "notification_texts.json"
ARTISAN = "art_01JH0000000000000000000000"
PAYOUT = {
    "payout_id": "po_01JH0000000000000000000000",
    "artisan_id": ARTISAN,
    "amount": {"amount": 123450, "currency": "MAD"},
    "rib_last4": "4821",
}


def entry_posted(cause: str, released: int) -> dict:
    return {
        "artisan_id": ARTISAN,
        "cause": cause,
        "lines": [
            {
                "owner_type": "artisan",
                "owner_id": ARTISAN,
                "kind": "pending",
                "amount": released,
                "currency": "MAD",
            },
            {
                "owner_type": "artisan",
                "owner_id": ARTISAN,
                "kind": "available",
                "amount": -released,
                "currency": "MAD",
            },
        ],
    }


def rejected(reason: str, status: str = "active", review_kind: str = "tier_upgrade") -> dict:
    return {"artisan_id": ARTISAN, "reason_code": reason, "kyc_status": status, "review_kind": review_kind}


# One example of every message an artisan can receive: (name, event type, event data).
EXAMPLES = [
    (
        "payment_received",
        "payments.payment.succeeded",
        {"artisan_id": ARTISAN, "marketplace_id": "cli_souk", "net": {"amount": 123450, "currency": "MAD"}},
    ),
    ("funds_available", "accounts.ledger.entry_posted", entry_posted("release", 123450)),
    ("payout_sent", "accounts.payout.in_transit", PAYOUT),
    ("payout_paid", "accounts.payout.paid", PAYOUT),
    *[
        (
            f"payout_failed.{code}",
            "accounts.payout.failed",
            {**PAYOUT, "failure_code": code, "funds_returned": True},
        )
        for code in ("account_closed", "invalid_rib", "name_mismatch", "bank_unavailable")
    ],
    (
        "payout_failed.other",
        "accounts.payout.failed",
        {**PAYOUT, "failure_code": "a_code_from_the_future", "funds_returned": True},
    ),
    (
        "payout_failed.held",
        "accounts.payout.failed",
        {**PAYOUT, "failure_code": "account_closed", "funds_returned": False},
    ),
    (
        "kyc_tier_up",
        "onboarding.artisan.kyc_tier_changed",
        {
            "artisan_id": ARTISAN,
            "direction": "up",
            "kyc_tier": 2,
            "tier_cap": {"amount": 500000, "currency": "MAD"},
        },
    ),
    (
        "kyc_documents_needed.document_unreadable",
        "onboarding.artisan.kyc_rejected",
        rejected("document_unreadable"),
    ),
    (
        "kyc_documents_needed.document_expired",
        "onboarding.artisan.kyc_rejected",
        rejected("document_expired"),
    ),
    ("kyc_rejected.remediable", "onboarding.artisan.kyc_rejected", rejected("identity_mismatch")),
    ("kyc_rejected.final", "onboarding.artisan.kyc_rejected", rejected("document_forged", "rejected")),
    (
        "device_signed_in",
        "onboarding.artisan.device_signed_in",
        {"artisan_id": ARTISAN, "device_id": "dev_1", "signed_in_at": "2026-12-06T14:05:00Z"},
    ),
]

# Messages longer than one SMS segment in that language, for the example amounts (README,
# "Notifications"): in Arabic (UCS-2, 70 characters a segment) a failed payout says what happened,
# what to do and where the money is, and a sign-in alert carries the date: two segments each.
# Every French and English message fits in one GSM-7 segment (160 characters).
MULTI_SEGMENT = {
    "fr": set(),
    "ar": {
        "payout_failed.account_closed",
        "payout_failed.invalid_rib",
        "payout_failed.name_mismatch",
        "payout_failed.bank_unavailable",
        "device_signed_in",
    },
    "en": set(),
}


def rendered() -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = {}
    for name, event_type, data in EXAMPLES:
        draft = draft_for(event_type, data, {"cli_souk": "Souk Digital"}.__getitem__)
        assert draft is not None and draft.message == name, name
        texts[name] = {language: render(draft, language) for language in ("fr", "ar", "en")}
    return texts


def test_every_message_has_an_example():
    assert {name for name, _, _ in EXAMPLES} == set(MESSAGES)
    assert {event_type for _, event_type, _ in EXAMPLES} == set(DRAFTERS)


def test_the_rendered_texts_match_the_snapshot():
    texts = rendered()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(texts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert texts == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_the_french_payment_message_names_the_amount_and_the_marketplace():
    text = rendered()["payment_received"]["fr"]
    assert text == (
        "Hirfa : paiement de 1\u202f234,50\u00a0MAD de Souk Digital en attente, disponible dans quelques jours."
    )
    assert sms_text(text).startswith("Hirfa : paiement de 1 234,50 MAD de Souk Digital")


def test_the_arabic_payment_message_is_arabic_with_the_moroccan_amount():
    text = rendered()["payment_received"]["ar"]
    assert text.startswith("حرفة: دفعة") and "Souk Digital" in text
    assert format_money(123450, "MAD", "ar") in text


def test_amounts_take_the_cldr_form_of_each_language():
    assert format_money(123450, "MAD", "fr") == "1\u202f234,50\u00a0MAD"
    # CLDR ar_MA: dot for thousands, comma for decimals, the dirham sign, right-to-left marks.
    assert format_money(123450, "MAD", "ar") == "\u200f1.234,50\u00a0د.م.\u200f"
    assert format_money(123450, "MAD", "en") == "MAD1,234.50"
    assert format_money(5, "MAD", "fr") == "0,05\u00a0MAD"


@pytest.mark.parametrize("language", ["fr", "ar", "en"])
def test_which_messages_need_more_than_one_sms_segment(language):
    texts = rendered()
    longer = {name for name, by_language in texts.items() if sms_segments(by_language[language]) > 1}
    assert longer == MULTI_SEGMENT[language]
    assert all(sms_segments(by_language[language]) <= 2 for by_language in texts.values())


@pytest.mark.parametrize("language", ["fr", "en"])
def test_french_and_english_go_over_sms_as_gsm7(language):
    # CLDR's no-break spaces become plain ones; the texts avoid the accents GSM-7 lacks (ç, ê, â…).
    for name, by_language in rendered().items():
        assert is_gsm7(sms_text(by_language[language])), name


def test_every_message_is_translated_in_french_and_arabic():
    for language in ("fr", "ar"):
        catalogue = translations(language)
        for key, msgid in MESSAGES.items():
            assert catalogue.gettext(msgid) != msgid, f"{key} has no {language} translation"


def test_events_that_tell_the_artisan_nothing_make_no_notification():
    name_of = str
    assert draft_for("accounts.ledger.entry_posted", entry_posted("payment", 100), name_of) is None
    assert draft_for("payments.refund.succeeded", {"artisan_id": ARTISAN}, name_of) is None
    down = {
        "artisan_id": ARTISAN,
        "direction": "down",
        "kyc_tier": 0,
        "tier_cap": {"amount": 0, "currency": "MAD"},
    }
    assert draft_for("onboarding.artisan.kyc_tier_changed", down, name_of) is None
    claim = rejected("identity_mismatch", review_kind="bank_account_claim")
    assert draft_for("onboarding.artisan.kyc_rejected", claim, name_of) is None


def test_every_problem_title_is_translated():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import services.accounts.app  # noqa: F401
    import services.onboarding.app  # noqa: F401 - loads every service's errors
    import services.payments.app  # noqa: F401

    titles = {HirfaError.title, *(cls.title for cls in subclasses(HirfaError))}
    for language in ("fr", "ar"):
        missing = sorted(title for title in titles if translate_text(language, title) in (None, title))
        assert not missing, f"untranslated titles in {language}: {missing}"


def test_rendered_english_is_matched_back_to_its_template():
    assert (
        translate_text("fr", "Length must be between 2 and 200.")
        == "La longueur doit être comprise entre 2 et 200."
    )
    assert translate_text("ar", "Missing data for required field.") == "حقل إلزامي مفقود."
    assert translate_text("ar", "No artisan 'art_X'.") == "لا يوجد حرفي 'art_X'."
    assert translate_text("fr", "A sentence nobody catalogued.") is None
    assert translate_text("en", "Anything.") == "Anything."
    assert translate("ar", "Not found") == "غير موجود"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ar", "ar"),
        ("fr-MA,fr;q=0.9,en;q=0.5", "fr"),
        ("de-DE, ar;q=0.3, fr;q=0.2", "ar"),
        ("en;q=0.1, fr;q=0", "en"),
        ("de, *", None),
        ("", None),
        (None, None),
        ("fr;q=bogus, ar", "ar"),
    ],
)
def test_accept_language_picks_the_best_language_we_speak(header, expected):
    assert negotiate(header) == expected


def test_unknown_languages_fall_back_to_english():
    assert normalize_language("ber") == "en"
    assert normalize_language("ar_MA") == "ar"
    assert normalize_language(None) == "en"
