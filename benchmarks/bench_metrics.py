"""A request through MetricsMiddleware against a bare Starlette app and starlette-exporter.

Run: `.venv/bin/python -m pytest benchmarks/bench_metrics.py --benchmark-enable`
(the request rows report times per batch of `harness.BATCH` requests; the observation
rows report one observation per call).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import http_scope, raw_app, run
from perf_otel_metrics import meter_provider
from prometheus_client import CollectorRegistry, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette_exporter import PrometheusMiddleware

from asgi_observe.metrics.families import DURATION_BUCKETS, families_for
from asgi_observe.metrics.middleware import MetricsMiddleware

REQUEST = "metrics: one Starlette request (route /users/{user_id})"
OBSERVATION = "metrics: one histogram observation"
SCOPE = http_scope("/users/42")


async def user(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    # A few routes before the matching one, as in a real app.
    routes = [Route(f"/other{i}/{{x}}", user) for i in range(10)]
    routes += [Route("/users/{user_id}", user), Mount("/admin", routes=[Route("/a", user)])]
    return Starlette(routes=routes)


@pytest.mark.benchmark(group=REQUEST)
def bench_bare_starlette(benchmark: Any) -> None:
    run(benchmark, starlette_app(), SCOPE)


@pytest.mark.benchmark(group=REQUEST)
def bench_asgi_observe_metrics(benchmark: Any) -> None:
    app = MetricsMiddleware(starlette_app(), registry=CollectorRegistry())
    run(benchmark, app, SCOPE)


@pytest.mark.benchmark(group=REQUEST)
def bench_starlette_exporter(benchmark: Any) -> None:
    # starlette-exporter keeps its metrics in the default registry, by prefix.
    app = PrometheusMiddleware(starlette_app(), prefix="bench_starlette_exporter")
    run(benchmark, app, SCOPE)


LABELS = ("GET", "/users/{user_id}", "200")


@pytest.mark.benchmark(group=OBSERVATION)
def bench_cached_label_child(benchmark: Any) -> None:
    families = families_for(
        CollectorRegistry(), "", buckets=DURATION_BUCKETS, body_sizes=False, max_label_sets=2000
    )
    key = ("GET", "/users/{user_id}", 200)

    def observe() -> None:
        families.children(key).duration(0.012)

    benchmark(observe)


@pytest.mark.benchmark(group=OBSERVATION)
def bench_labels_call_each_time(benchmark: Any) -> None:
    histogram = Histogram(
        "d",
        "d",
        ("http_request_method", "http_route", "http_response_status_code"),
        buckets=DURATION_BUCKETS,
        registry=CollectorRegistry(),
    )

    def observe() -> None:
        histogram.labels(*LABELS).observe(0.012)

    benchmark(observe)


# --- through the OpenTelemetry meter (perf_otel_metrics.py interleaves these rows) --------

METER = "metrics: one raw request, OpenTelemetry meter vs Prometheus vs otel-asgi's metrics"
RAW_SCOPE = http_scope("/users/42")


@pytest.mark.benchmark(group=METER)
def bench_meter_bare_app(benchmark: Any) -> None:
    run(benchmark, raw_app, RAW_SCOPE)


@pytest.mark.benchmark(group=METER)
def bench_meter_asgi_observe_prometheus(benchmark: Any) -> None:
    app = MetricsMiddleware(raw_app, backend="prometheus", registry=CollectorRegistry())
    run(benchmark, app, RAW_SCOPE)


@pytest.mark.benchmark(group=METER)
def bench_meter_asgi_observe_otel(benchmark: Any) -> None:
    app = MetricsMiddleware(raw_app, backend="otel", meter_provider=meter_provider())
    run(benchmark, app, RAW_SCOPE)


@pytest.mark.benchmark(group=METER)
@pytest.mark.parametrize("meter", ["sdk", "noop"])
def bench_meter_opentelemetry_asgi(benchmark: Any, meter: str) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    provider = meter_provider() if meter == "sdk" else NoOpMeterProvider()
    app = OpenTelemetryMiddleware(
        raw_app, tracer_provider=NoOpTracerProvider(), meter_provider=provider
    )
    run(benchmark, app, RAW_SCOPE)
