"""Where a webhook may go: the domain's address rules, as a table (no network, no resolver)."""

from __future__ import annotations

import ipaddress

import pytest

from services.payments.domain.webhooks import (
    AddressKind,
    EndpointUrlError,
    address_allowed,
    address_kind,
    check_endpoint_url,
    first_refused_address,
    host_address,
)

KINDS = [
    # public
    ("93.184.216.34", AddressKind.PUBLIC),
    ("8.8.8.8", AddressKind.PUBLIC),
    ("2606:4700:4700::1111", AddressKind.PUBLIC),
    ("::ffff:93.184.216.34", AddressKind.PUBLIC),
    ("64:ff9b::808:808", AddressKind.PUBLIC),  # NAT64 to 8.8.8.8
    # loopback
    ("127.0.0.1", AddressKind.LOOPBACK),
    ("127.255.1.2", AddressKind.LOOPBACK),
    ("::1", AddressKind.LOOPBACK),
    ("::ffff:127.0.0.1", AddressKind.LOOPBACK),  # IPv4-mapped
    ("::127.0.0.1", AddressKind.LOOPBACK),  # IPv4-compatible
    ("64:ff9b::7f00:1", AddressKind.LOOPBACK),  # NAT64
    ("2002:7f00:1::", AddressKind.LOOPBACK),  # 6to4
    # private networks
    ("10.1.2.3", AddressKind.PRIVATE),
    ("172.16.0.1", AddressKind.PRIVATE),
    ("172.31.255.254", AddressKind.PRIVATE),
    ("192.168.1.1", AddressKind.PRIVATE),
    ("100.64.0.1", AddressKind.PRIVATE),  # carrier-grade NAT
    ("fd12:3456::1", AddressKind.PRIVATE),  # unique local
    ("::ffff:10.0.0.1", AddressKind.PRIVATE),
    # link-local
    ("169.254.1.1", AddressKind.LINK_LOCAL),
    ("fe80::1", AddressKind.LINK_LOCAL),
    ("fe80::1%eth0", AddressKind.LINK_LOCAL),
    # cloud metadata
    ("169.254.169.254", AddressKind.METADATA),
    ("::ffff:169.254.169.254", AddressKind.METADATA),
    ("::ffff:a9fe:a9fe", AddressKind.METADATA),
    ("fd00:ec2::254", AddressKind.METADATA),
    ("169.254.170.2", AddressKind.METADATA),
    ("100.100.100.200", AddressKind.METADATA),
    ("192.0.0.192", AddressKind.METADATA),
    ("168.63.129.16", AddressKind.METADATA),
    # multicast, unspecified, reserved
    ("224.0.0.1", AddressKind.MULTICAST),
    ("239.255.255.250", AddressKind.MULTICAST),
    ("ff02::1", AddressKind.MULTICAST),
    ("0.0.0.0", AddressKind.UNSPECIFIED),
    ("::", AddressKind.UNSPECIFIED),
    ("::ffff:0.0.0.0", AddressKind.UNSPECIFIED),
    ("240.0.0.1", AddressKind.RESERVED),
    ("255.255.255.255", AddressKind.RESERVED),
    ("192.0.2.10", AddressKind.RESERVED),  # documentation
    ("198.18.0.1", AddressKind.RESERVED),  # benchmarking
    ("0.1.2.3", AddressKind.RESERVED),  # "this network"
    ("2001:db8::1", AddressKind.RESERVED),  # documentation
]


@pytest.mark.parametrize(("address", "kind"), KINDS, ids=[address for address, _ in KINDS])
def test_each_address_has_its_kind(address, kind):
    assert address_kind(ipaddress.ip_address(address)) is kind


@pytest.mark.parametrize(("address", "kind"), KINDS, ids=[address for address, _ in KINDS])
def test_only_public_addresses_are_allowed_in_production(address, kind):
    allowed = address_allowed(ipaddress.ip_address(address), allow_private_networks=False)
    assert allowed is (kind is AddressKind.PUBLIC)


@pytest.mark.parametrize(("address", "kind"), KINDS, ids=[address for address, _ in KINDS])
def test_the_setting_lets_loopback_and_private_networks_in_and_nothing_else(address, kind):
    allowed = address_allowed(ipaddress.ip_address(address), allow_private_networks=True)
    assert allowed is (kind in (AddressKind.PUBLIC, AddressKind.LOOPBACK, AddressKind.PRIVATE))


def test_a_name_is_judged_by_the_worst_of_its_addresses():
    public, private = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")
    assert first_refused_address([public], allow_private_networks=False) is None
    assert first_refused_address([public, private], allow_private_networks=False) == (
        private,
        AddressKind.PRIVATE,
    )
    assert first_refused_address([public, private], allow_private_networks=True) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("2130706433", "127.0.0.1"),  # one decimal number
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("127.1", "127.0.0.1"),
        ("10.0.258", "10.0.1.2"),
        ("169.254.43518", "169.254.169.254"),
        ("0xA9FEA9FE", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("shop.example.ma", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("08.1.1.1", None),  # 8 is no octal digit
        ("123abc", None),
    ],
)
def test_the_hosts_that_spell_an_address(host, address):
    expected = ipaddress.ip_address(address) if address else None
    assert host_address(host) == expected


PRODUCTION = {"require_https": True, "allow_private_hosts": False}
DEVELOPMENT = {"require_https": False, "allow_private_hosts": True}


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254:8080/",
        "https://localhost:9/",
        "https://LOCALHOST./",
        "https://hooks.localhost/",
        "https://[::1]:9/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1%25eth0]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://0177.0.0.1/",
        "https://10.1.2.3/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_production_refuses_urls_written_with_a_non_public_host(url):
    with pytest.raises(EndpointUrlError) as caught:
        check_endpoint_url(url, **PRODUCTION)
    assert caught.value.code == "webhook_url_not_public"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hooks", "http://localhost:9000/hooks", "http://[::1]:9/", "http://10.0.0.5/"],
)
def test_development_accepts_loopback_and_private_receivers(url):
    check_endpoint_url(url, **DEVELOPMENT)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
        "http://169.254.1.1/",
        "http://0.0.0.0:9/",
        "http://[ff02::1]/",
    ],
)
def test_development_still_refuses_metadata_link_local_and_the_like(url):
    with pytest.raises(EndpointUrlError) as caught:
        check_endpoint_url(url, **DEVELOPMENT)
    assert caught.value.code == "webhook_url_not_public"


def test_production_wants_https_and_accepts_public_hosts():
    with pytest.raises(EndpointUrlError) as caught:
        check_endpoint_url("http://shop.example.ma/hooks", **PRODUCTION)
    assert caught.value.code == "insecure_webhook_url"
    check_endpoint_url("https://shop.example.ma/hooks", **PRODUCTION)  # a name: resolved later
    check_endpoint_url("https://93.184.216.34/hooks", **PRODUCTION)
    check_endpoint_url("https://[2606:4700:4700::1111]/hooks", **PRODUCTION)
