"""The acquirers' daily settlement files, over their APIs.

``HttpSettlementSource`` implements ``domain.ports.SettlementSource`` for M2T:
``GET /v1/settlements/<YYYY-MM-DD>.csv`` with M2T's API key and a timeout, retried on transient
failures (a read). The answer is the CSV as M2T wrote it, read afterwards by
``adapters.settlement_files.read_settlement_csv``. ``make_settlement_sources`` builds one source per
gateway name listed in ``ACCOUNTS_SETTLEMENT_GATEWAYS``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from shared.partners import PartnerHttpClient


class HttpSettlementSource:
    def __init__(
        self, base_url: str, *, api_key: str, timeout: float, retries: int = 2, name: str = "m2t"
    ) -> None:
        self._client = PartnerHttpClient(
            base_url, api_key=api_key, timeout=timeout, retries=retries, name=name
        )

    def __repr__(self) -> str:
        return f"HttpSettlementSource({self._client!r})"

    def fetch_settlement(self, day: str) -> bytes:
        if dt.date.fromisoformat(day).isoformat() != day:
            raise ValueError("day must be YYYY-MM-DD")
        return bytes(self._client.call("GET", f"/v1/settlements/{day}.csv", idempotent=True, raw=True))


def make_settlement_sources(
    gateways: tuple[str, ...], *, m2t_url: str, m2t_api_key: str, timeout: float
) -> Mapping[str, HttpSettlementSource]:
    """The settlement source of each gateway name; M2T is the only acquirer wired today."""
    sources: dict[str, HttpSettlementSource] = {}
    for gateway in gateways:
        if gateway != "m2t":
            raise ValueError(f"no settlement source for gateway {gateway!r}")
        sources[gateway] = HttpSettlementSource(m2t_url, api_key=m2t_api_key, timeout=timeout, name="m2t")
    return sources
