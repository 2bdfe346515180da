"""The M2T gateway adapter: ``client`` (HTTP glue), ``transformers`` (wire JSON), ``gateway``."""

from services.payments.adapters.gateways.m2t.client import M2TClient
from services.payments.adapters.gateways.m2t.gateway import SIGNATURE_HEADER, M2TGateway

__all__ = ["SIGNATURE_HEADER", "M2TClient", "M2TGateway"]
