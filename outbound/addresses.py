"""Server-side request forgery guard: user-chosen URLs may only reach the public internet.

A webhook URL is chosen by whoever creates a task, but the request is sent from
inside the platform's network. Without a guard it could reach the metadata
service (169.254.169.254), the Postgres or Redis next to the worker, or any
internal admin page. So a destination is allowed only when EVERY address its
host resolves to is a public unicast one. The check runs twice: when the URL is
submitted (a clear 422) and again right before each delivery, on a fresh
resolution, because a name can be re-pointed after it was accepted (DNS
rebinding); the sender then connects to the address it checked, not to a second
resolution of the name.

Shared by the API and the worker, which may not import each other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 5.0
ALLOWED_SCHEMES = frozenset({"http", "https"})


class DestinationRefusedError(ValueError):
    """The URL may not be called: bad scheme, no host, or a non-public address."""


def is_public_address(address: IPAddress) -> bool:
    """Public unicast only: no loopback, private, link-local, multicast, reserved, CGNAT…"""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel; Python 3.11 does not unwrap it.
        return is_public_address(address.ipv4_mapped)
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_private
    )


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise DestinationRefusedError(f"webhook URLs must be http or https, not {scheme!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port out of range
        raise DestinationRefusedError(f"invalid webhook URL: {exc}") from None
    if not host:
        raise DestinationRefusedError("the webhook URL has no host")
    return host, port or (443 if scheme == "https" else 80)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal: IPAddress = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise DestinationRefusedError(f"the webhook host {host!r} does not resolve") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        # sockaddr[0] may carry an IPv6 zone ("fe80::1%eth0"): link-local anyway.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationRefusedError(f"the webhook host {host!r} does not resolve")
    return addresses


async def check_destination(url: str, *, allow_private: bool) -> list[IPAddress]:
    """The addresses `url` may be sent to, in resolution order; raises when refused.

    With `allow_private` (local development, tests) only the scheme and host are
    checked and nothing is resolved: the empty list means "connect by name".
    """
    host, port = _host_and_port(url)
    if allow_private:
        return []
    addresses = await _resolve(host, port)
    refused = [str(a) for a in addresses if not is_public_address(a)]
    if refused:
        raise DestinationRefusedError(
            f"the webhook host {host!r} resolves to a non-public address "
            f"({', '.join(refused)}); set TASKPLANE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true "
            "to allow loopback and private networks"
        )
    return addresses
