"""Talking to partners over HTTP (banks, gateways): the JSON client every adapter shares and the
signed-callback reader. The errors they raise and the registry of adapters are in
``shared.partner_ports``, which the domains may import (no HTTP there).

Every call has a timeout, and carries the trace context (``traceparent``) while tracing is on.
Only calls the caller declares idempotent are retried (the partner deduplicates on our reference or
on an ``Idempotency-Key`` header, or the call only reads), with exponential backoff and jitter, so
many clients failing together do not retry in lockstep.

A ``PartnerError`` tells what the caller may assume. ``transient`` ones (timeout, lost connection,
5xx, 408/429, an unreadable 2xx answer) may be retried, and for those that left the partner's answer
unknown (``outcome_unknown``) the operation may have happened. The others are refusals (4xx): the
partner answered and did nothing; ``status`` and the partner's own ``code`` say why.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from requests import PreparedRequest
from requests.adapters import HTTPAdapter

from shared import tracing
from shared.partner_ports import (
    INVALID_ANSWER,
    TIMEOUT,
    UNREACHABLE,
    InvalidCallback,
    PartnerError,
)
from shared.signatures import SignatureError, verify

log = logging.getLogger(__name__)


# Connections kept open to one partner: at least as many as a process has threads calling it.
DEFAULT_POOL_SIZE = 32


class TracedHTTPAdapter(HTTPAdapter):
    """requests' adapter, sending each call's trace context (``traceparent``) and recording a
    client span per attempt while tracing is on (shared/tracing.py); as requests' own otherwise."""

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        chosen = tracing.tracer()
        if chosen is None:
            return super().send(request, stream, timeout, verify, cert, proxies)
        with tracing.calling(chosen, request.method or "GET", request.url or "", request.headers) as span:
            response = super().send(request, stream, timeout, verify, cert, proxies)
            tracing.answered(span, response.status_code)
            return response


def traced_session() -> requests.Session:
    """A plain ``requests.Session`` whose calls carry the trace context (for a service's own APIs:
    a partner's client uses ``pooled_session``)."""
    session = requests.Session()
    adapter = TracedHTTPAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def pooled_session(base_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> requests.Session:
    """A session for one partner that keeps its connections open between calls (HTTP keep-alive),
    up to ``pool_size`` at once, so a call does not pay for a new TCP (and TLS) connection.
    requests' own default keeps 10, fewer than a busy process's threads may use together (the
    others' connections would be closed after each call). Retries are ``PartnerHttpClient``'s.

    The environment's settings for the partner (an egress proxy, a CA bundle) are read once, here:
    requests would otherwise read the whole environment, and look for a .netrc, on every call."""
    session = requests.Session()
    adapter = TracedHTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False
    return session


class PartnerHttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float | tuple[float, float],
        retries: int = 0,
        retry_backoff_seconds: float = 0.2,
        session: requests.Session | None = None,
        name: str = "partner",
        retry_max_backoff_seconds: float = 5.0,
        retry_jitter: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """``timeout``: seconds, or ``(connect, read)``. A retry waits ``retry_backoff_seconds`` doubled
        per retry, capped at ``retry_max_backoff_seconds``, times a random factor in ``1 ± retry_jitter``."""
        if retries < 0:
            raise ValueError("retries must not be negative")
        if not 0 <= retry_jitter < 1:
            raise ValueError("retry_jitter must be in [0, 1)")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self.retry_max_backoff_seconds = retry_max_backoff_seconds
        self.retry_jitter = retry_jitter
        self._sleep = sleep
        self._random = rng or random.Random()
        self._http = session or pooled_session(self.base_url)
        self.name = name

    def __repr__(self) -> str:
        return f"PartnerHttpClient(name={self.name!r}, base_url={self.base_url!r})"

    def _call_once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        raw: bool = False,
    ) -> Any:
        sent_headers = dict(headers or {})
        sent_headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = self._http.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                params=params,
                headers=sent_headers,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise PartnerError(
                f"{self.name} unreachable: {type(exc).__name__}", transient=True, kind=_timeout_kind(exc)
            ) from None
        except requests.RequestException as exc:
            raise PartnerError(
                f"{self.name} unreachable: {type(exc).__name__}", transient=True, kind=UNREACHABLE
            ) from None
        status = response.status_code
        if status >= 500 or status in (408, 429):
            code = _error_code(response)
            raise PartnerError(
                f"{self.name} answered {status}",
                transient=True,
                status=status,
                code=None if code == "?" else code,
            )
        if status >= 400:
            code = _error_code(response)
            raise PartnerError(
                f"{self.name} refused the request ({status} {code})",
                transient=False,
                status=status,
                code=None if code == "?" else code,
            )
        if raw:
            return response.content  # a file the partner serves (a statement, a settlement file)
        try:
            return response.json()
        except ValueError:
            raise PartnerError(
                f"{self.name} answered with invalid JSON", transient=True, status=status, kind=INVALID_ANSWER
            ) from None

    def backoff_seconds(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.retry_backoff_seconds * 2.0 ** (retry - 1), self.retry_max_backoff_seconds)
        return max(base * self._random.uniform(1 - self.retry_jitter, 1 + self.retry_jitter), 0.0)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """One API call; ``headers`` are sent on every attempt (an ``Idempotency-Key``, say).
        ``raw``: the answer's bytes as they came (a file), not its JSON.

        Never log ``body`` or ``headers``: they may carry card data or keys.
        """
        attempts = 1 + (self.retries if idempotent else 0)
        attempt = 1
        earlier_unknown = False
        while True:
            try:
                return self._call_once(method, path, body, headers, params, raw)
            except PartnerError as exc:
                exc.attempts = attempt
                exc.earlier_outcome_unknown = earlier_unknown
                if not exc.transient or attempt >= attempts:
                    raise
                earlier_unknown = earlier_unknown or exc.outcome_unknown
                log.info(
                    "partner call failed (%s); retrying",
                    exc.kind,
                    extra={
                        "partner": self.name,
                        "path": path,
                        "attempt": attempt,
                        "kind": exc.kind,
                        "status": exc.status,
                    },
                )
                self._sleep(self.backoff_seconds(attempt))
                attempt += 1


def _timeout_kind(exc: requests.Timeout) -> str:
    # A connect timeout never sent the request: nothing happened, but it is still worth a retry.
    return UNREACHABLE if isinstance(exc, requests.ConnectTimeout) else TIMEOUT


def _error_code(response: requests.Response) -> str:
    """The partner's own error code (``{"code", "message"}``), for the logs."""
    try:
        return str(response.json().get("code", "?"))
    except (ValueError, AttributeError):
        return "?"


def read_signed_callback(
    secret: str | Sequence[str], signature: str | None, raw_body: bytes, *, tolerance_seconds: int
) -> dict[str, Any]:
    """Verify the HMAC over the raw body (and its replay window), then parse it as JSON.

    ``secret`` may be a list of secrets while one is being rotated: any one may match.
    """
    try:
        verify(secret, signature, raw_body, tolerance_seconds=tolerance_seconds)
    except SignatureError as exc:
        raise InvalidCallback(exc.reason) from None
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise InvalidCallback("malformed") from None
    if not isinstance(body, dict):
        raise InvalidCallback("malformed")
    return body
