"""OpenTelemetry glue: context building and TextMapPropagators for W3C headers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import propagate, trace
from opentelemetry.context import Context, get_current, set_value
from opentelemetry.environment_variables import OTEL_PROPAGATORS
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.span import TraceState

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
    parse_tracestate,
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
# OpenTelemetry keeps baggage under a private context key; storing our dict
# there directly costs one context copy instead of one per member.
_BAGGAGE_KEY: str | None = getattr(otel_baggage, "_BAGGAGE_KEY", None)


class W3CTraceState(TraceState):
    """A ``TraceState`` holding already-validated W3C Level 2 entries, in order.

    OpenTelemetry's ``TraceState`` rejects some keys Level 2 allows (a key
    starting with a digit without ``@``, several ``@``, long system parts), so
    this subclass is built without re-validation and mutates with our grammar;
    ``to_header()`` reproduces the carried tracestate exactly.

    Since 0.1.0.
    """

    @classmethod
    def from_validated(cls, entries: Iterable[tuple[str, str]]) -> W3CTraceState:
        """Build from entries that already passed :func:`parse_tracestate`."""
        state = cls.__new__(cls)
        state._dict = dict(entries)
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
        return format_tracestate(list(self._dict.items()))


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
    out: list[bytes] = []
    for value in values:
        if isinstance(value, bytes):
            out.append(value)
        elif isinstance(value, str):
            # Every valid header here is ASCII, so any other encoding of a
            # non-ASCII character is equally invalid; this one never fails.
            out.append(value.encode("utf-8", "surrogatepass"))
    return out


def _span_context_in(
    traceparents: Sequence[bytes], tracestates: Sequence[bytes], context: Context
) -> Context | None:
    parent = parse_traceparent(traceparents)
    if parent is None:
        return None
    # An invalid traceparent means tracestate is never parsed (trace-context-2 #tracestate-header).
    entries = parse_tracestate(tracestates) if tracestates else None
    span_context = trace.SpanContext(
        trace_id=parent.trace_id,
        span_id=parent.parent_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(parent.flags & KNOWN_FLAGS_MASK),
        trace_state=W3CTraceState.from_validated(entries) if entries else None,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)


def _baggage_in(members: list[BaggageMember], context: Context) -> Context:
    existing = otel_baggage.get_all(context)
    values: dict[str, object] = dict(existing) if existing else {}
    for key, value, props in members:
        # Duplicate keys: the last one wins, like OpenTelemetry's set_baggage.
        values[key] = BaggageValue(value, props) if props else value
    if _BAGGAGE_KEY is None:  # pragma: no cover - older/newer API without the private key
        for name, item in values.items():
            context = otel_baggage.set_baggage(name, item, context)
        return context
    return set_value(_BAGGAGE_KEY, values, context)


def context_from_w3c(
    traceparents: Sequence[bytes],
    tracestates: Sequence[bytes],
    baggages: Sequence[bytes],
    context: Context | None = None,
) -> Context:
    """Build the extracted context from raw header lines collected in one pass.

    The fast path for the tracing middleware: no header re-scan and no getter
    machinery. Returns ``context`` (or a new empty ``Context``) unchanged when
    neither a valid traceparent nor valid baggage is present.

    Since 0.1.0.
    """
    if context is None:
        context = Context()
    if traceparents:
        with_span = _span_context_in(traceparents, tracestates, context)
        if with_span is not None:
            context = with_span
    if baggages:
        members = parse_baggage(baggages)
        if members:
            context = _baggage_in(members, context)
    return context


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
        tracestates = _as_bytes(getter.get(carrier, _TRACESTATE))
        with_span = _span_context_in(traceparents, tracestates, context)
        return context if with_span is None else with_span

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
        return _baggage_in(members, context) if members else context

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
        yield BaggageMember(str(key), str(value), getattr(value, "properties", "") or "")


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
    propagate.set_global_textmap(_COMPOSITE)
    return True
