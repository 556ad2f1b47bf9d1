"""RequestIdMiddleware and log correlation under real frameworks and concurrency."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from asgi_driver import websocket_scope
from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_observe.logs.correlation import (
    add_request_context,
    install_log_record_factory,
    uninstall_log_record_factory,
)
from asgi_observe.logs.request_id import RequestIdMiddleware, get_request_id
from asgi_observe.propagation import w3c_propagator
from asgi_observe.tracing.middleware import TracingMiddleware

CONCURRENT = 500
app_logger = logging.getLogger("tests.app")


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs() -> Iterator[ListHandler]:
    """Installs the record factory and collects the app's and the access log's records."""
    original = logging.getLogRecordFactory()
    install_log_record_factory()
    handler = ListHandler()
    loggers = [app_logger, logging.getLogger("asgi_observe.access")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    uninstall_log_record_factory()
    logging.setLogRecordFactory(original)


@pytest.fixture
def struct_events() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def capture(_: Any, __: str, event_dict: Any) -> Any:
        events.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[add_request_context, capture])
    yield events
    structlog.reset_defaults()


def hex_ids(span: trace.Span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def handler_body(tracer: trace.Tracer, seen: dict[int, Any]) -> Any:
    """The work every app below does: spans, awaits that interleave, logs, notes ids."""

    async def handle(index: int) -> None:
        with tracer.start_as_current_span("handler") as span:
            before = get_request_id()
            for step in range(3):
                await asyncio.sleep(random.random() / 1000)
                app_logger.info("step %d", step, extra={"index": index})
                structlog.get_logger().info("struct step", index=index)
            seen[index] = (before, get_request_id(), hex_ids(span))

    return handle


def raw_app(handle: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await handle(int(scope["path"].rsplit("/", 1)[1]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def starlette_app(handle: Any) -> Any:
    async def item(request: Request) -> PlainTextResponse:
        await handle(int(request.path_params["index"]))
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/items/{index:int}", item)])


@pytest.mark.parametrize("make_app", [raw_app, starlette_app], ids=["raw asgi", "starlette"])
@pytest.mark.parametrize("with_tracing", [True, False], ids=["tracing layer", "app spans"])
async def test_concurrent_requests_each_see_their_own_ids(
    make_app: Any,
    with_tracing: bool,
    logs: ListHandler,
    struct_events: list[dict[str, Any]],
    span_capture: Any,
) -> None:
    """500 interleaved requests: own id in the app, the header and every log record."""
    seen: dict[int, Any] = {}
    app = make_app(handler_body(span_capture.provider.get_tracer("tests"), seen))
    if with_tracing:
        app = TracingMiddleware(
            app, tracer_provider=span_capture.provider, propagator=w3c_propagator()
        )
    app = RequestIdMiddleware(app, access_log=True, error_response=True)
    context_before = otel_context.get_current()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(
            *(
                client.get(f"/items/{i}", headers={"X-Request-ID": f"req-{i}"})
                for i in range(CONCURRENT)
            )
        )

    assert [f"req-{i}" for i in range(CONCURRENT)] == [
        r.headers.get_list("x-request-id")[0] for r in responses
    ]
    assert [1] * CONCURRENT == [len(r.headers.get_list("x-request-id")) for r in responses]
    expected = {i: (f"req-{i}", *seen[i][2]) for i in range(CONCURRENT)}
    assert {i: (f"req-{i}", f"req-{i}") for i in range(CONCURRENT)} == {
        i: seen[i][:2] for i in range(CONCURRENT)
    }

    app_records = [r for r in logs.records if r.name == "tests.app"]
    assert 3 * CONCURRENT == len(app_records)
    assert [] == [
        r
        for r in app_records
        if (r.request_id, r.trace_id, r.span_id) != expected[r.__dict__["index"]]
    ]
    assert 3 * CONCURRENT == len(struct_events)
    assert [] == [
        e
        for e in struct_events
        if (e["request_id"], e["trace_id"], e["span_id"]) != expected[e["index"]]
    ]

    access = {r.request_id: r for r in logs.records if r.name == "asgi_observe.access"}
    assert CONCURRENT == len(access)
    trace_of = {f"req-{i}": expected[i][1] for i in range(CONCURRENT)}
    if make_app is starlette_app:
        assert {"/items/{index}"} == {r.route for r in access.values()}
    if with_tracing:
        # The access log carries the server span's trace; without a tracing layer the
        # app's span has ended by the final response event, so there is none.
        assert trace_of == {request_id: r.trace_id for request_id, r in access.items()}
        server_spans = [s for s in span_capture.spans if s.kind == trace.SpanKind.SERVER]
        assert set(trace_of.values()) == {format(s.context.trace_id, "032x") for s in server_spans}

    assert get_request_id() is None
    assert context_before == otel_context.get_current()
    assert trace.INVALID_SPAN is trace.get_current_span()


async def test_generated_ids_for_concurrent_requests_are_unique() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        body = (get_request_id() or "").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    transport = httpx.ASGITransport(app=RequestIdMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get("/") for _ in range(CONCURRENT)))
    echoed = [r.headers["x-request-id"] for r in responses]
    assert [r.text for r in responses] == echoed
    assert CONCURRENT == len(set(echoed))


# --- Starlette ------------------------------------------------------------------------


def starlette_demo() -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        app_logger.info("whoami")
        return JSONResponse({"request_id": get_request_id()})

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("handler bug")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept(headers=[(b"x-request-id", b"stale")])
        await websocket.send_text(get_request_id() or "")
        await websocket.close()

    async def ws_denied(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("go away", status_code=403))

    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/ws-denied", ws_denied),
        ]
    )


async def test_starlette_sees_the_id_and_echoes_it(logs: ListHandler) -> None:
    app = RequestIdMiddleware(starlette_demo())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/whoami", headers={"X-Request-ID": "star-1"})
    assert ({"request_id": "star-1"}, ["star-1"]) == (
        response.json(),
        response.headers.get_list("x-request-id"),
    )
    assert ["star-1"] == [r.request_id for r in logs.records]


async def test_starlette_500_carries_the_id() -> None:
    """Starlette's own ServerErrorMiddleware answers; the header is still added."""
    app = RequestIdMiddleware(starlette_demo(), error_response=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "star-err"})
    assert (500, ["star-err"]) == (response.status_code, response.headers.get_list("x-request-id"))


