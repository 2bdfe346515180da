"""Words for the services' machine codes (review kinds, statuses, reason codes), in the person's
language. The codes themselves stay what the APIs say; an unknown one is shown as it is."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
    # review kinds
    "screening_hit": _l("Screening hit"),
    "tier_upgrade": _l("Tier 3 request"),
    "bank_account_claim": _l("Bank account claim"),
    # review statuses
    "open": _l("Waiting for a decision"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "closed": _l("Closed"),
    # decision and downgrade reasons
    "documents_verified": _l("Documents verified"),
    "identity_confirmed": _l("Identity confirmed"),
    "false_positive": _l("False positive"),
    "sanctions_match": _l("Sanctions list match"),
    "document_forged": _l("Document forged"),
    "identity_fraud": _l("Identity fraud"),
    "document_unreadable": _l("Document unreadable"),
    "document_expired": _l("Document expired"),
    "identity_mismatch": _l("Identity mismatch"),
    "other": _l("Other"),
}


def label(code: object) -> str:
    found = LABELS.get(str(code))
    return str(found) if found is not None else str(code)
