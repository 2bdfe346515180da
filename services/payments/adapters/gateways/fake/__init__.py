"""The in-memory gateway (``FakeGateway``): M2T's rules and test data, without HTTP."""

from services.payments.adapters.gateways.fake.gateway import (
    CMI_TEST_CARD,
    SIGNATURE_HEADER,
    TEST_CARDS,
    TEST_PHONES,
    FakeGateway,
)

__all__ = ["CMI_TEST_CARD", "SIGNATURE_HEADER", "TEST_CARDS", "TEST_PHONES", "FakeGateway"]
