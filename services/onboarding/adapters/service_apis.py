"""Payments' and accounts' APIs, as onboarding reads an artisan's data for their export.

``HttpPersonalDataSource`` implements ``domain.ports.PersonalDataSource``: ``GET
/v1/artisans/{id}/personal-data`` on the service, with a token onboarding mints for itself (it is
the token issuer: no client secret to keep) carrying only ``personal_data:collect``, for that
service's audience, valid a minute. Every call has a timeout; anything but a 200 with the artisan's
data raises ``PersonalDataUnavailable``, so the export is refused rather than cut short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from services.onboarding.domain.ports import PersonalDataUnavailable
from shared.auth.scopes import ONBOARDING_SERVICE_ID, PERSONAL_DATA_COLLECT, Role
from shared.auth.tokens import TokenIssuer
from shared.partners import traced_session


class HttpPersonalDataSource:
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        issuer: TokenIssuer,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.audience = f"hirfa-{name}"
        self._issuer = issuer
        self.timeout = timeout
        self._http = session or traced_session()

    def __repr__(self) -> str:
        return f"HttpPersonalDataSource(name={self.name!r}, base_url={self.base_url!r})"

    def collect(self, artisan_id: str) -> Mapping[str, Any]:
        token, _ = self._issuer.issue(
            client_id=ONBOARDING_SERVICE_ID,
            role=Role.SERVICE,
            scopes=[PERSONAL_DATA_COLLECT],
            audiences=[self.audience],
        )
        url = f"{self.base_url}/v1/artisans/{quote(artisan_id, safe='')}/personal-data"
        try:
            response = self._http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PersonalDataUnavailable(self.name, f"unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise PersonalDataUnavailable(self.name, f"answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise PersonalDataUnavailable(self.name, "answered with invalid JSON") from None
        if not isinstance(answer, dict) or answer.get("artisan_id") != artisan_id:
            raise PersonalDataUnavailable(self.name, "answered about someone else")
        return answer
