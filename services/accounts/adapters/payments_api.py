"""Payments' API, as accounts' completeness check reads it.

``HttpPaymentsLedgerView`` implements ``domain.ports.PaymentsLedgerView``: ``GET
/v1/unposted-payments`` on payments, page by page, with a token accounts gets for its own client
(the service role, scope ``payments:audit``, audience payments) from onboarding's token endpoint
and keeps until shortly before it expires. Every call has a timeout; a failure raises
``PaymentsUnavailable`` and the check simply runs again on the worker's next pass.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from services.accounts.domain.ports import UnpostedPayment
from shared.partners import traced_session

SCOPE = "payments:audit"
AUDIENCE = "hirfa-payments"
PAGE_SIZE = 100
# A token is renewed this long before it expires, so none expires on its way.
TOKEN_MARGIN_SECONDS = 60


class PaymentsUnavailable(RuntimeError):
    """Payments (or the token endpoint) could not be asked, or answered something unexpected."""


class HttpPaymentsLedgerView:
    def __init__(
        self,
        *,
        payments_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        timeout: float,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.payments_url = payments_url.rstrip("/")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout
        self._http = session or traced_session()
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0

    def __repr__(self) -> str:
        return f"HttpPaymentsLedgerView(payments_url={self.payments_url!r}, client_id={self.client_id!r})"

    def unposted_payments(self, succeeded_before: dt.datetime) -> Iterator[UnpostedPayment]:
        params: dict[str, Any] = {"succeeded_before": succeeded_before.isoformat(), "limit": PAGE_SIZE}
        while True:
            page = self._get("/v1/unposted-payments", params)
            for item in page["data"]:
                yield UnpostedPayment(
                    payment_id=item["payment_id"],
                    artisan_id=item["artisan_id"],
                    marketplace_id=item["marketplace_id"],
                    amount=int(item["amount"]["amount"]),
                    currency=item["amount"]["currency"],
                    succeeded_at=dt.datetime.fromisoformat(item["succeeded_at"]),
                )
            if not page["has_more"]:
                return
            params = {**params, "starting_after": page["next_cursor"]}

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        for attempt in (1, 2):
            response = self._request("GET", f"{self.payments_url}{path}", params=params, token=self._bearer())
            if response.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one more try with a new token
                continue
            return self._json(response, "payments")
        raise AssertionError("unreachable")  # pragma: no cover

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_expires_at:
            response = self._request(
                "POST",
                self.token_url,
                data={"grant_type": "client_credentials", "scope": SCOPE, "audience": AUDIENCE},
                auth=(self.client_id, self._client_secret),
            )
            answer = self._json(response, "the token endpoint")
            self._token = str(answer["access_token"])
            self._token_expires_at = self._clock() + max(int(answer["expires_in"]) - TOKEN_MARGIN_SECONDS, 0)
        return self._token

    def _request(
        self, method: str, url: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            return self._http.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise PaymentsUnavailable(f"{url} unreachable: {type(exc).__name__}") from None

    @staticmethod
    def _json(response: requests.Response, who: str) -> Any:
        if response.status_code != 200:
            try:
                problem = response.json()
            except ValueError:
                problem = None
            code = problem.get("code", "") if isinstance(problem, dict) else ""
            raise PaymentsUnavailable(f"{who} answered {response.status_code} {code}".strip())
        try:
            return response.json()
        except ValueError:
            raise PaymentsUnavailable(f"{who} answered with invalid JSON") from None
