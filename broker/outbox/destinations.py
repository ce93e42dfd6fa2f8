"""Where Broker may make an HTTP call on a party's behalf, and the connection
that goes only there: agents' callbacks (`broker.outbox.delivery`) and the check
of a store's custom domain (`broker.storefront.domains`).

The destination check refuses URLs that would let a party make Broker call into
its own network (SSRF): other schemes, credentials in the URL, ports other than
80 and 443, and any host that resolves to a private, loopback, link-local,
multicast, reserved or unspecified address, including those hidden in
IPv4-mapped, 6to4, Teredo and NAT64 IPv6 forms. The host is resolved once, every
address is checked, and `PinnedConnection` connects to a checked address (HTTPS
still sends SNI and verifies the certificate against the host name): a DNS
answer that changes between the check and the connection (DNS rebinding) cannot
redirect it. Callers never follow redirects, and ignore proxy settings in the
environment (a proxy would make the check moot). `allow_private` (the operator's
BROKER_ALLOW_PRIVATE_CALLBACKS: tests, agents on a LAN) lifts the address and
port rules, never the scheme and credential rules.

Why a connection of our own, on http.client, and not a client library:
urllib3 (already installed, under stripe) can connect to a checked address and
still verify the certificate against the name (`server_hostname`,
`assert_hostname`), but neither it nor httpx or requests bounds a whole call:
their timeouts are per operation, so a server that sends its response headers a
byte at a time keeps the dispatcher past its lease. `PinnedConnection` arms
every socket operation with what is left of one deadline.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
_NEVER_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SAFE = "/%:@!$&'()*+,;=-._~"


@dataclasses.dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    # getaddrinfo's (family, type, proto, sockaddr) for each address, checked.
    addresses: tuple[tuple[Any, ...], ...] = ()


class Refused(Exception):
    """A callback URL Broker will not call; the message is the reason."""


def check_destination(url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> str | None:
    """Why Broker refuses to call `url`, or None if it may.

    With `allow_private` only the scheme and credential rules apply (and the URL
    is not resolved).
    """
    try:
        if allow_private:
            parse_destination(url, allow_private=True)
        else:
            resolve_destination(url, allow_private=False, resolver=resolver)
    except Refused as exc:
        return str(exc)
    return None


def parse_destination(url: str, *, allow_private: bool) -> Destination:
    url = url.strip()
    if _NEVER_IN_URL.search(url):
        # The URL becomes the request line and the Host header: nothing that could end either.
        raise Refused("the URL may not contain spaces or control characters (or lone surrogates)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise Refused("credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    if not allow_private:
        name = host.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
            raise Refused(f"{host} is a loopback name")
        literal = ip_literal(host)
        if literal is not None:
            reason = refused_address(literal)
            if reason:
                raise Refused(reason)
    default = 443 if parts.scheme == "https" else 80
    port = default if port is None else port
    if not allow_private and port not in (80, 443):
        raise Refused(f"port {port} is not allowed (only 80 and 443)")
    # Serialised from the parsed URL: non-ASCII percent-encoded, as a request line must be.
    target = quote(parts.path or "/", safe=_SAFE) + (f"?{quote(parts.query, safe=_SAFE + '?')}" if parts.query else "")
    return Destination(parts.scheme, host, port, target)


def resolve_destination(url: str, *, allow_private: bool, resolver: Resolver) -> Destination:
    """Parse and check `url`, resolve its host once and check every address."""
    destination = parse_destination(url, allow_private=allow_private)
    literal = ip_literal(destination.host)
    if literal is not None:
        # No lookup for an address literal (and no DNS in tests that use one).
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        sockaddr = (str(literal), destination.port) if literal.version == 4 else (str(literal), destination.port, 0, 0)
        infos = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
    else:
        try:
            infos = list(resolver(destination.host, destination.port, 0, socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            raise Refused(f"cannot resolve {destination.host}: {exc}") from None
    if not infos:
        raise Refused(f"{destination.host} resolves to no address")
    addresses = []
    for family, type_, proto, _canonname, sockaddr in infos:
        if not allow_private:
            try:
                address = ipaddress.ip_address(sockaddr[0])
            except ValueError:
                raise Refused(f"{destination.host} resolves to {sockaddr[0]!r}, not an IP address") from None
            reason = refused_address(address)
            if reason:
                # One bad address refuses the host: we might connect to any of them.
                raise Refused(f"{destination.host} resolves to a refused address: {reason}")
        addresses.append((family, type_ or socket.SOCK_STREAM, proto, sockaddr))
    return dataclasses.replace(destination, addresses=tuple(addresses))


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 ones reach the IPv4 network behind
        # them: check what they carry.
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            reason = refused_address(inner)
            if reason:
                return f"{address} embeds {reason}"
    for test, kind in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        # Shared address space (100.64/10), documentation ranges and the like:
        # not private by the table, but not on the internet either.
        (not address.is_global, "non-global"),
    ):
        if test:
            return f"{address} is a {kind} address"
    return None


class PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address checked beforehand, not to whatever the
    host name resolves to now. The Host header, SNI and certificate check still
    use the host name."""

    def __init__(self, destination: Destination, timeout: float, deadline: float):
        """`deadline` (time.monotonic()) bounds the whole call: every operation's
        timeout is cut so that the call ends by then."""
        super().__init__(destination.host, destination.port, timeout=timeout)
        self.default_port = 443 if destination.scheme == "https" else 80  # Host header without ":443"
        self._destination = destination
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._open(), self._deadline, self.timeout)

    def _open(self) -> socket.socket:
        error: OSError | None = None
        for family, type_, proto, sockaddr in self._destination.addresses:
            sock = socket.socket(family, type_, proto)
            try:
                sock.settimeout(_remaining(self._deadline, self.timeout))
                sock.connect(sockaddr)
                if self._destination.scheme == "https":
                    # wrap_socket takes the socket over (and closes it on failure).
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._destination.host)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError("no address to connect to")


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the callback took too long")
    return min(timeout, left)


class _DeadlineSocket:
    """The little of the socket interface http.client uses, with each operation's
    timeout shortened so the whole call ends by the deadline. Like a socket, it
    stays open while a file made from it (a response being read) is open."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float):
        self._sock = sock
        self._deadline = deadline
        self._timeout = timeout
        self._files = 0
        self._closed = False

    def _arm(self) -> None:
        self._sock.settimeout(_remaining(self._deadline, self._timeout))

    def sendall(self, data) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str):
        self._files += 1
        return io.BufferedReader(_Reader(self))

    def file_closed(self) -> None:
        self._files -= 1
        if self._closed and self._files <= 0:
            self._sock.close()

    def close(self) -> None:
        # http.client closes the connection as soon as a response says it will
        # close, and hands the response the reading: the socket lives on until
        # the response is closed too.
        self._closed = True
        if self._files <= 0:
            self._sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.file_closed()
        super().close()
