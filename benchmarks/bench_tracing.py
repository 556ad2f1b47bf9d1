"""A request through TracingMiddleware against the bare app and OpenTelemetry's ASGI middleware.

Run: `.venv/bin/python -m pytest benchmarks/bench_tracing.py --benchmark-enable`
(reported times are per batch of `harness.BATCH` requests).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from harness import http_scope, raw_app, run
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from asgi_observe.propagation import w3c_propagator
from asgi_observe.tracing.middleware import TracingMiddleware

TRACEPARENT = (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@pytest.fixture(scope="module")
def provider() -> Iterator[TracerProvider]:
    # The same provider and processor for every row, as a deployment would have.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter(), max_queue_size=100_000))
    yield provider
    provider.shutdown()


SCOPE = http_scope(headers=[TRACEPARENT])


@pytest.mark.benchmark(group="tracing: one request (sampled, inbound traceparent)")
def bench_bare_app(benchmark: Any) -> None:
    run(benchmark, raw_app, SCOPE)


@pytest.mark.benchmark(group="tracing: one request (sampled, inbound traceparent)")
def bench_asgi_observe_tracing(benchmark: Any, provider: TracerProvider) -> None:
    app = TracingMiddleware(raw_app, tracer_provider=provider, propagator=w3c_propagator())
    run(benchmark, app, SCOPE)


@pytest.mark.benchmark(group="tracing: one request (sampled, inbound traceparent)")
def bench_otel_asgi_default(benchmark: Any, provider: TracerProvider) -> None:
    run(benchmark, OpenTelemetryMiddleware(raw_app, tracer_provider=provider), SCOPE)


@pytest.mark.benchmark(group="tracing: one request (sampled, inbound traceparent)")
def bench_otel_asgi_no_message_spans(benchmark: Any, provider: TracerProvider) -> None:
    app = OpenTelemetryMiddleware(
        raw_app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    run(benchmark, app, SCOPE)
