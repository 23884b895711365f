"""Outbound HTTP to URLs that workspace users control (webhook templates, provider
base URLs in channel settings): a guard against server-side request forgery.

A URL may be called when its scheme is http or https and every address its host
resolves to is public. Loopback, private (RFC 1918, fc00::/7), link-local (169.254/16
with the cloud metadata address, fe80::/10), unspecified, multicast, reserved,
carrier-grade NAT (100.64/10) and other non-global addresses are refused, also when
they come wrapped in an IPv4-mapped (::ffff:a.b.c.d) or 6to4 IPv6 address, unless the
address is in settings.OUTBOUND_ALLOWED_NETWORKS.

`transport()` makes the check where the connection is opened: its network backend
resolves the host once, checks every address, and connects to one of the checked
addresses (TLS still verifies the certificate for the host name). A DNS answer that
changes between the check and the connection (DNS rebinding) therefore cannot send
the request elsewhere, and each redirect hop, being a new connection, is checked
too. `url_refusal()` is the same decision for one URL, for callers that cannot use
the transport (google-auth's token request goes through `requests`); those are
checked at request time and keep the rebinding gap (docs/delivery.md).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "OUTBOUND_ALLOWED_NETWORKS"
SCHEMES = ("http", "https")
# What ipaddress has no property for (RFC 6598): is_global is False for it, but the
# refusal should say what it is.
CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
# httpx's own pool limits (httpx.Client's defaults).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class OutboundRefused(httpx.TransportError):
    """The URL may not be called. A TransportError, so a caller that already treats
    network errors (retry, fail) handles it; callers that know better catch it first.
    The message reads after "webhook URL" or "base_url": "host 10.0.0.5 is a private
    address; allow it with OUTBOUND_ALLOWED_NETWORKS"."""


def allowed_networks() -> tuple[IPNetwork, ...]:
    from django.conf import settings

    return _parse_networks(tuple(getattr(settings, SETTING, ())))


@functools.lru_cache(maxsize=8)
def _parse_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(value) for value in values)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and routes to (::ffff:a.b.c.d, 2002:a.b.c.d::)."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour
    return None


def _kind(address: IPAddress) -> str | None:
    """Why the address may not be reached ("loopback", "private", ...), None when it
    is a public one."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address in CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if address.is_private:
        return "private"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if not address.is_global:
        return "non-public"
    return None


def address_refusal(
    address: IPAddress | str, *, allowed: Iterable[IPNetwork] | None = None
) -> str | None:
    """The kind of address ("private", "loopback", "link-local", ...) when it may not
    be reached, None when it may. `allowed`: the networks let through (default: the
    setting)."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone id
    networks = tuple(allowed_networks() if allowed is None else allowed)
    embedded = _embedded_ipv4(address)
    candidates = [address] if embedded is None else [address, embedded]
    if any(candidate in network for candidate in candidates for network in networks):
        return None
    if embedded is not None:
        # An IPv4-mapped ::ffff:a.b.c.d sits in ::/8 (reserved): judge what it carries.
        kind = _kind(embedded)
        if kind is not None:
            return f"IPv4-mapped {kind}" if address.ipv4_mapped else f"6to4 {kind}"
        return None if address.ipv4_mapped else _kind(address)
    return _kind(address)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _refused(host: str, address: str, kind: str) -> OutboundRefused:
    article = "an" if kind[0] in "aeiouAEIOU" else "a"
    where = (
        f"host {host} is {article} {kind} address"
        if _literal(host) is not None
        else f"host {host} resolves to {article} {kind} address ({address})"
    )
    return OutboundRefused(f"{where}; allow it with {SETTING}")


def resolve(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) of every A/AAAA record of the host, in resolver order.
    socket.gaierror when it does not resolve."""
    seen: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        entry = (family, str(sockaddr[0]))
        if entry not in seen:
            seen.append(entry)
    return seen


def checked_addresses(host: str, port: int) -> list[str]:
    """The host's addresses when all of them may be reached; OutboundRefused naming the
    first one that may not, socket.gaierror when the host does not resolve."""
    addresses = resolve(host, port)
    networks = allowed_networks()
    for _, address in addresses:
        kind = address_refusal(address, allowed=networks)
        if kind is not None:
            raise _refused(host, address, kind)
    return [address for _, address in addresses]


def scheme_problem(url: str) -> str | None:
    """What makes `url` no http(s) URL with a host, None when it is one (no lookup)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme.lower() not in SCHEMES:
        return f"only http and https URLs may be called, not {parts.scheme or 'no scheme'!r}"
    if not parts.hostname:
        return "the URL has no host"
    return None


def configured_url_problem(url: str) -> str | None:
    """The save-time check of a URL in settings: http(s), a host, and when the host is
    an IP address, one that may be reached. Host names are looked up at send time
    (what they resolve to today says little about tomorrow)."""
    problem = scheme_problem(url)
    if problem is not None:
        return problem
    host = urlsplit(url.strip()).hostname or ""
    address = _literal(host)
    if address is not None:
        kind = address_refusal(address)
        if kind is not None:
            return str(_refused(host, str(address), kind))
    return None


def check_configured_url(value: str) -> str:
    """A pydantic validator body: the value, or ValueError saying what is wrong."""
    if value:
        problem = configured_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def url_refusal(url: str) -> str | None:
    """The full check of one URL, looking its host up now: why it may not be called,
    None when it may. Prefer `transport()`, which also connects to what it checked."""
    problem = scheme_problem(url)
    if problem is not None:
        return problem
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        checked_addresses(parts.hostname or "", port)
    except OutboundRefused as error:
        return str(error)
    except (socket.gaierror, UnicodeError) as error:
        return f"host {parts.hostname} does not resolve: {error}"
    return None


def requests_session():
    """A `requests` session for a library that takes one (google-auth): it follows no
    redirect, so a URL checked with url_refusal() cannot send it elsewhere. What the
    host resolves to between that check and the connection is not pinned."""
    import requests

    session = requests.Session()
    session.max_redirects = 0  # a 3xx raises TooManyRedirects instead of being followed
    return session


class _GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to checked addresses of the requested host."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port)
        except (socket.gaierror, UnicodeError) as error:
            raise httpcore.ConnectError(f"{host}: {error}") from None
        last_error: Exception | None = None
        for address in addresses:  # as socket.create_connection would, in order
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        raise last_error or httpcore.ConnectError(f"{host}: no address")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool built on the guarded backend.

    Environment proxies are not used (httpx ignores them when a client gets a
    transport): a proxy would resolve the host itself, past the check."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = DEFAULT_LIMITS
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx has no parameter for httpcore's (public) network_backend: the pool is
        # built again the way HTTPTransport builds it, with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(),
        )


def transport(*, verify: ssl.SSLContext | bool = True) -> GuardedTransport:
    """For `httpx.Client(transport=outbound.transport())`: requests through it raise
    OutboundRefused instead of connecting to an address that may not be reached."""
    return GuardedTransport(verify=verify)
