"""Words for the services' machine codes (review kinds, statuses, reason codes), in the person's
language. The codes themselves stay what the APIs say; an unknown one is shown as it is."""

from __future__ import annotations

from flask_babel import gettext

from shared.i18n import N_  # marks a message for the catalogues; translated where shown

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
    # reconciliation: item states and case kinds
    "matched": N_("Matched"),
    "missing_in_ledger": N_("Missing in the ledger"),
    "missing_at_gateway": N_("Missing at the acquirer"),
    "missing_in_bank": N_("Missing at the bank"),
    "amount_mismatch": N_("Amount mismatch"),
    "fee_mismatch": N_("Fee mismatch"),
    "duplicate": N_("Duplicate"),
    "unidentified": N_("Unidentified money"),
    "balance_mismatch": N_("Balance mismatch"),
    # reconciliation: where a run or an item comes from
    "gateway_settlement": N_("Settlement file"),
    "bank_statement": N_("Bank statement"),
    "settlement": N_("Acquirer"),
    "statement": N_("Bank"),
    "ledger": N_("Ledger"),
    # adjustments, and the owners of ledger accounts
    "reversal": N_("Reversal"),
    "manual": N_("Adjustment"),
    "platform": N_("Platform"),
    "marketplace": N_("Marketplace"),
    "artisan": N_("Artisan"),
    # payment methods
    "card": N_("Card"),
    "mobile_wallet": N_("Mobile wallet"),
    # ledger cases: why a posting was refused or waits
    "tier_cap_exceeded": N_("Above the artisan's cap"),
    "kyc_tier_unknown": N_("Artisan's tier not known yet"),
    "payment_not_posted": N_("Its payment is not posted yet"),
    "dispute_not_opened": N_("Its dispute is not opened yet"),
    "artisan_balance_negative": N_("Artisan's balance below zero"),
    "reserve_below_zero": N_("Marketplace reserve below zero"),
    "unbalanced_entry": N_("Unbalanced entry"),
}

# Codes that mean something else in another family: a reconciliation case's states.
FAMILY_LABELS = {
    # A payment whose money the gateway holds though it ended without going through.
    "payment": {
        "failed": N_("Payment failed"),
        "canceled": N_("Payment canceled"),
    },
    # Giving back money the gateway holds for a failed or canceled payment.
    "reversal": {
        "required": N_("To give back"),
        "refund_pending": N_("Refund pending"),
        "voided": N_("Released"),
        "refunded": N_("Refunded"),
        "failed": N_("The gateway would not give it back"),
    },
    "case": {
        "open": N_("Still open"),
        "investigating": N_("Investigating"),
        "resolved": N_("Resolved"),
        "written_off": N_("Written off"),
    },
    "ledger_case": {
        "open": N_("Open, for an operator"),
        "waiting": N_("Waiting to post"),
        "resolved": N_("Resolved"),
    },
    "ledger_resolution": {
        "posted": N_("Its event posted"),
        "funds_returned": N_("The payout's funds came back"),
        "reserve_funded": N_("The reserve was funded"),
        "adjustment": N_("By an adjustment"),
        "noted": N_("With a note"),
    },
    "artisan": {
        "active": N_("Active"),
        "rejected": N_("Rejected"),
        "suspended": N_("Suspended"),
    },
    "screening": {
        "pending": N_("Not screened yet"),
        "clear": N_("Clear"),
        "hit": N_("Possible match, for compliance"),
    },
    "bank_account": {
        "pending": N_("Being opened by the bank"),
        "pending_review": N_("Waiting for a review"),
        "linked": N_("Linked"),
        "opened": N_("Opened by the bank"),
        "rejected": N_("Rejected"),
        "refused": N_("Refused by the bank"),
        "closed": N_("Closed"),
    },
    "payout": {
        "pending": N_("To send"),
        "in_transit": N_("Sent to the bank"),
        "paid": N_("Paid out"),
        "failed": N_("Failed at the bank"),
        "returned": N_("Returned by the bank"),
    },
    "adjustment": {
        "pending_approval": N_("Waiting for approval"),
        "posted": N_("Posted"),
        "rejected": N_("Rejected"),
    },
}


def label(code: object, family: str | None = None) -> str:
    message = FAMILY_LABELS.get(family or "", {}).get(str(code)) or LABELS.get(str(code))
    return gettext(message) if message else str(code)
