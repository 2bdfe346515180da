"""POSTing one webhook: the HTTP glue, kept apart from the scheduling in the service layer.

A send never takes longer than its timeout, whatever the endpoint does: the socket operations time
out, and a watchdog cuts the connection at the deadline, so an endpoint that trickles its answer a
byte at a time cannot hold a worker thread either. Redirects are not followed (a 3xx is a failed
attempt). In production only globally routable addresses are connected to, checked after name
resolution, so a webhook URL cannot be pointed at our own network.

Outcomes carry a short error code, never an exception's text (which may quote the URL).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import requests.certs

from services.payments.domain.webhooks import SendOutcome, WebhookRequest, is_global_address

__all__ = ["AddressNotAllowed", "HttpWebhookSender", "SendOutcome", "WebhookRequest"]


class AddressNotAllowed(OSError):
    """The host resolves to no globally routable address."""


class HttpWebhookSender:
    """The ``WebhookSender`` of the domain's port, over HTTP(S)."""

    def __init__(self, *, allow_private_networks: bool) -> None:
        self.allow_private_networks = allow_private_networks
        # The same trust store as every other outgoing call (requests' CA bundle).
        self._tls = ssl.create_default_context(cafile=requests.certs.where())

    def send(self, request: WebhookRequest, timeout: float) -> SendOutcome:
        started = time.monotonic()
        try:
            connection, target = self._connection(request.url, timeout)
        except ValueError:
            return SendOutcome(None, "invalid_url", 0)
        deadline_passed = threading.Event()
        watchdog = threading.Timer(timeout, _cut, args=(connection, deadline_passed))
        watchdog.daemon = True
        watchdog.start()
        status: int | None = None
        error: str | None = None
        try:
            connection.request("POST", target, body=request.body, headers=dict(request.headers))
            status = connection.getresponse().status
        except TimeoutError:
            error = "timeout"
        except AddressNotAllowed:
            error = "address_not_allowed"
        except ConnectionRefusedError:
            error = "connection_refused"
        except socket.gaierror:
            error = "dns_error"
        except ssl.SSLError:
            error = "tls_error"
        except ValueError:  # a URL http.client cannot put on the wire (stored before today's checks)
            error = "invalid_url"
        except (http.client.HTTPException, OSError):
            # After the watchdog cut the connection the read fails in one of many ways: that is a timeout.
            error = "timeout" if time.monotonic() - started >= timeout else "connection_error"
        finally:
            watchdog.cancel()
            connection.close()
        if deadline_passed.is_set():
            # Cut mid-answer, http.client may take the end of the stream for the end of the headers
            # and hand back a status line: it is still an answer that did not come in time.
            status, error = None, "timeout"
        return SendOutcome(status, error, round((time.monotonic() - started) * 1000))

    def _connection(self, url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an absolute http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        if not self.allow_private_networks:
            # http.client opens its socket through this attribute; TLS then wraps that socket with the
            # original host name (SNI and certificate checks are unchanged).
            connection._create_connection = _connect_to_public_address  # type: ignore[attr-defined]
        return connection, target


def _connect_to_public_address(
    address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None
) -> socket.socket:
    host, port = address
    candidates = [
        info
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if is_global_address(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
    ]
    if not candidates:
        raise AddressNotAllowed("no public address")
    last_error: OSError | None = None
    for family, kind, protocol, _name, sockaddr in candidates:
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    assert last_error is not None
    raise last_error


def _cut(connection: http.client.HTTPConnection, deadline_passed: threading.Event) -> None:
    """At the deadline: shut the socket down under whatever read or write is blocked on it."""
    deadline_passed.set()
    sock = connection.sock
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also under TLS: it unblocks the reader without touching SSL state.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
