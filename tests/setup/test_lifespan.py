"""LifespanMiddleware: flush after the app's own shutdown, answer lifespan for apps that do not."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_driver import call, http_scope, plain_app
from starlette.applications import Starlette

from asgi_observe.setup.lifespan import LifespanMiddleware

LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


class Events:
    """One ordered log shared by the server side, the app and the flush."""

    def __init__(self) -> None:
        self.log: list[str] = []


class FakeHandle:
    """Stands in for configure()'s handle: records when a flush happened."""

    def __init__(self, events: Events, *, delay: float = 0.0) -> None:
        self.events = events
        self.delay = delay
        self.timeouts: list[float] = []

    def force_flush(self, timeout: float = 5.0) -> bool:
        self.timeouts.append(timeout)
        time.sleep(self.delay)
        self.events.log.append("flush")
        return True


class Health:
    def __init__(self, events: Events) -> None:
        self.events = events

    def mark_started(self) -> None:
        self.events.log.append("marked started")


class Server:
    """The server side of a lifespan conversation: startup, then shutdown."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.events.log.append(f"server got {message['type']}")
        await self.answers.put(message)

    async def run(self, app: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        task = asyncio.ensure_future(app(dict(LIFESPAN_SCOPE), self.receive, self.send))
        await self.incoming.put({"type": "lifespan.startup"})
        startup = await asyncio.wait_for(self.answers.get(), 5)
        await self.incoming.put({"type": "lifespan.shutdown"})
        shutdown = await asyncio.wait_for(self.answers.get(), 5)
        await asyncio.wait_for(task, 5)
        return startup, shutdown


def wrap(app: Any, events: Events, **options: Any) -> LifespanMiddleware:
    return LifespanMiddleware(app, handle=FakeHandle(events), health=Health(events), **options)  # type: ignore[arg-type]


def lifespan_app(events: Events) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                events.log.append("app shutdown ran")
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


async def test_flush_runs_after_the_apps_shutdown_and_before_the_server_hears_of_it() -> None:
    events = Events()
    server = Server(events)

    startup, shutdown = await server.run(wrap(lifespan_app(events), events))

    assert ("lifespan.startup.complete", "lifespan.shutdown.complete") == (
        startup["type"],
        shutdown["type"],
    )
    assert [
        "marked started",
        "server got lifespan.startup.complete",
        "app shutdown ran",
        "flush",
        "server got lifespan.shutdown.complete",
    ] == events.log


async def test_a_starlette_app_shutdown_is_flushed() -> None:
    events = Events()

    async def lifespan(app: Any) -> Any:
        yield
        events.log.append("app shutdown ran")

    app = Starlette(lifespan=asynccontextmanager(lifespan))

    await Server(events).run(wrap(app, events))

    assert ["app shutdown ran", "flush", "server got lifespan.shutdown.complete"] == events.log[-3:]


async def test_an_app_that_raises_on_lifespan_gets_lifespan_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Like `assert scope["type"] == "http"`: unsupported, so the middleware answers."""
    events = Events()

    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"

    with caplog.at_level(logging.DEBUG, logger="asgi_observe.lifespan"):
        startup, shutdown = await Server(events).run(wrap(http_only, events))

    assert ("lifespan.startup.complete", "lifespan.shutdown.complete") == (
        startup["type"],
        shutdown["type"],
    )
    assert [
        "marked started",
        "server got lifespan.startup.complete",
        "flush",
        "server got lifespan.shutdown.complete",
    ] == events.log
    assert [logging.DEBUG] == [r.levelno for r in caplog.records]


