"""POSTing one webhook: the HTTP glue, kept apart from the scheduling in the service layer.

A send never takes longer than its timeout, whatever the endpoint does: the name is resolved within
it, the socket operations time out, and a watchdog cuts the connection at the deadline, so an
endpoint that trickles its answer a byte at a time cannot hold a worker thread either. Redirects are
not followed (a 3xx is a failed attempt).

Every send resolves the endpoint's name afresh, checks every address it resolves to against the
domain's rules (``address_allowed``: public only, plus loopback and private networks where the
setting allows), and connects to one of those very addresses: a name that has been re-pointed at
our own network since it was registered (DNS rebinding) gets no request, and the attempt fails
with ``address_not_allowed``. TLS still checks the certificate against the name.

Outcomes carry a short error code, never an exception's text (which may quote the URL).
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import requests.certs

from services.payments.domain.webhooks import (
    HostNotResolved,
    HostResolver,
    IPAddress,
    SendOutcome,
    WebhookRequest,
    first_refused_address,
    url_host_and_port,
)

__all__ = ["HttpWebhookSender", "SendOutcome", "SystemResolver", "WebhookRequest"]

log = logging.getLogger(__name__)


class SystemResolver:
    """The ``HostResolver`` of the domain's port: ``getaddrinfo`` with a timeout.

    ``getaddrinfo`` itself cannot be given one, so each lookup runs on a daemon thread the caller
    stops waiting for at its deadline; at most ``max_lookups`` run at once, so a name server that
    hangs ties up that many threads at worst (until the system resolver gives up), never more.
    """

    def __init__(self, max_lookups: int = 16) -> None:
        self._slots = threading.BoundedSemaphore(max_lookups)

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=max(timeout, 0.0)):
            raise HostNotResolved("dns_timeout")
        found: list[IPAddress] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def look_up() -> None:
            try:
                for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                    address = ipaddress.ip_address(str(sockaddr[0]))
                    if address not in found:
                        found.append(address)
            except (OSError, UnicodeError, ValueError) as exc:  # gaierror, an over-long label…
                failed.append(exc)
            finally:
                self._slots.release()
                done.set()

        threading.Thread(target=look_up, name="webhook-dns", daemon=True).start()
        if not done.wait(max(deadline - time.monotonic(), 0.0)):
            raise HostNotResolved("dns_timeout")
        if failed or not found:
            raise HostNotResolved("dns_error")
        return list(found)


class HttpWebhookSender:
    """The ``WebhookSender`` of the domain's port, over HTTP(S)."""

    def __init__(self, *, allow_private_networks: bool, resolver: HostResolver | None = None) -> None:
        self.allow_private_networks = allow_private_networks
        self.resolver = resolver or SystemResolver()
        # The same trust store as every other outgoing call (requests' CA bundle).
        self._tls = ssl.create_default_context(cafile=requests.certs.where())

    def send(self, request: WebhookRequest, timeout: float) -> SendOutcome:
        started = time.monotonic()

        def elapsed_ms() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            host, port = url_host_and_port(request.url)
            connection, target = self._connection(request.url, timeout)
        except ValueError:
            return SendOutcome(None, "invalid_url", 0)
        try:
            addresses = self.resolver.resolve(host, port, timeout)
        except HostNotResolved as exc:
            return SendOutcome(None, exc.reason, elapsed_ms())
        refused = first_refused_address(addresses, allow_private_networks=self.allow_private_networks)
        if refused is not None:
            address, kind = refused
            log.warning(
                "webhook not sent: its host resolves to a refused address",
                extra={"host": host, "address": str(address), "address_kind": str(kind)},
            )
            return SendOutcome(None, "address_not_allowed", elapsed_ms())
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            return SendOutcome(None, "timeout", elapsed_ms())
        connection.timeout = remaining
        # http.client opens its socket through this attribute; TLS then wraps that socket with the
        # original host name (SNI and certificate checks are unchanged).
        connection._create_connection = _connector(addresses)  # type: ignore[attr-defined]
        deadline_passed = threading.Event()
        watchdog = threading.Timer(remaining, _cut, args=(connection, deadline_passed))
        watchdog.daemon = True
        watchdog.start()
        status: int | None = None
        error: str | None = None
        try:
            connection.request("POST", target, body=request.body, headers=dict(request.headers))
            status = connection.getresponse().status
        except TimeoutError:
            error = "timeout"
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
        return SendOutcome(status, error, elapsed_ms())

    def _connection(self, url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an absolute http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            return (
                http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=self._tls),
                target,
            )
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), target


def _connector(addresses: Sequence[IPAddress]) -> Callable[..., socket.socket]:
    """``socket.create_connection`` that ignores the host it is given and tries ``addresses``, the
    ones just checked, in order."""

    def connect(
        address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        _host, port = address
        last_error: OSError | None = None
        for checked in addresses:
            # A numeric host: no second lookup, whose answer could differ from the one checked.
            for family, kind, protocol, _name, sockaddr in socket.getaddrinfo(
                str(checked), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            ):
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
        raise last_error or ConnectionError("no address to connect to")

    return connect


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
