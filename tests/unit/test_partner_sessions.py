"""A partner's HTTP session reads the environment's egress settings once, when it is made: an
egress proxy and a CA bundle set for the deployment still apply to every call, and ``NO_PROXY``
still exempts a partner inside the network."""

from __future__ import annotations

import pytest

from shared.partners import pooled_session


@pytest.fixture
def egress(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.hirfa.internal:3128")
    monkeypatch.setenv("NO_PROXY", "bank.hirfa.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/hirfa-partners.pem")


def test_the_proxy_and_ca_bundle_of_the_environment_apply_to_a_partner(egress):
    session = pooled_session("https://api.m2t.ma")
    assert session.proxies["https"] == "http://egress.hirfa.internal:3128"
    assert session.verify == "/etc/ssl/hirfa-partners.pem"
    # Read once: requests no longer reads the environment (or a .netrc) on each call.
    assert session.trust_env is False


def test_a_partner_named_in_no_proxy_is_called_directly(egress):
    assert "https" not in pooled_session("https://bank.hirfa.internal").proxies
