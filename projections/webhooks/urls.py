"""Where a webhook may be delivered (SSRF): the URL's syntax, then the address itself.

A name is resolved once per attempt, every address it resolves to is checked, and
the request goes to that checked address (``Host`` and TLS SNI keep the name, so the
certificate is still verified against it). Re-resolving at connect time would let a
DNS answer that changes between the check and the connect (DNS rebinding) reach a
loopback or private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

Resolver = Callable[[str, int], Awaitable[list[str]]]


class UrlRefused(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    """A checked delivery target: connect to ``url`` (an address), present ``host``."""

    url: str
    host: str  # the Host header (name and, when not the default, port)
    server_name: str  # TLS SNI and certificate name


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


def check_url_syntax(url: str, *, production: bool, allow_private: bool) -> None:
    """What can be told without resolving: scheme, host, a literal address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("The URL must be an absolute http(s) URL.")
    if production and parts.scheme != "https":
        raise UrlRefused("Webhook endpoints must use https.")
    if parts.username or parts.password:
        raise UrlRefused("The URL must not carry credentials.")
    if allow_private:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlRefused("Loopback addresses are not allowed.")
    try:
        forbidden = _forbidden(host)
    except ValueError:
        return  # a name: resolved (and checked) at delivery time
    if forbidden:
        raise UrlRefused("Loopback, private and link-local addresses are not allowed.")


async def resolve_target(
    url: str, *, production: bool, allow_private: bool, resolve: Resolver = system_resolver,
) -> Target:
    """The syntax check, then every address the host resolves to; the first is pinned."""
    check_url_syntax(url, production=production, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None  # checked above
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise UrlRefused(f"The host does not resolve: {exc}") from exc
    if not addresses:
        raise UrlRefused("The host does not resolve.")
    if not allow_private and any(_forbidden(a) for a in addresses):
        raise UrlRefused("The host resolves to a loopback, private or link-local address.")
    address = addresses[0].split("%", 1)[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    shown = parts.netloc.rsplit("@", 1)[-1]
    return Target(url=pinned, host=shown, server_name=host)
