"""A fault in the logging setup never breaks a request, and logged client text is escaped.

Issue 13: `logging` lets an exception raised by a handler's filter propagate to the code
that logs; the tracing layer's fault report (inside an `except`) turned a raising filter
plus a raising sampler into a 500. Every place our code logs from the request path is
driven here with such a filter installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_driver import Recorder, call, http_scope, plain_app
from prometheus_client import CollectorRegistry

from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.metrics.app import metrics_app
from asgi_observe.metrics.middleware import MetricsMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware


class RaisingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("asgi_observe"):
            return True  # asyncio's and pytest's own records are let through
        self.calls += 1
        raise RuntimeError("the log filter broke")


class Quiet(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


@pytest.fixture
def broken_logging() -> Iterator[RaisingFilter]:
    """A root handler whose filter raises on every record of ours, every level enabled."""
    root = logging.getLogger()
    handler = Quiet()
    failing = RaisingFilter()
    handler.addFilter(failing)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield failing
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def body(recorder: Recorder) -> bytes:
    return b"".join(m.get("body", b"") for m in recorder.sent if m["type"] == "http.response.body")


async def test_tracing_fault_report(broken_logging: RaisingFilter) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

    import asgi_observe.tracing.middleware as tracing_module

    class RaisingSampler(Sampler):
        def should_sample(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("sampler broke")

        def get_description(self) -> str:
            return "raising"

    provider = TracerProvider(sampler=RaisingSampler())
    app = TracingMiddleware(plain_app(body=b"served"), tracer_provider=provider)
    tracing_module._fault_reported = False
    first = await call(app, http_scope())
    second = await call(app, http_scope())  # the DEBUG report after the first
    assert [(200, b"served")] * 2 == [(r.status, body(r)) for r in (first, second)]
    assert broken_logging.calls >= 2


async def test_metrics_fault_report(broken_logging: RaisingFilter) -> None:
    middleware = MetricsMiddleware(plain_app(body=b"served"), registry=CollectorRegistry())

    def broken_observe(*args: Any) -> None:
        raise RuntimeError("metrics broke")

    middleware._observe = broken_observe  # type: ignore[method-assign]
    recorder = await call(middleware, http_scope())
    assert (200, b"served") == (recorder.status, body(recorder))
    assert broken_logging.calls >= 1


async def test_metrics_app_collector_fault(broken_logging: RaisingFilter) -> None:
    class BrokenCollector:
        def collect(self) -> Any:
            raise OSError("disk gone")

    registry = CollectorRegistry()
    registry.register(BrokenCollector())  # type: ignore[arg-type]
    recorder = await call(metrics_app(registry), http_scope("/metrics"))
    assert (500, b"Error collecting metrics: OSError\n") == (recorder.status, body(recorder))
    assert broken_logging.calls >= 1


@pytest.mark.parametrize("generator", [lambda: "bad id\n", lambda: 1 / 0])
async def test_request_id_generator_warnings(broken_logging: RaisingFilter, generator: Any) -> None:
    middleware = RequestIdMiddleware(plain_app(body=b"served"), generator=generator)
    recorder = await call(middleware, http_scope())
    assert (200, b"served") == (recorder.status, body(recorder))
    assert 32 == len(recorder.header(b"x-request-id")[0])
    assert broken_logging.calls >= 1


async def test_invalid_propagation_header_debug_line(broken_logging: RaisingFilter) -> None:
    import asgi_observe.propagation._log as propagation_log
    from asgi_observe.propagation.otel import w3c_propagator

    propagation_log._next_allowed[0] = 0.0
    app = TracingMiddleware(plain_app(body=b"served"), propagator=w3c_propagator())
    recorder = await call(app, http_scope(headers=[(b"traceparent", b"00-not-a-trace-id")]))
    assert (200, b"served") == (recorder.status, body(recorder))
    assert broken_logging.calls >= 1


async def test_access_log(broken_logging: RaisingFilter) -> None:
    recorder = await call(
        RequestIdMiddleware(plain_app(body=b"served"), access_log=True), http_scope()
    )
    assert (200, b"served") == (recorder.status, body(recorder))
    assert broken_logging.calls >= 1


# --- attacker-controlled text in the access log --------------------------------------


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter("%(levelname)s %(message)s").format(record))

    logger = logging.getLogger("asgi_observe.access")
    handler = Lines()
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.mark.parametrize(
    ("path", "raw_path", "expected"),
    [
        # As servers pass it: the decoded path, and the raw bytes the client sent.
        ("/a\r\nINFO forged\x1b[2J", b"/a%0d%0aINFO%20forged%1b[2J", "/a%0d%0aINFO%20forged%1b[2J"),
        # A server that gives no raw_path: the decoded path, control characters escaped.
        ("/a\r\nINFO forged\x1b[2J\u2028", None, "/a\\x0d\\x0aINFO forged\\x1b[2J\\u2028"),
    ],
)
async def test_a_url_cannot_forge_access_log_lines(
    access_lines: list[str], path: str, raw_path: bytes | None, expected: str
) -> None:
    scope = http_scope(path)
    if raw_path is None:
        del scope["raw_path"]
    else:
        scope["raw_path"] = raw_path
    await call(RequestIdMiddleware(plain_app(status=404), access_log=True), scope)
    (line,) = access_lines
    assert 1 == len(line.splitlines())
    assert "\x1b" not in line
    assert line.startswith(f"INFO GET {expected} 404 ")


async def test_a_method_cannot_forge_access_log_lines(access_lines: list[str]) -> None:
    scope = http_scope("/", method="GET\r\nINFO forged")
    await call(RequestIdMiddleware(plain_app(), access_log=True), scope)
    (line,) = access_lines
    assert line.startswith("INFO GET\\x0d\\x0aINFO forged / 200 ")
