"""The in-memory gateway (``FakeGateway``): M2T's rules and test data, without HTTP."""

from services.payments.adapters.gateways.fake.gateway import SIGNATURE_HEADER, FakeGateway

__all__ = ["SIGNATURE_HEADER", "FakeGateway"]
