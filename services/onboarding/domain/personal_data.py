"""Personal data under law 09-08: how long an artisan's erased-on-request data must still be kept.

Morocco's anti-money-laundering law (43-05) obliges Hirfa to keep a customer's identity, KYC file
and transactions for years after the business relationship ends (ten by default: the setting
``AML_RETENTION_YEARS``). An erasure request cannot override that duty: until it ends, the data is
restricted (kept, no longer processed, shown to compliance only), and it is erased afterwards.
"""

from __future__ import annotations

import datetime as dt

ERASURE_RESTRICTED = "restricted"
ERASURE_DONE = "erased"


def retention_ends(relationship_ended_at: dt.datetime, years: int) -> dt.datetime:
    """When the retention duty of a relationship that ended at ``relationship_ended_at`` ends:
    ``years`` later, to the day (a 29 February ends on the 1st of March of a common year)."""
    if years < 0:
        raise ValueError("a retention period is not negative")
    year = relationship_ended_at.year + years
    try:
        return relationship_ended_at.replace(year=year)
    except ValueError:  # 29 February, and the year it ends in is common
        return relationship_ended_at.replace(year=year, month=3, day=1)


def retention_over(retain_until: dt.datetime, now: dt.datetime) -> bool:
    """Whether data kept until ``retain_until`` may be erased at ``now``."""
    return now >= retain_until


# What an erased artisan's identity becomes. The artisan id itself stays: it is a random
# identifier that names no one once nothing ties it to a person, and the ledger's books, immutable,
# keep their amounts under it (the pseudonymous id).
ERASED_NAME = "Erased artisan"
# A date of birth nobody registered has (they are adults born after 1900): the column keeps its
# type, the value says nothing.
ERASED_DATE_OF_BIRTH = dt.date(1900, 1, 1)


def pseudonym(artisan_id: str) -> str:
    """What replaces an erased artisan's CIN and phone: unique like them (both columns are), at most
    20 characters, made from the id alone so it says nothing the id does not."""
    return "ERASED" + artisan_id[-14:]
