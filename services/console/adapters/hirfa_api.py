"""HTTP clients of the three services' public APIs, called with the signed-in person's token.

The console decides nothing: a refusal (scope, four-eyes, a rule) comes back as an ``ApiError``
carrying the service's problem+json ``code``, and the page shows it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import requests


@dataclasses.dataclass
class ApiError(Exception):
    """A problem+json answer (or no answer at all: ``status`` 0, code ``service_unavailable``)."""

    status: int
    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)

    @property
    def page_status(self) -> int:
        """The status of the console page showing it: the service's 4xx, else 502 (the service
        behind the console failed or did not answer; never 0, which is no HTTP status)."""
        return self.status if 400 <= self.status < 500 else 502

    @property
    def outcome_unknown(self) -> bool:
        """No answer, or a server error: the request may have taken effect or not, so trying it
        again must carry the same Idempotency-Key (the service then replays or applies it once)."""
        return self.status == 0 or self.status >= 500


@dataclasses.dataclass(frozen=True)
class Document:
    """A document streamed from onboarding: its bytes are never held whole, never written.
    ``close`` releases the connection (after the last chunk, or on giving up)."""

    content_type: str
    chunks: Iterator[bytes]
    close: Callable[[], None]


class ServiceApi:
    """One service's API. A fresh ``requests.Session`` per console process keeps connections warm."""

    def __init__(self, base_url: str, timeout: float, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()

    def __repr__(self) -> str:
        return f"ServiceApi({self.base_url!r})"

    def get(self, token: str, path: str, **params: Any) -> Any:
        query = {key: value for key, value in params.items() if value not in (None, "")}
        return self._call("GET", token, path, params=query)

    def post(self, token: str, path: str, body: dict | None = None, *, idempotency_key: str = "") -> Any:
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return self._call("POST", token, path, json=body if body is not None else {}, headers=headers)

    def _call(self, method: str, token: str, path: str, headers: dict | None = None, **kwargs: Any) -> Any:
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})},
                timeout=self.timeout,
                **kwargs,
            )
        except requests.RequestException:
            raise ApiError(0, "service_unavailable", f"{self.base_url} did not answer") from None
        if response.status_code >= 400:
            raise problem_of(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def stream(self, token: str, path: str) -> Document:
        """The response body in chunks; the caller closes it."""
        try:
            response = self.http.get(
                self.base_url + path,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
                stream=True,
            )
        except requests.RequestException:
            raise ApiError(0, "service_unavailable", f"{self.base_url} did not answer") from None
        if response.status_code >= 400:
            response.close()
            raise problem_of(response)
        content_type = response.headers.get("Content-Type", "application/octet-stream").split(";")[0]
        return Document(
            content_type=content_type.strip().lower(),
            chunks=response.iter_content(chunk_size=64 * 1024),
            close=response.close,
        )


def problem_of(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(
        response.status_code, str(body.get("code") or "http_error"), str(body.get("detail") or "")
    )


@dataclasses.dataclass(frozen=True)
class HirfaApis:
    onboarding: ServiceApi
    payments: ServiceApi
    accounts: ServiceApi
