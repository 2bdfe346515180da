"""The webhook sender's name lookups: every address, within a timeout, whatever the name server does."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from services.payments.adapters import webhook_sender
from services.payments.adapters.webhook_sender import HttpWebhookSender, SystemResolver
from services.payments.domain.webhooks import HostNotResolved, WebhookRequest


def test_a_name_resolves_to_every_address_once():
    addresses = SystemResolver().resolve("localhost", 443, timeout=2)
    assert ipaddress.ip_address("127.0.0.1") in addresses
    assert len(addresses) == len(set(addresses))
    assert SystemResolver().resolve("2130706433", 80, timeout=2) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize("host", ["no-such-host.invalid", "a" * 300 + ".example"])
def test_a_name_that_does_not_resolve_is_a_dns_error(host):
    with pytest.raises(HostNotResolved) as caught:
        SystemResolver().resolve(host, 443, timeout=3)
    assert caught.value.reason == "dns_error"


@pytest.fixture
def hanging_name_server(monkeypatch):
    """``getaddrinfo`` for ``*.hang.test`` blocks until the test ends, as behind a dead name server."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".hang.test"):
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "timed out")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(webhook_sender.socket, "getaddrinfo", getaddrinfo)
    yield
    release.set()


def test_a_hanging_lookup_times_out_and_holds_only_its_own_slots(hanging_name_server):
    resolver = SystemResolver(max_lookups=2)
    started = time.monotonic()
    for _ in range(3):  # the third finds both slots taken and waits no longer than its timeout
        with pytest.raises(HostNotResolved) as caught:
            resolver.resolve("ns.hang.test", 443, timeout=0.3)
        assert caught.value.reason == "dns_timeout"
    assert time.monotonic() - started < 1.5


def test_a_send_whose_lookup_hangs_ends_within_its_timeout(hanging_name_server):
    sender = HttpWebhookSender(allow_private_networks=True, resolver=SystemResolver())
    started = time.monotonic()
    outcome = sender.send(WebhookRequest("https://shop.hang.test/hooks", b"{}", {}), timeout=0.5)
    assert time.monotonic() - started < 1.0
    assert (outcome.status_code, outcome.error) == (None, "dns_timeout")
