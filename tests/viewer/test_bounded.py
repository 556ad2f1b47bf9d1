"""The viewer's memory is bounded: counts and sizes capped, over 100,000 requests."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from typing import Any

from asgi_driver import http_scope
from opentelemetry import trace
from otel_reset import fresh_globals
from prometheus_client import CollectorRegistry

from asgi_observe import observe, traced
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.viewer import Viewer
from asgi_observe.viewer.logs import ViewerLogHandler
from asgi_observe.viewer.traces import MAX_ATTRIBUTES, MAX_VALUE_CHARS

REQUESTS = 100_000
_logger = logging.getLogger("viewer_bounded")
_logger.setLevel(logging.INFO)
HUGE = "x" * 100_000


async def noisy_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Each request: a child span and a log line; every tenth fails; some carry 100 kB values."""
    number = int(scope["path"].rsplit("/", 1)[-1])
    scope[ROUTE_KEY] = f"/r/{number % 7}"
    big = HUGE if number % 100 == 99 else "small"
    with traced("child") as span:
        span.set_attribute("big", big)
        if number % 100 == 99:
            for index in range(MAX_ATTRIBUTES + 20):
                span.set_attribute(f"a{index}", index)
        span.add_event("evt", {"payload": big})
    _logger.info("request %d %s", number, big)
    if number % 10 == 0:
        raise ValueError(f"failure {number} {big}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _drive(app: Any, start: int, count: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for number in range(start, start + count):
        await _one(app, number, receive, send)


async def _one(app: Any, number: int, receive: Any, send: Any) -> None:
    with contextlib.suppress(ValueError):  # every tenth request fails on purpose
        await app(http_scope(f"/n/{number}"), receive, send)


async def test_memory_stays_bounded_over_100000_requests(monkeypatch: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    with fresh_globals():
        provider = TracerProvider()  # no exporter: the viewer is the only reader
        trace.set_tracer_provider(provider)
        viewer = Viewer(max_traces=50, max_errors=20, max_error_groups=5, max_logs=100)
        app = observe(
            noisy_app, configure=False, registry=CollectorRegistry(), viewer=viewer, sentry=False
        )
        # pytest's own capture handlers would keep all 100,000 records: only the viewer's stays.
        root = logging.getLogger()
        kept = [h for h in root.handlers if isinstance(h, ViewerLogHandler)]
        monkeypatch.setattr(root, "handlers", kept)
        await _drive(app, 0, 5_000)  # fill every buffer and cache
        gc.collect()
        before = sys.getallocatedblocks()
        await _drive(app, 5_000, REQUESTS - 5_000)
        gc.collect()
        after = sys.getallocatedblocks()
        provider.shutdown()

    status = viewer.status()
    assert (50, 20, 100) == (status["traces"], status["errors"], status["log_records"])
    assert status["error_groups"] <= 5
    assert REQUESTS - 50 == status["evicted_traces"]
    # Caps on sizes: no kept value is anywhere near the 100 kB the app put in.
    big_one = next(t for t in viewer.trace_list(limit=50) if t["path"].endswith("99"))
    detail = viewer.trace(big_one["trace_id"])
    assert detail is not None
    child = next(span for span in detail["spans"] if span["name"] == "child")
    assert len(child["attributes"]) == MAX_ATTRIBUTES
    assert len(child["attributes"]["big"]) <= MAX_VALUE_CHARS + 1
    assert len(child["events"][0]["attributes"]["payload"]) <= MAX_VALUE_CHARS + 1
    assert all(len(log["message"]) < 5_000 for log in viewer.logs.query(limit=1000))
    # 95,000 more requests did not grow the heap beyond what a few requests' worth of
    # objects explains (one kept trace is ~30 blocks; 95,000 kept would be millions).
    assert after - before < 20_000, after - before
