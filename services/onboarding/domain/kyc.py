"""KYC tiers: what each tier takes, what is still missing, and which moves are automatic.

Pure rules, no database. The caps themselves are configuration (``TIER_CAPS_CENTIMES``); this
module only knows the ladder and its requirements:

    tier 0  registered
    tier 1  phone verified by OTP
    tier 2  ID front + back, selfie, screening clear (automated checks)
            (an open screening hit holds an artisan at tier 0 until compliance decides)
    tier 3  a compliance officer's approval after review (four-eyes)
"""

from __future__ import annotations

import dataclasses
import re

TOP_TIER = 3

PHONE_VERIFICATION = "phone_verification"
ID_DOCUMENT_FRONT = "id_document_front"
ID_DOCUMENT_BACK = "id_document_back"
SELFIE = "selfie"
SCREENING_CLEAR = "screening_clear"
MANUAL_REVIEW = "manual_review"

# Which uploaded document kind satisfies which requirement.
DOCUMENT_REQUIREMENTS = {"id_front": ID_DOCUMENT_FRONT, "id_back": ID_DOCUMENT_BACK, "selfie": SELFIE}

# Reason codes a compliance officer may give, per decision. Disqualifying rejections close the
# artisan's KYC (status "rejected", tier 0); the others leave the tier as it is and let the
# artisan resubmit.
APPROVE_REASONS = ("documents_verified", "identity_confirmed", "false_positive")
DISQUALIFYING_REJECT_REASONS = ("sanctions_match", "document_forged", "identity_fraud")
REMEDIABLE_REJECT_REASONS = ("document_unreadable", "document_expired", "identity_mismatch", "other")
REJECT_REASONS = DISQUALIFYING_REJECT_REASONS + REMEDIABLE_REJECT_REASONS
DOWNGRADE_REASONS = ("screening_hit", "document_forged", "identity_mismatch", "other")


@dataclasses.dataclass(frozen=True)
class KycFacts:
    """What we know about one artisan's KYC, gathered from the database by the service layer."""

    tier: int
    status: str
    phone_verified: bool
    document_kinds: frozenset[str]
    screening_status: str  # pending | clear | hit
    open_review_kinds: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Requirement:
    code: str
    # missing: the artisan (or marketplace) must act; in_review: waiting on compliance;
    # pending: waiting on an automated check (e.g. no screening list loaded yet).
    status: str


def next_tier_requirements(facts: KycFacts) -> list[Requirement]:
    """What is still needed to reach the next tier (empty at the top tier or when rejected)."""
    if facts.status == "rejected" or facts.tier >= TOP_TIER:
        return []
    needed: list[Requirement] = []
    if facts.tier == 0:
        if not facts.phone_verified:
            needed.append(Requirement(PHONE_VERIFICATION, "missing"))
        if facts.screening_status == "hit":
            needed.append(Requirement(SCREENING_CLEAR, "in_review"))
        return needed
    if facts.tier == 1:
        for kind, requirement in DOCUMENT_REQUIREMENTS.items():
            if kind not in facts.document_kinds:
                needed.append(Requirement(requirement, "missing"))
        if facts.screening_status != "clear":
            status = "in_review" if facts.screening_status == "hit" else "pending"
            needed.append(Requirement(SCREENING_CLEAR, status))
        return needed
    status = "in_review" if "tier_upgrade" in facts.open_review_kinds else "missing"
    return [Requirement(MANUAL_REVIEW, status)]


def automatic_tier(facts: KycFacts) -> int:
    """The highest tier the facts earn without a human decision (never above tier 2).

    A tier already granted by a human (tier 3) is kept; demotions are explicit, never automatic
    here, so this only ever answers ``>= facts.tier``. An unresolved screening hit earns nothing:
    a possible sanctions match must not receive funds until compliance has looked.
    """
    if facts.status == "rejected" or facts.screening_status == "hit":
        return facts.tier
    earned = 0
    if facts.phone_verified:
        earned = 1
        documents_complete = set(DOCUMENT_REQUIREMENTS) <= facts.document_kinds
        if documents_complete and facts.screening_status == "clear":
            earned = 2
    return max(facts.tier, earned)


class IceRuleError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.param = "cooperative_ice"
        self.code = "invalid_ice"


def check_ice(raw: str) -> tuple[str, list[str]]:
    """Normalise a cooperative's ICE (15 digits) and return it with any warnings.

    The last two digits are a mod-97 key over the first thirteen (the whole number is then
    divisible by 97). The key's algorithm is not officially published, so a mismatch is recorded
    as a warning for compliance to look at, never a rejection.
    """
    ice = re.sub(r"[\s.-]", "", raw)
    if not re.fullmatch(r"[0-9]{15}", ice):
        raise IceRuleError("An ICE is 15 digits.")
    warnings = [] if int(ice) % 97 == 0 else ["ice_checksum_mismatch"]
    return ice, warnings
