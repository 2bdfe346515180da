"""The in-memory gateway (``FakeGateway``): M2T's rules and test data, without HTTP."""

from services.payments.adapters.gateways.fake.gateway import SIGNATURE_HEADER, TEST_PHONES, FakeGateway
from shared.cards import CMI_TEST_CARD, TEST_CARDS  # the test cards, shared with the M2T sandbox

__all__ = ["CMI_TEST_CARD", "SIGNATURE_HEADER", "TEST_CARDS", "TEST_PHONES", "FakeGateway"]
