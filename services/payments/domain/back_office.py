"""What the back office watches in payments, in domain words. No I/O here.

- A payment's reversal needs review when the gateway would not give back money it holds for a
  payment that failed or was canceled (``Reversal.FAILED``): an operator must.
- A payment is stuck when it is still ``processing`` longer than the recovery job's own wait after
  it was last asked of the gateway (confirmed, or asked to capture): recovery has had its turn and
  the gateway's answer is still unknown.
- A payment method's success rate counts the payments decided either way (succeeded or failed); one
  canceled (by the marketplace, or a buyer who walked away) or still under way is neither.
"""

from __future__ import annotations

from services.payments.domain.payments import PaymentStatus, Reversal

REVERSAL_NEEDS_REVIEW = Reversal.FAILED
STUCK_STATUS = PaymentStatus.PROCESSING
DECIDED = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED})


def success_rate(succeeded: int, failed: int) -> float | None:
    """The share of decided payments that succeeded (0 to 1, four decimals), None when none was decided."""
    decided = succeeded + failed
    if decided == 0:
        return None
    return round(succeeded / decided, 4)