@pytest.mark.parametrize("error_response", [True, False])
async def test_raw_app_error_response_option(error_response: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("raw bug")

    middleware = RequestIdMiddleware(app, error_response=error_response)
    transport = httpx.ASGITransport(app=middleware, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/", headers={"X-Request-ID": "raw-err"})
    expected = ["raw-err"] if error_response else []
    assert (500, expected) == (response.status_code, response.headers.get_list("x-request-id"))


async def drive_websocket(app: Any, path: str, request_id: bytes) -> list[dict[str, Any]]:
    """Connect, then disconnect once the app has nothing more to say; return what it sent."""
    scope = websocket_scope(path, headers=[(b"x-request-id", request_id)])
    scope["extensions"] = {"websocket.http.response": {}}
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] in ("websocket.close", "websocket.http.response.body"):
            incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    await asyncio.wait_for(app(scope, incoming.get, send), timeout=5)
    return sent


async def test_starlette_websocket_accept_carries_the_id() -> None:
    sent = await drive_websocket(RequestIdMiddleware(starlette_demo()), "/ws", b"ws-star")
    assert [
        {
            "type": "websocket.accept",
            "subprotocol": None,
            "headers": [(b"x-request-id", b"ws-star")],
        },
        {"type": "websocket.send", "text": "ws-star"},
    ] == sent[:2]


async def test_starlette_websocket_denial_carries_the_id() -> None:
    sent = await drive_websocket(RequestIdMiddleware(starlette_demo()), "/ws-denied", b"ws-no")
    start = sent[0]
    assert ("websocket.http.response.start", 403, [b"ws-no"]) == (
        start["type"],
        start["status"],
        [value for key, value in start["headers"] if key == b"x-request-id"],
    )
