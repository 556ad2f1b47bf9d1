"""OTLP protobuf bytes for a batch of SDK spans, byte for byte what the official encoder writes.

`encode_spans(spans)` returns the serialized ExportTraceServiceRequest that
`opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(spans)
.SerializePartialToString()` returns, or None when a span holds anything it does not
recognise (then the caller uses the official encoder). It writes the protobuf wire format
directly, in field-number order as protobuf does, and keeps what repeats from span to
span (a resource, a scope, a key, a key and its value) encoded once. The equivalence is
a Hypothesis property over generated spans (tests/setup/test_span_encoding.py);
docs/performance.md says why it exists.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

__all__ = ["encode_spans"]

_INT64 = (-(2**63), 2**63 - 1)
_KINDS = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
# Span.flags (field 16, fixed32): "has is_remote", and "is remote" when the parent is.
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
_LINK_FLAGS_LOCAL = b"\x35" + struct.pack("<I", 0x100)
_LINK_FLAGS_REMOTE = b"\x35" + struct.pack("<I", 0x300)
_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack
_MAX_CACHED = 4096  # encoded key-value pairs kept; cleared when full
_pairs: dict[tuple[int, str, type, Any], bytes] = {}
_headers: dict[int, tuple[Any, bytes]] = {}  # id(resource or scope) -> (it, its message)


class Unrecognised(Exception):
    """Something the official encoder would treat in a way this one does not copy."""


def encode_spans(spans: Sequence[Any]) -> bytes | None:
    """The ExportTraceServiceRequest bytes for `spans`, or None to use the official encoder."""
    try:
        return _encode_request(spans)
    except (Unrecognised, AttributeError, TypeError, ValueError, UnicodeEncodeError):
        return None


_SMALL = [bytes((n,)) for n in range(128)]  # one-byte varints, tags and lengths


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (every tag here is one byte): tag, length, payload."""
    size = len(payload)
    return _SMALL[tag] + (_SMALL[size] if size < 128 else _varint(size)) + payload


def _string(tag: int, text: str | None) -> bytes:
    if not text:
        return b""  # proto3 leaves an empty string out
    return _field(tag, text.encode("utf-8"))


def _value(value: Any) -> bytes:
    """An AnyValue message's content (protobuf's _encode_value)."""
    if value is None:
        return b""
    value_type = type(value)
    if value_type is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if value_type is str:
        return _field(0x0A, value.encode("utf-8"))
    if value_type is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise Unrecognised("int out of int64 range")
        return b"\x18" + _varint(value)
    if value_type is float:
        return b"\x21" + _pack_double(value)
    if value_type is bytes:
        return _field(0x3A, value)
    if value_type is tuple or value_type is list:
        return _field(0x2A, b"".join(_field(0x0A, _value(item)) for item in value))
    raise Unrecognised(f"attribute value of type {value_type.__name__}")


def _key_value(tag: int, key: str, value: Any) -> bytes:
    """One KeyValue as field `tag` of its message, from the cache when seen before."""
    value_type = type(value)
    # Floats stay out: 0.0 == -0.0 and NaN != NaN, but their bytes differ.
    hashable = value_type is str or value_type is int or value_type is bool
    cache_key = (tag, key, value_type, value) if hashable else None
    if cache_key is not None:
        cached = _pairs.get(cache_key)
        if cached is not None:
            return cached
    if type(key) is not str:
        raise Unrecognised("attribute key that is not a str")
    encoded = _field(tag, _string(0x0A, key) + _field(0x12, _value(value)))
    if cache_key is not None:
        if len(_pairs) >= _MAX_CACHED:
            _pairs.clear()
        _pairs[cache_key] = encoded
    return encoded


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join([_key_value(tag, key, value) for key, value in attributes.items()])


def _span(span: Any) -> bytes:
    context = span.get_span_context()
    parent = span.parent
    trace_state = context.trace_state
    status = span.status
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if trace_state:
        parts.append(_string(0x1A, ",".join(f"{k}={v}" for k, v in trace_state.items())))
    if parent:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    parts.append(_string(0x2A, span.name))
    parts.append(_KINDS[span.kind])
    if span.start_time:
        parts.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _pack_fixed64(span.end_time))
    parts.append(_attributes(0x4A, span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    parts.extend(_field(0x5A, _event(event)) for event in span.events)
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    parts.extend(_field(0x6A, _link(link)) for link in span.links)
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    if status is not None:
        parts.append(_status(status.status_code.value, status.description))
    parts.append(_FLAGS_REMOTE if parent and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def _status(code: int, description: str | None) -> bytes:
    return _field(0x7A, _string(0x12, description) + (b"\x18" + _varint(code) if code else b""))


def _event(event: Any) -> bytes:
    parts = []
    if event.timestamp:
        parts.append(b"\x09" + _pack_fixed64(event.timestamp))
    parts.append(_string(0x12, event.name))
    parts.append(_attributes(0x1A, event.attributes))
    if event.dropped_attributes:
        parts.append(b"\x20" + _varint(event.dropped_attributes))
    return b"".join(parts)


def _link(link: Any) -> bytes:
    context = link.context
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        _attributes(0x22, link.attributes),
    ]
    if link.dropped_attributes:
        parts.append(b"\x28" + _varint(link.dropped_attributes))
    parts.append(_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL)
    return b"".join(parts)


def _resource(resource: Any) -> bytes:
    """ResourceSpans' field 1, the Resource message."""
    return _field(0x0A, _attributes(0x0A, resource.attributes))


def _scope(scope: Any) -> bytes:
    """ScopeSpans' field 1, the InstrumentationScope message."""
    if scope is None:
        return b"\x0a\x00"
    return _field(
        0x0A,
        _string(0x0A, scope.name)
        + _string(0x12, scope.version)
        + _attributes(0x1A, scope.attributes),
    )


def _header(item: Any, encode: Any) -> bytes:
    # Resources and scopes are few and immutable: each object is encoded once. By
    # identity (the entry keeps the object, so its id is not reused): two equal
    # resources may list their attributes in different orders.
    entry = _headers.get(id(item))
    if entry is not None and entry[0] is item:
        cached: bytes = entry[1]
        return cached
    if len(_headers) >= 64:
        _headers.clear()
    encoded: bytes = encode(item)
    _headers[id(item)] = (item, encoded)
    return encoded


def _encode_request(spans: Sequence[Any]) -> bytes:
    # Grouped by resource, then scope, by equality, as the official encoder groups them;
    # a run of spans with the very same resource and scope objects skips the hashing
    # (a Resource hashes through json.dumps).
    grouped: dict[Any, dict[Any, list[bytes]]] = {}
    last_resource = last_scope = last_group = None
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        if resource is not last_resource or scope is not last_scope or last_group is None:
            last_group = grouped.setdefault(resource, {}).setdefault(scope, [])
            last_resource, last_scope = resource, scope
        last_group.append(_span(span))
    out = []
    for resource, scopes in grouped.items():
        scope_spans = []
        for scope, encoded in scopes.items():
            body = _header(scope, _scope) + b"".join(_field(0x12, span) for span in encoded)
            if scope is not None:
                body += _string(0x1A, scope.schema_url)
            scope_spans.append(_field(0x12, body))
        resource_spans = (
            _header(resource, _resource)
            + b"".join(scope_spans)
            + _string(0x1A, resource.schema_url)
        )
        out.append(_field(0x0A, resource_spans))
    return b"".join(out)
