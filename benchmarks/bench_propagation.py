"""W3C propagation: our parsers and propagators against OpenTelemetry's reference ones.

Run: `.venv/bin/python -m pytest benchmarks/bench_propagation.py --benchmark-enable`
(each row is one extract / parse / inject call; inputs are built outside the timed call).
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator as OTelBaggage
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState

from asgi_observe.propagation import (
    W3CBaggagePropagator,
    W3CTraceContextPropagator,
    context_from_w3c,
    parse_baggage,
    parse_tracestate,
    w3c_propagator,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,fw529a3039@dt=s0mEv4lue"
BAGGAGE = "userId=alice,serverNode=DF%2028,isProduction=false,tenant=acme;ttl=60"
CARRIER = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE, "baggage": BAGGAGE}

TRACE_EXTRACT = "propagation: extract traceparent + tracestate"
TRACESTATE_PARSE = "propagation: parse tracestate (3 members)"
BAGGAGE_EXTRACT = "propagation: extract baggage (4 members)"
INJECT = "propagation: inject traceparent + tracestate + baggage"


@pytest.mark.benchmark(group=TRACE_EXTRACT)
def bench_ours_context_from_w3c(benchmark: Any) -> None:
    traceparents, tracestates = [TRACEPARENT.encode()], [TRACESTATE.encode()]
    context = benchmark(context_from_w3c, traceparents, tracestates, [])
    assert trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.benchmark(group=TRACE_EXTRACT)
def bench_ours_tracecontext_propagator(benchmark: Any) -> None:
    context = benchmark(W3CTraceContextPropagator().extract, CARRIER)
    assert trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.benchmark(group=TRACE_EXTRACT)
def bench_otel_tracecontext_propagator(benchmark: Any) -> None:
    context = benchmark(TraceContextTextMapPropagator().extract, CARRIER)
    assert trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.benchmark(group=TRACESTATE_PARSE)
def bench_ours_parse_tracestate(benchmark: Any) -> None:
    assert 3 == len(benchmark(parse_tracestate, [TRACESTATE.encode()]))


@pytest.mark.benchmark(group=TRACESTATE_PARSE)
def bench_otel_tracestate_from_header(benchmark: Any) -> None:
    assert 3 == len(benchmark(TraceState.from_header, [TRACESTATE]))


@pytest.mark.benchmark(group=BAGGAGE_EXTRACT)
def bench_ours_parse_baggage(benchmark: Any) -> None:
    assert 4 == len(benchmark(parse_baggage, [BAGGAGE.encode()]))


@pytest.mark.benchmark(group=BAGGAGE_EXTRACT)
def bench_ours_context_from_w3c_baggage(benchmark: Any) -> None:
    context = benchmark(context_from_w3c, [], [], [BAGGAGE.encode()])
    assert 4 == len(baggage.get_all(context))


@pytest.mark.benchmark(group=BAGGAGE_EXTRACT)
def bench_ours_baggage_propagator(benchmark: Any) -> None:
    context = benchmark(W3CBaggagePropagator().extract, CARRIER, Context())
    assert 4 == len(baggage.get_all(context))


@pytest.mark.benchmark(group=BAGGAGE_EXTRACT)
def bench_otel_baggage_propagator(benchmark: Any) -> None:
    context = benchmark(OTelBaggage().extract, CARRIER, Context())
    assert 4 == len(baggage.get_all(context))


def _inject(benchmark: Any, propagator: Any, context: Context) -> dict[str, str]:
    def inject() -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagator.inject(carrier, context)
        return carrier

    return benchmark(inject)  # type: ignore[no-any-return]


@pytest.mark.benchmark(group=INJECT)
def bench_ours_inject(benchmark: Any) -> None:
    propagator = w3c_propagator()
    context = propagator.extract(CARRIER)
    assert 3 == len(_inject(benchmark, propagator, context))


@pytest.mark.benchmark(group=INJECT)
def bench_otel_inject(benchmark: Any) -> None:
    propagator = CompositePropagator([TraceContextTextMapPropagator(), OTelBaggage()])
    context = propagator.extract(CARRIER)
    assert 3 == len(_inject(benchmark, propagator, context))
