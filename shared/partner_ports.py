"""What a service knows of its partners (gateways, banks) without speaking HTTP: adapters
registered by name, the errors a partner call ends in, and a callback that cannot be trusted.

The domains' ports and the service layers use these; the HTTP glue that raises them is
``shared.partners``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

Adapter = TypeVar("Adapter")

# What went wrong, for logs and for the adapters' mapping (``PartnerError.kind``).
TIMEOUT = "timeout"  # no answer in time: the request may have been processed
UNREACHABLE = "unreachable"  # connection refused or lost
SERVER_ERROR = "server_error"  # 5xx
THROTTLED = "throttled"  # 408 or 429: answered "try again later", nothing done
INVALID_ANSWER = "invalid_answer"  # 2xx whose body is not JSON: it happened, we cannot read it
REFUSED = "refused"  # other 4xx: answered, nothing done

_OUTCOME_UNKNOWN_KINDS = frozenset({TIMEOUT, UNREACHABLE, SERVER_ERROR, INVALID_ANSWER})


class PartnerError(RuntimeError):
    """The partner could not be reached or answered with an error. ``transient`` ones may be retried.

    ``status`` is the HTTP status when the partner answered (None after a timeout or a connection
    error), ``code`` the partner's own error code from its ``{"code", "message"}`` body when it gave
    one. ``earlier_outcome_unknown`` is set when an earlier attempt of the same call left the outcome
    unknown (so a refusal of the retry, a "conflict" say, may be about that earlier attempt).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        code: str | None = None,
        kind: str | None = None,
        attempts: int = 1,
        earlier_outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.code = code
        self.kind = kind or (
            _kind_of_status(status) if status is not None else (UNREACHABLE if transient else REFUSED)
        )
        self.attempts = attempts
        self.earlier_outcome_unknown = earlier_outcome_unknown

    @property
    def outcome_unknown(self) -> bool:
        """The partner may have done what was asked (timeout, lost connection, 5xx, unreadable 2xx)."""
        return self.kind in _OUTCOME_UNKNOWN_KINDS

    @property
    def refused(self) -> bool:
        """The partner answered 4xx (a refusal, or 408/429 "later"): it did nothing."""
        return self.kind in (REFUSED, THROTTLED)


def _kind_of_status(status: int) -> str:
    if status >= 500:
        return SERVER_ERROR
    if status in (408, 429):
        return THROTTLED
    if status >= 400:
        return REFUSED
    return INVALID_ANSWER


class InvalidCallback(ValueError):
    """``reason`` is a ``SignatureError`` reason, ``malformed`` for a genuine but unreadable body, or an
    adapter's own word for a genuine body it cannot accept (``unknown_status``, ``unknown_type``).

    ``detail`` (optional) says more, for the logs; it never carries the body.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PartnerRegistry(Generic[Adapter]):
    """Adapters by partner slug (``banque_populaire``, …): the slug names the callback URL too."""

    def __init__(self, adapters: Mapping[str, Adapter]) -> None:
        self._adapters = dict(adapters)

    def get(self, slug: str) -> Adapter:
        return self._adapters[slug]

    def __contains__(self, slug: object) -> bool:
        return slug in self._adapters

    def slugs(self) -> list[str]:
        return sorted(self._adapters)
