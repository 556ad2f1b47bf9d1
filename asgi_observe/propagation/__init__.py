"""W3C Trace Context and Baggage: pure parsers/formatters and OpenTelemetry propagators."""

from asgi_observe.propagation.baggage import BaggageMember, format_baggage, parse_baggage
from asgi_observe.propagation.otel import (
    BaggageValue,
    W3CBaggagePropagator,
    W3CTraceContextPropagator,
    W3CTraceState,
    context_from_w3c,
    install_global_propagator,
    is_w3c_global,
    w3c_propagator,
)
from asgi_observe.propagation.traceparent import (
    TraceParent,
    format_traceparent,
    parse_traceparent,
)
from asgi_observe.propagation.tracestate import format_tracestate, parse_tracestate

__all__ = [
    "BaggageMember",
    "BaggageValue",
    "TraceParent",
    "W3CBaggagePropagator",
    "W3CTraceContextPropagator",
    "W3CTraceState",
    "context_from_w3c",
    "format_baggage",
    "format_traceparent",
    "format_tracestate",
    "install_global_propagator",
    "is_w3c_global",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "w3c_propagator",
]
