"""The RED metrics through the OpenTelemetry meter, beside the Prometheus row and beside
opentelemetry-instrumentation-asgi's own metrics, in one interleaved run.

Run: `.venv/bin/python benchmarks/perf_otel_metrics.py [--rounds N]`.

What each layer spends on its metrics is its row minus the row without them:
ours, MetricsMiddleware minus the bare app; OpenTelemetry's, OpenTelemetryMiddleware with an
SDK meter provider minus the same middleware with a no-op one (both with a no-op tracer, so
the difference is its metrics alone). Rows are shuffled every round (harness.interleaved),
so load from other processes falls on all of them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

from harness import BATCH, Driver, http_scope, interleaved, raw_app
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client import CollectorRegistry

from asgi_observe.metrics.middleware import MetricsMiddleware

GOAL = 0.5  # issue 16: at most half of what OpenTelemetry's ASGI middleware spends


def meter_provider() -> MeterProvider:
    # A reader that is never collected: the rows time recording, not exporting.
    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def rows() -> dict[str, Any]:
    return {
        "bare app": raw_app,
        "asgi_observe, prometheus": MetricsMiddleware(
            raw_app, backend="prometheus", registry=CollectorRegistry()
        ),
        "asgi_observe, otel meter": MetricsMiddleware(
            raw_app, backend="otel", meter_provider=meter_provider()
        ),
        "otel-asgi, sdk meter": OpenTelemetryMiddleware(
            raw_app, tracer_provider=NoOpTracerProvider(), meter_provider=meter_provider()
        ),
        "otel-asgi, no-op meter": OpenTelemetryMiddleware(
            raw_app, tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
        ),
    }


def measure(rounds: int) -> dict[str, float]:
    """Median microseconds per request of each row."""
    scope = http_scope("/users/42")
    drivers = {name: Driver(app, scope) for name, app in rows().items()}
    batches: dict[str, Callable[[], Any]] = {}
    for name, driver in drivers.items():
        driver()  # warm up outside the timing
        batches[name] = driver
    try:
        samples = interleaved(batches, rounds)
    finally:
        for driver in drivers.values():
            driver.close()
    return {name: statistics.median(times) / BATCH * 1e6 for name, times in samples.items()}


def report(medians: dict[str, float]) -> tuple[str, float]:
    bare = medians["bare app"]
    ours = medians["asgi_observe, otel meter"] - bare
    prometheus = medians["asgi_observe, prometheus"] - bare
    theirs = medians["otel-asgi, sdk meter"] - medians["otel-asgi, no-op meter"]
    ratio = ours / theirs
    lines = ["| row | us per request |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in medians.items()]
    lines += [
        "",
        f"metrics cost: asgi_observe otel meter {ours:.2f} us, prometheus {prometheus:.2f} us, "
        f"opentelemetry-instrumentation-asgi {theirs:.2f} us",
        f"ratio ours/theirs: {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'MISSED'})",
    ]
    return "\n".join(lines), ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    text, ratio = report(measure(args.rounds))
    print(text)
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
