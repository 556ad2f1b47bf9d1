"""OpenTelemetry glue: context building and TextMapPropagators for W3C headers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.environment_variables import OTEL_PROPAGATORS
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import propagation as otel_trace_propagation
from opentelemetry.trace.span import TraceState

from asgi_observe._core.mcp_facts import current_mcp
from asgi_observe.propagation.baggage import BaggageMember, format_baggage, parse_baggage
from asgi_observe.propagation.traceparent import (
    KNOWN_FLAGS_MASK,
    format_traceparent,
    parse_traceparent,
)
from asgi_observe.propagation.tracestate import (
    MAX_TRACESTATE_MEMBERS,
    format_tracestate,
    is_valid_tracestate_member,
    parse_tracestate_dict,
)

__all__ = [
    "BaggageValue",
    "W3CBaggagePropagator",
    "W3CTraceContextPropagator",
    "W3CTraceState",
    "context_from_w3c",
    "install_global_propagator",
    "is_w3c_global",
    "w3c_propagator",
]

_TRACEPARENT = "traceparent"
_TRACESTATE = "tracestate"
_BAGGAGE = "baggage"
# OpenTelemetry keeps the span and the baggage under private context keys;
# writing both directly costs one context copy instead of one per value.
_BAGGAGE_KEY: str | None = getattr(otel_baggage, "_BAGGAGE_KEY", None)
_SPAN_KEY: str | None = getattr(otel_trace_propagation, "_SPAN_KEY", None)
# Only the sampled and random-trace-id bits survive extraction (see docs/propagation.md).
_TRACE_FLAGS = tuple(trace.TraceFlags(flags) for flags in range(KNOWN_FLAGS_MASK + 1))


class W3CTraceState(TraceState):
    """A ``TraceState`` holding already-validated W3C Level 2 entries, in order.

    OpenTelemetry's ``TraceState`` rejects some keys Level 2 allows (a key
    starting with a digit without ``@``, several ``@``, long system parts), so
    this subclass is built without re-validation and mutates with our grammar;
    ``to_header()`` reproduces the carried tracestate exactly.

    Since 0.1.0.
    """

    _header: str | None = None

    def __init__(self, entries: Sequence[tuple[str, str]] | None = None) -> None:
        # Same contract as TraceState(entries), with the Level 2 grammar: more
        # than 32 entries gives an empty state, invalid or duplicate ones are skipped.
        self._dict = {}
        if not entries or len(entries) > MAX_TRACESTATE_MEMBERS:
            return
        for key, value in entries:
            if key not in self._dict and is_valid_tracestate_member(key, value):
                self._dict[key] = value

    @classmethod
    def from_validated(cls, entries: Iterable[tuple[str, str]] | dict[str, str]) -> W3CTraceState:
        """Build from entries that already passed :func:`parse_tracestate` (no copy of a dict)."""
        state = cls.__new__(cls)
        state._dict = entries if type(entries) is dict else dict(entries)
        state._header = None
        return state

    def add(self, key: str, value: str) -> TraceState:
        if (
            key in self._dict
            or len(self._dict) >= MAX_TRACESTATE_MEMBERS
            or not is_valid_tracestate_member(key, value)
        ):
            return self
        return self.from_validated([(key, value), *self._dict.items()])

    def update(self, key: str, value: str) -> TraceState:
        if not is_valid_tracestate_member(key, value) or (
            key not in self._dict and len(self._dict) >= MAX_TRACESTATE_MEMBERS
        ):
            return self
        rest = [(k, v) for k, v in self._dict.items() if k != key]
        return self.from_validated([(key, value), *rest])

    def delete(self, key: str) -> TraceState:
        if key not in self._dict:
            return self
        return self.from_validated((k, v) for k, v in self._dict.items() if k != key)

    def to_header(self) -> str:
        # Immutable, so the header is formatted once and reused by every inject.
        if self._header is None:
            self._header = format_tracestate(list(self._dict.items()))
        return self._header


class BaggageValue(str):
    """A decoded baggage value that remembers the member's raw properties.

    Application code sees a plain ``str``; our baggage propagator re-emits
    ``properties`` (the raw text after the first ``;``) on inject.

    Since 0.1.0.
    """

    __slots__ = ("properties",)
    properties: str

    def __new__(cls, value: str, properties: str = "") -> BaggageValue:
        self = super().__new__(cls, value)
        self.properties = properties
        return self


def _as_bytes(values: Iterable[Any] | None) -> list[bytes]:
    if not values:
        return []
    if isinstance(values, (str, bytes)):  # a getter that returned one value, not a list
        values = [values]
    out: list[bytes] = []
    for value in values:
        if isinstance(value, bytes):
            out.append(value)
        elif isinstance(value, str):
            # Every valid header here is ASCII, so any other encoding of a
            # non-ASCII character is equally invalid; this one never fails.
            out.append(value.encode("utf-8", "surrogatepass"))
    return out


def _remote_span(
    traceparents: Sequence[bytes], tracestates: Sequence[bytes]
) -> trace.NonRecordingSpan | None:
    parent = parse_traceparent(traceparents)
    if parent is None:
        return None
    # An invalid traceparent means tracestate is never parsed (trace-context-2 #tracestate-header).
    entries = parse_tracestate_dict(tracestates) if tracestates else None
    span_context = trace.SpanContext(
        parent.trace_id,
        parent.parent_id,
        True,
        _TRACE_FLAGS[parent.flags & KNOWN_FLAGS_MASK],
        W3CTraceState.from_validated(entries) if entries else None,
    )
    return trace.NonRecordingSpan(span_context)


def _baggage_of(members: list[BaggageMember], context: Context | None) -> dict[str, object]:
    existing = otel_baggage.get_all(context) if context else None
    values: dict[str, object] = dict(existing) if existing else {}
    for key, value, props in members:
        # Duplicate keys: the last one wins, like OpenTelemetry's set_baggage.
        values[key] = BaggageValue(value, props) if props else value
    return values


def _with(
    context: Context | None, span: trace.Span | None, bag: dict[str, object] | None
) -> Context:
    if _SPAN_KEY is None or _BAGGAGE_KEY is None:  # pragma: no cover - API without the keys
        if span is not None:
            context = trace.set_span_in_context(span, context)
        for name, item in (bag or {}).items():
            context = otel_baggage.set_baggage(name, item, context)
        return context if context is not None else Context()
    # One copy of the context instead of one per value set.
    values = dict(context) if context else {}
    if span is not None:
        values[_SPAN_KEY] = span
    if bag is not None:
        values[_BAGGAGE_KEY] = bag
    return Context(values)


def context_from_w3c(
    traceparents: Sequence[bytes],
    tracestates: Sequence[bytes],
    baggages: Sequence[bytes],
    context: Context | None = None,
) -> Context:
    """Build the extracted context from raw header lines collected in one pass.

    The fast path for the tracing middleware: no header re-scan and no getter
    machinery. ``traceparents``, ``tracestates`` and ``baggages`` are every
    line of that header, in order. Baggage merges into baggage already in
    ``context``. Returns ``context`` itself (or a new empty ``Context``) when
    neither a valid traceparent nor valid baggage is present.

    Since 0.1.0.
    """
    span = _remote_span(traceparents, tracestates) if traceparents else None
    members = parse_baggage(baggages) if baggages else None
    if span is None and not members:
        return context if context is not None else Context()
    return _with(context, span, _baggage_of(members, context) if members else None)


def _mcp_server_span(
    traceparents: Sequence[bytes], remote: trace.NonRecordingSpan
) -> trace.Span | None:
    """Our HTTP server span, when an MCP SDK extracts the request's own ``params._meta``.

    The SDKs parent their MCP span on the ``_meta`` traceparent; when our HTTP span
    already continues that trace (the client sent the context in the HTTP headers too),
    the MCP span becomes the child of our span instead of its sibling: one tree, each
    hop once. Any other carrier, or a ``_meta`` of another trace, extracts as usual.
    """
    facts = current_mcp.get()
    if facts is None or facts.server_span is None or facts.meta_traceparent is None:
        return None
    sent = facts.meta_traceparent.encode("utf-8", "surrogatepass")
    if len(traceparents) != 1 or traceparents[0] != sent:
        return None
    server_span: trace.Span = facts.server_span
    if server_span.get_span_context().trace_id != remote.get_span_context().trace_id:
        return None
    return server_span


class W3CTraceContextPropagator(textmap.TextMapPropagator):
    """W3C Trace Context (Level 2) ``traceparent`` / ``tracestate`` propagator.

    Extract accepts getters that return several values per header; inject
    writes flags ``& 0x03`` and the tracestate exactly as carried.

    Since 0.1.0.
    """

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        traceparents = _as_bytes(getter.get(carrier, _TRACEPARENT))
        if not traceparents:
            return context
        span = _remote_span(traceparents, _as_bytes(getter.get(carrier, _TRACESTATE)))
        if span is None:
            return context
        server_span = _mcp_server_span(traceparents, span)
        return _with(context, span if server_span is None else server_span, None)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        setter.set(
            carrier,
            _TRACEPARENT,
            format_traceparent(
                span_context.trace_id, span_context.span_id, span_context.trace_flags
            ),
        )
        trace_state = span_context.trace_state
        if trace_state:
            header = trace_state.to_header()
            if header:
                setter.set(carrier, _TRACESTATE, header)

    @property
    def fields(self) -> set[str]:
        return {_TRACEPARENT, _TRACESTATE}


class W3CBaggagePropagator(textmap.TextMapPropagator):
    """W3C Baggage propagator that reads every ``baggage`` header and keeps properties.

    Since 0.1.0.
    """

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = get_current()
        lines = _as_bytes(getter.get(carrier, _BAGGAGE))
        if not lines:
            return context
        members = parse_baggage(lines)
        return _with(context, None, _baggage_of(members, context)) if members else context

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        entries = otel_baggage.get_all(context)
        if not entries:
            return
        header = format_baggage(_members_of(entries))
        if header:
            setter.set(carrier, _BAGGAGE, header)

    @property
    def fields(self) -> set[str]:
        return {_BAGGAGE}


def _members_of(entries: Mapping[str, object]) -> Iterable[BaggageMember]:
    for key, value in entries.items():
        props = value.properties if isinstance(value, BaggageValue) else ""
        yield BaggageMember(str(key), str(value), props if isinstance(props, str) else "")


_COMPOSITE = CompositePropagator([W3CTraceContextPropagator(), W3CBaggagePropagator()])


def w3c_propagator() -> textmap.TextMapPropagator:
    """Return the shared composite (trace context + baggage) propagator.

    Since 0.1.0.
    """
    return _COMPOSITE


def is_w3c_global() -> bool:
    """Whether OpenTelemetry's global textmap is our composite propagator.

    Since 0.1.0.
    """
    from opentelemetry import propagate  # reads OTEL_PROPAGATORS when first imported

    return propagate.get_global_textmap() is _COMPOSITE


def install_global_propagator(*, force: bool = False) -> bool:
    """Make our composite the global textmap of ``opentelemetry.propagate``.

    Left alone when ``OTEL_PROPAGATORS`` is set (the user chose) unless
    ``force`` is true. Idempotent. Returns whether ours is installed.

    Since 0.1.0.
    """
    if is_w3c_global():
        return True
    if os.environ.get(OTEL_PROPAGATORS) and not force:
        return False
    from opentelemetry import propagate

    propagate.set_global_textmap(_COMPOSITE)
    return True
