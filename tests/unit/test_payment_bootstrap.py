"""Payments' composition root: a default gateway no adapter is called stops the start, and fakes
passed to ``bootstrap`` are what the context holds. No database is touched."""

from __future__ import annotations

import pytest

from services.payments.adapters.gateways import FakeGateway
from services.payments.bootstrap import bootstrap, check_default_gateway, make_gateways
from services.payments.config import PaymentsConfig
from services.payments.context import PaymentsContext
from services.payments.domain.gateway import GatewayRegistry
from shared.config import ConfigError


def config(tmp_path, **changes) -> PaymentsConfig:
    return PaymentsConfig(service_name="payments", database_url="sqlite://", var_dir=str(tmp_path), **changes)


def test_an_unknown_default_gateway_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"'stripe' is not a known gateway \(known: fake, m2t\)"):
        check_default_gateway("stripe", GatewayRegistry({"m2t": object(), "fake": object()}))
    check_default_gateway("m2t", GatewayRegistry({"m2t": object()}))


def test_bootstrap_refuses_a_default_gateway_the_configuration_does_not_build(tmp_path):
    with pytest.raises(ConfigError, match=r"'cmi' is not a known gateway \(known: m2t\)"):
        bootstrap(config(tmp_path, default_gateway="cmi"))


def test_bootstrap_refuses_a_default_gateway_missing_from_the_gateways_passed(tmp_path):
    with pytest.raises(ConfigError, match=r"'m2t' is not a known gateway \(known: fake\)"):
        bootstrap(config(tmp_path), gateways=GatewayRegistry({"fake": FakeGateway()}))


def test_the_configuration_builds_every_registered_adapter(tmp_path):
    gateways = make_gateways(config(tmp_path))
    assert gateways.slugs() == ["m2t"]


def test_fakes_passed_to_bootstrap_are_what_the_context_holds(tmp_path):
    fake = FakeGateway()

    class Sender:
        def send(self, request, timeout):  # pragma: no cover - never called here
            raise AssertionError

    sender = Sender()
    context = bootstrap(
        config(tmp_path),
        gateways=GatewayRegistry({"fake": fake}),
        default_gateway="fake",
        webhook_sender=sender,
    )
    try:
        assert isinstance(context, PaymentsContext)
        assert context.payments.gateway("fake") is fake
        assert context.payments.default_gateway == "fake"
        assert context.webhooks.sender is sender
    finally:
        context.engine.dispose()
