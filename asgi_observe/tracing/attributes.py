"""A request span's parent context and start attributes, from raw ASGI request data."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator

from asgi_observe._core.http import OTHER_METHOD
from asgi_observe._core.types import Scope
from asgi_observe.propagation import context_from_w3c, w3c_propagator
from asgi_observe.scrub.scrubber import redact_query_string
from asgi_observe.scrub.urls import redact_userinfo

__all__ = ["ASGI_GETTER", "server_address", "socket_address", "span_start_facts", "split_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TRACEPARENT, _TRACESTATE, _BAGGAGE, _HOST, _USER_AGENT = range(5)
_HEADER_SLOTS = {
    b"traceparent": _TRACEPARENT,
    b"tracestate": _TRACESTATE,
    b"baggage": _BAGGAGE,
    b"host": _HOST,
    b"user-agent": _USER_AGENT,
}

# Every header name seen -> its slot, or None when unused, so that a name is lower-cased
# only the first time. Bounded against clients that invent names: past the bound, or for
# a long name, it is lower-cased on each request.
_MAX_CACHED_NAMES = 512
_MAX_CACHED_NAME_LENGTH = 64
_slots: dict[bytes, int | None] = dict(_HEADER_SLOTS)

_Address = dict[str, Any]
_NO_ADDRESS: _Address = {}
# Host header value and scheme -> server.address/server.port. A service sees a handful
# of Host values, so parsing each once pays; the bound keeps hostile values from
# growing it (when full it starts over).
_MAX_CACHED_HOSTS = 256
# RFC 1035 names are at most 253 characters; add brackets, a colon and a port.
_MAX_HOST_LENGTH = 263
_hosts: dict[tuple[bytes, str], _Address | None] = {}


def span_start_facts(
    scope: Scope, scope_type: str, propagator: TextMapPropagator, known_methods: Collection[str]
) -> tuple[Context, dict[str, Any], str]:
    """One pass over the raw headers: the parent context and the start attributes."""
    traceparents: list[bytes] = []
    tracestates: list[bytes] = []
    baggages: list[bytes] = []
    hosts: list[bytes] = []
    user_agent: bytes | None = None
    for name, value in scope["headers"]:
        # Most request headers are none of these: one dict lookup rejects them.
        try:
            slot = _slots[name]
        except KeyError:
            slot = _slot_of(name)
        if slot is None:
            continue
        if slot == _HOST:
            hosts.append(value)
        elif slot == _TRACEPARENT:
            traceparents.append(value)
        elif slot == _USER_AGENT:
            if user_agent is None:
                user_agent = value
        elif slot == _TRACESTATE:
            tracestates.append(value)
        else:
            baggages.append(value)

    if propagator is w3c_propagator():
        parent_context = context_from_w3c(traceparents, tracestates, baggages)
    else:
        parent_context = propagator.extract(scope["headers"], getter=ASGI_GETTER)

    if scope_type == "http":
        method_original = scope["method"]
        scheme = scope.get("scheme", "http")
    else:
        method_original = "GET"  # a websocket handshake is a GET request
        scheme = scope.get("scheme", "ws")
    method = method_original if method_original in known_methods else OTHER_METHOD

    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scheme,
        # An absolute-form request target puts a whole URL, userinfo too, in the path.
        "url.path": redact_userinfo(scope["path"], "REDACTED"),
    }
    if method is OTHER_METHOD:
        attributes["http.request.method_original"] = method_original
    query_string = scope.get("query_string")
    if query_string:
        attributes["url.query"] = redact_query_string(query_string)
    address = server_address(hosts[0], scheme) if len(hosts) == 1 else None
    if address is None:
        address = socket_address(scope.get("server"))
    attributes.update(address)
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
        if client[1] is not None:
            attributes["client.port"] = client[1]
    http_version = scope.get("http_version")
    if http_version:
        attributes["network.protocol.version"] = http_version
    if user_agent is not None:
        attributes["user_agent.original"] = user_agent.decode("latin-1")
    # https://opentelemetry.io/docs/specs/semconv/http/http-spans/#name: "HTTP" for _OTHER.
    span_method = "HTTP" if method is OTHER_METHOD else method
    return parent_context, attributes, span_method


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


def _slot_of(name: bytes) -> int | None:
    # Servers lower-case header names, but the ASGI spec does not require it:
    # "TraceParent" is a traceparent header.
    slot = _HEADER_SLOTS.get(name.lower())
    if len(_slots) < _MAX_CACHED_NAMES and len(name) <= _MAX_CACHED_NAME_LENGTH:
        _slots[name] = slot
    return slot


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
        values = [value.decode("latin-1") for header, value in carrier if header.lower() == name]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


ASGI_GETTER = AsgiHeaderGetter()
