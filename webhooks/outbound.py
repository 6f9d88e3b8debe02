"""What leaves the platform for a webhook, and where it may go.

Server-side request forgery guard: user-chosen URLs may only reach the public
internet. A webhook URL is chosen by whoever creates a task, but the request is sent
from inside the platform's network. Without a guard it could reach the metadata
service (169.254.169.254), the Postgres or Redis next to the worker, or any
internal admin page. So a destination is allowed only when EVERY address its
host resolves to is a public unicast one. The check runs twice: when the URL is
submitted (a clear 422, webhooks/api.py) and again right before each delivery, on a
fresh resolution, because a name can be re-pointed after it was accepted (DNS
rebinding); `post` then connects to the address it checked (`pinned`), not to a
second resolution of the name.

Each request is signed as the Standard Webhooks spec says: `webhook-id` (the event
id, the same on every retry, so a receiver can dedupe), `webhook-timestamp`,
`webhook-signature` (`v1,<HMAC>`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from webhooks.policy import DeliveryPolicy
from webhooks.store import ClaimedDelivery

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 5.0
ALLOWED_SCHEMES = frozenset({"http", "https"})
USER_AGENT = "Taskplane-Webhooks/1"
MAX_ERROR_LENGTH = 500


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


# --- the request ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: the receiver's status (None: no answer) and the problem."""

    status_code: int | None
    error: str | None  # None: acknowledged

    @property
    def acknowledged(self) -> bool:
        return self.error is None


def signed_headers(delivery: ClaimedDelivery, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers; the id is the event id, stable across retries."""
    signature = Webhook(delivery.secret).sign(
        msg_id=delivery.event_id, timestamp=now, data=delivery.body
    )
    return {
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def pinned(url: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """`url` aimed at `address`: the URL, headers and request extensions to send with.

    The connection goes to the address; `Host` and, for https, the TLS server name
    (SNI, and the name the certificate is verified against) stay the URL's host.
    """
    headers = {"host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), headers, extensions


def http_client(timeout_seconds: float) -> httpx.AsyncClient:
    """The client `post` sends with.

    No redirects (one could lead anywhere, past the address check), no proxy from
    the environment (connect to the checked address), and no kept-alive connections,
    so a TLS connection made for one host name is never reused for another name on
    the same address.
    """
    return httpx.AsyncClient(
        timeout=timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def post(
    client: httpx.AsyncClient, delivery: ClaimedDelivery, policy: DeliveryPolicy
) -> Outcome:
    """One attempt: check the destination again, sign, POST to the checked address."""
    try:
        addresses = await check_destination(
            delivery.url, allow_private=policy.allow_private_networks
        )
    except DestinationRefusedError as exc:
        return Outcome(None, str(exc))
    try:
        headers = signed_headers(delivery, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - a corrupt stored secret: fails like an attempt
        return Outcome(None, f"cannot sign with the stored secret: {type(exc).__name__}")
    url = httpx.URL(delivery.url)
    extensions: dict[str, str] = {}
    if addresses:  # connect to the address just checked, not to a new resolution
        url, pinning_headers, extensions = pinned(url, addresses[0])
        headers.update(pinning_headers)
    try:
        async with (
            asyncio.timeout(policy.timeout_seconds),
            client.stream(
                "POST", url, content=delivery.body.encode(), headers=headers, extensions=extensions
            ) as response,
        ):
            # The receiver's body is not read: its status is the whole answer.
            status = response.status_code
    except (httpx.HTTPError, TimeoutError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
    if 200 <= status < 300:
        return Outcome(status, None)
    return Outcome(status, f"HTTP {status}")
