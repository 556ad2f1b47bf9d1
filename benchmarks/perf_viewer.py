"""What the local viewer costs per request: observe() with the viewer off and on, interleaved.

Run: `.venv/bin/python benchmarks/perf_viewer.py [rounds]` (about a minute). Rows are
shuffled every round, and each batch is timed in this thread's CPU time as well as wall
time, so a loaded machine (other processes taking the cores) inflates the figures less;
the figures are medians of microseconds per request. docs/performance.md reports them.
"""

from __future__ import annotations

import logging
import random
import statistics
import sys
import time
from typing import Any

from harness import BATCH, Driver, http_scope, raw_app
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


def _stack(app: Any, viewer: Viewer | None) -> Any:
    return observe(app, configure=False, registry=CollectorRegistry(), sentry=False, viewer=viewer)


def _drivers(viewer: bool) -> dict[str, Driver]:
    state = "on" if viewer else "off"
    # One viewer for both rows, as one process has: every span and record is kept once.
    shared = Viewer() if viewer else None
    drivers = {
        "bare app": Driver(raw_app, SCOPE),
        f"observe(), viewer {state}": Driver(_stack(raw_app, shared), SCOPE),
        f"app with a span and a log line, observe(), viewer {state}": Driver(
            _stack(app_with_span_and_log, shared), SCOPE
        ),
    }
    for driver in drivers.values():
        driver()  # warm up
    return drivers


def _sample(drivers: dict[str, Driver], rounds: int) -> dict[str, tuple[float, float]]:
    """Median (CPU, wall) seconds per batch of each row, rows shuffled every round."""
    rng = random.Random(0)
    names = list(drivers)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            start_cpu, start_wall = time.thread_time(), time.perf_counter()
            drivers[name]()
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in cpu}


def main(rounds: int = 40) -> None:
    trace.set_tracer_provider(TracerProvider())  # sampled, no exporter
    _logger.setLevel(logging.INFO)
    print(f"us per request (CPU, wall), median of {rounds} rounds of {BATCH} requests")
    # Off first: once a viewer exists its span processor and log handler see every span
    # and record of the process, whichever app made them, so "off" goes before any viewer.
    for viewer in (False, True):
        for name, (cpu, wall) in _sample(_drivers(viewer), rounds).items():
            print(f"{cpu / BATCH * 1e6:8.1f} {wall / BATCH * 1e6:8.1f}  {name}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
