"""What the local viewer costs per request: observe() with the viewer off and on, interleaved.

Run: `.venv/bin/python benchmarks/perf_viewer.py [rounds]` (about a minute). Rows are
shuffled every round (harness.interleaved), so load from other processes falls on each
alike; the figures are medians of microseconds per request. docs/performance.md reports
them. `bench_viewer.py` has the same rows as pytest-benchmark groups.
"""

from __future__ import annotations

import logging
import statistics
import sys
from typing import Any

from harness import BATCH, Driver, http_scope, interleaved, raw_app
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from asgi_observe import observe, traced
from asgi_observe.viewer import Viewer

SAMPLED = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SCOPE = http_scope(headers=[(b"traceparent", SAMPLED)])
_logger = logging.getLogger("bench.viewer")


async def app_with_span_and_log(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare app plus what a real handler does: one child span and one log line."""
    with traced("load"):
        _logger.info("loaded %s", scope["path"])
    await raw_app(scope, receive, send)


def _stack(app: Any, viewer: bool) -> Any:
    return observe(
        app,
        configure=False,
        registry=CollectorRegistry(),
        sentry=False,
        viewer=Viewer() if viewer else None,
    )


def _drivers(viewer: bool) -> dict[str, Driver]:
    state = "on" if viewer else "off"
    drivers = {
        "bare app": Driver(raw_app, SCOPE),
        f"observe(), viewer {state}": Driver(_stack(raw_app, viewer), SCOPE),
        f"app with a span and a log line, observe(), viewer {state}": Driver(
            _stack(app_with_span_and_log, viewer), SCOPE
        ),
    }
    for driver in drivers.values():
        driver()  # warm up
    return drivers


def main(rounds: int = 40) -> None:
    trace.set_tracer_provider(TracerProvider())  # sampled, no exporter
    _logger.setLevel(logging.INFO)
    print(f"microseconds per request, median of {rounds} rounds of {BATCH} requests")
    # Off first: once a viewer exists its log handler sits on the root logger and keeps
    # every record, whichever app logged it, so "off" is measured before any viewer.
    for viewer in (False, True):
        samples = interleaved(dict(_drivers(viewer)), rounds)
        for name, values in samples.items():
            print(f"{statistics.median(values) / BATCH * 1e6:8.1f}  {name}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
