"""Words for the services' machine codes (review kinds, statuses, reason codes), in the person's
language. The codes themselves stay what the APIs say; an unknown one is shown as it is."""

from __future__ import annotations

from flask_babel import gettext


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """Marks a message for the catalogues (pybabel extracts N_); it is translated where shown."""
    return message


LABELS = {
    # review kinds
    "screening_hit": N_("Screening hit"),
    "tier_upgrade": N_("Tier 3 request"),
    "bank_account_claim": N_("Bank account claim"),
    # review statuses
    "open": N_("Waiting for a decision"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "closed": N_("Closed"),
    # decision and downgrade reasons
    "documents_verified": N_("Documents verified"),
    "identity_confirmed": N_("Identity confirmed"),
    "false_positive": N_("False positive"),
    "sanctions_match": N_("Sanctions list match"),
    "document_forged": N_("Document forged"),
    "identity_fraud": N_("Identity fraud"),
    "document_unreadable": N_("Document unreadable"),
    "document_expired": N_("Document expired"),
    "identity_mismatch": N_("Identity mismatch"),
    "other": N_("Other"),
}


def label(code: object) -> str:
    message = LABELS.get(str(code))
    return gettext(message) if message else str(code)
