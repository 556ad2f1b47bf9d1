"""Who may see the viewer: loopback clients only, unless networks are allowed explicitly.

"Client" is ``scope["client"]``: the TCP peer, or the address the server took from
``X-Forwarded-For`` when it trusts the proxy (uvicorn's ``--forwarded-allow-ips``). With
the default policy a request that names a forwarded client in any header is refused even
from a loopback peer (a proxy on the same host would otherwise let everyone in), and the
Host header must be a loopback name, so a web page cannot reach the viewer through DNS
rebinding. docs/viewer.md explains both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from asgi_observe._core.types import Scope

__all__ = ["DEFAULT_ALLOW", "ClientPolicy"]

DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")
_FORWARDING_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: object) -> _Address | None:
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _loopback_host(value: bytes) -> bool:
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def _network(text: str) -> _Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"viewer allow: {text!r} is not a network") from exc


class ClientPolicy:
    """Decides, per request, whether the viewer answers.

    Args:
        allow: networks (CIDR or single addresses) whose clients may use the viewer;
            None for loopback only, with the proxy and Host checks described above.
    """

    __slots__ = ("explicit", "networks")

    def __init__(self, allow: Iterable[str] | None = None) -> None:
        if isinstance(allow, str):
            raise TypeError("viewer allow must be a list of networks, not a string")
        self.explicit = allow is not None
        self.networks = tuple(
            _network(item) for item in (DEFAULT_ALLOW if allow is None else allow)
        )

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when it may be answered."""
        client = scope.get("client")
        address = _address(client[0] if client else None)
        if address is None or not any(address in network for network in self.networks):
            shown = client[0] if client else "unknown"
            return f"client {shown} is not allowed (loopback only unless allowed explicitly)"
        if self.explicit:
            return None
        for name, value in scope.get("headers") or ():
            lowered = name.lower()
            if lowered in _FORWARDING_HEADERS:
                return "the request came through a proxy; allow its clients explicitly"
            if lowered == b"host" and not _loopback_host(value):
                return "the Host header is not a loopback name"
        return None
