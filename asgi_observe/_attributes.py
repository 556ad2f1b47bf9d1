"""Server address attributes and a header getter, from raw ASGI request data."""

from __future__ import annotations

from typing import Any

from opentelemetry.propagators.textmap import Getter

__all__ = ["ASGI_GETTER", "server_address", "socket_address", "split_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_Address = dict[str, Any]
_NO_ADDRESS: _Address = {}
# Host header value and scheme -> server.address/server.port. A service sees a handful
# of Host values, so parsing each once pays; the bound keeps hostile values from
# growing it (when full it starts over).
_MAX_CACHED_HOSTS = 256
# RFC 1035 names are at most 253 characters; add brackets, a colon and a port.
_MAX_HOST_LENGTH = 263
_hosts: dict[tuple[bytes, str], _Address | None] = {}


def server_address(host_header: bytes, scheme: str) -> _Address | None:
    # Semantic conventions prefer the Host header over the socket address; a
    # malformed Host is ignored rather than reported (None: use the socket).
    key = (host_header, scheme)
    try:
        return _hosts[key]
    except KeyError:
        pass
    if len(host_header) > _MAX_HOST_LENGTH:
        return None  # longer than any DNS name and port: not a usable Host
    host, port = split_host(host_header.decode("latin-1"))
    address: _Address | None = None
    if host:
        if port is None:
            port = _DEFAULT_PORTS.get(scheme)
        address = (
            {"server.address": host}
            if port is None
            else {
                "server.address": host,
                "server.port": port,
            }
        )
    if len(_hosts) >= _MAX_CACHED_HOSTS:
        _hosts.clear()
    _hosts[key] = address
    return address


def socket_address(server: Any) -> _Address:
    if not server:
        return _NO_ADDRESS
    if server[1] is None:
        return {"server.address": server[0]}
    return {"server.address": server[0], "server.port": server[1]}


def split_host(host: str) -> tuple[str, int | None]:
    host = host.strip()
    if host.startswith("["):  # IPv6 literal: [::1]:8000
        end = host.find("]")
        if end == -1:
            return "", None
        address, rest = host[1:end], host[end + 1 :]
        if not rest:
            return address, None
        if not rest.startswith(":"):
            return "", None
        port_text = rest[1:]
    else:
        address, sep, port_text = host.partition(":")
        if not sep:
            return address, None
    if port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535:
        return address, int(port_text)
    return "", None


class AsgiHeaderGetter(Getter[Any]):
    """Reads raw ASGI header pairs for propagators other than ours."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


ASGI_GETTER = AsgiHeaderGetter()
