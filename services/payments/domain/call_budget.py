"""How long one gateway call may keep its caller waiting, retries included.

The recovery job must not poll a payment whose call is still in flight, so the configuration checks
its wait against this; the M2T adapter runs its calls by the same numbers.
"""

from __future__ import annotations

# A retry's wait is its backoff times a random factor in 1 ± this (``PartnerHttpClient``).
RETRY_JITTER = 0.25


def longest_call_seconds(
    timeout: float | tuple[float, float],
    *,
    retries: int,
    retry_backoff_seconds: float,
    retry_max_backoff_seconds: float,
    retry_jitter: float = RETRY_JITTER,
) -> float:
    """How long one call through the M2T client can keep the caller waiting, retries included.

    requests applies a single float timeout to the connect and to the read separately, so one
    attempt may wait twice it; and before each retry the client sleeps its backoff (doubled per
    retry, capped, then jittered up to ``1 + retry_jitter``). Not covered: a server that dribbles
    bytes (the read timeout is per socket read) and DNS resolution, hence a margin on top is wise.
    """
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    sleeps = sum(
        min(retry_backoff_seconds * (1 << (retry - 1)), retry_max_backoff_seconds) * (1 + retry_jitter)
        for retry in range(1, retries + 1)
    )
    return (connect + read) * (retries + 1) + sleeps