async def test_an_app_that_returns_without_answering_gets_lifespan_answered() -> None:
    events = Events()

    async def ignores(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

    startup, shutdown = await Server(events).run(wrap(ignores, events))

    assert ("lifespan.startup.complete", "lifespan.shutdown.complete") == (
        startup["type"],
        shutdown["type"],
    )
    assert "flush" in events.log


async def test_an_app_that_read_startup_then_raised_is_logged_and_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()

    async def crashes(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("database unreachable")

    with caplog.at_level(logging.ERROR, logger="asgi_observe.lifespan"):
        startup, _ = await Server(events).run(wrap(crashes, events))

    assert "lifespan.startup.complete" == startup["type"]
    [record] = caplog.records
    assert "database unreachable" in str(record.exc_info[1] if record.exc_info else "")


async def test_an_app_that_stops_after_startup_still_gets_its_shutdown_answered() -> None:
    events = Events()

    async def startup_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    _, shutdown = await Server(events).run(wrap(startup_only, events))

    assert "lifespan.shutdown.complete" == shutdown["type"]
    assert ["flush", "server got lifespan.shutdown.complete"] == events.log[-2:]


async def test_startup_failure_is_passed_on_and_not_taken_over() -> None:
    events = Events()

    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = Server(events)
    task = asyncio.ensure_future(
        wrap(fails, events)(dict(LIFESPAN_SCOPE), server.receive, server.send)
    )
    await server.incoming.put({"type": "lifespan.startup"})
    answer = await asyncio.wait_for(server.answers.get(), 5)
    await asyncio.wait_for(task, 5)

    assert {"type": "lifespan.startup.failed", "message": "no database"} == answer
    assert ["server got lifespan.startup.failed"] == events.log


async def test_an_error_in_the_apps_shutdown_is_flushed_then_raised() -> None:
    events = Events()

    async def broken_shutdown(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("shutdown broke")

    server = Server(events)
    middleware = wrap(broken_shutdown, events)
    task = asyncio.ensure_future(middleware(dict(LIFESPAN_SCOPE), server.receive, server.send))
    await server.incoming.put({"type": "lifespan.startup"})
    await server.incoming.put({"type": "lifespan.shutdown"})

    with pytest.raises(RuntimeError, match="shutdown broke"):
        await asyncio.wait_for(task, 5)
    assert ["flush"] == events.log[-1:]


async def test_http_passes_straight_through() -> None:
    events = Events()
    middleware = wrap(plain_app(201), events)

    recorder = await call(middleware, http_scope("/"))
    await call(middleware, http_scope("/"))

    assert 201 == recorder.status
    # No lifespan came first (daphne sends none): the first request marks startup done.
    assert ["marked started"] == events.log


async def test_requests_after_lifespan_startup_mark_nothing_again() -> None:
    events = Events()
    lifespan, http = lifespan_app(events), plain_app(200)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await (lifespan if scope["type"] == "lifespan" else http)(scope, receive, send)

    middleware = wrap(app, events)
    await Server(events).run(middleware)
    marked = events.log.count("marked started")

    await call(middleware, http_scope("/"))

    assert (1, 1) == (marked, events.log.count("marked started"))


async def test_flush_timeout_reaches_the_handle() -> None:
    events = Events()
    handle = FakeHandle(events)
    middleware = LifespanMiddleware(lifespan_app(events), handle=handle, flush_timeout=1.5)  # type: ignore[arg-type]

    await Server(events).run(middleware)

    assert [1.5] == handle.timeouts


async def test_the_loop_keeps_running_while_flushing() -> None:
    events = Events()
    handle = FakeHandle(events, delay=0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    try:
        await Server(events).run(LifespanMiddleware(lifespan_app(events), handle=handle))  # type: ignore[arg-type]
    finally:
        ticking.cancel()
    assert ticks >= 10


def test_negative_flush_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="flush_timeout"):
        LifespanMiddleware(plain_app(), flush_timeout=-1)


def test_without_a_handle_the_global_providers_are_flushed(span_capture: Any) -> None:
    """handle=None: flush_telemetry() over whatever providers are global."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_reset import fresh_globals

    exporter = InMemorySpanExporter()
    with fresh_globals():
        span_capture.provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(span_capture.provider)
        with trace.get_tracer("t").start_as_current_span("buffered"):
            pass
        asyncio.run(Server(Events()).run(LifespanMiddleware(lifespan_app(Events()))))
        assert ["buffered"] == [span.name for span in exporter.get_finished_spans()]


def test_uvicorn_lifespan_on_serves_an_app_that_does_not_support_lifespan() -> None:
    """With lifespan="on", uvicorn refuses an app that raises; wrapped, it starts and flushes."""
    import uvicorn

    events = Events()

    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await plain_app(200, b"served")(scope, receive, send)

    config = uvicorn.Config(
        wrap(http_only, events), host="127.0.0.1", port=0, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        server.should_exit = True
        thread.join(10)

    assert (200, b"served") == (response.status_code, response.content)
    assert not thread.is_alive()
    assert ["marked started", "flush"] == events.log


def test_a_restarted_app_keeps_exporting() -> None:
    """Shutdown flushes but never shuts the providers down: a second lifespan still exports."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_reset import fresh_globals

    from asgi_observe import configure

    exporter = InMemorySpanExporter()
    with fresh_globals():
        app = LifespanMiddleware(lifespan_app(Events()), handle=configure(span_exporter=exporter))
        for name in ("first run", "second run"):
            with trace.get_tracer("t").start_as_current_span(name):
                pass
            asyncio.run(Server(Events()).run(app))
        assert ["first run", "second run"] == [s.name for s in exporter.get_finished_spans()]
