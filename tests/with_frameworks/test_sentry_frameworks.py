"""SentryMiddleware around real Starlette, FastAPI, Litestar and Quart apps.

sentry-sdk's default integrations are on, so its Starlette/FastAPI/Litestar/Quart
integrations capture too: one exception must still give exactly one event, carrying the
route, the request id and the inbound trace id, and none of the secrets of the request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import Request as FastAPIRequest
from litestar import Request as LitestarRequest
from litestar.params import FromPath
from sentry_receiver import Receiver, sentry_client, wait_for

from asgi_observe.errors.sentry import SentryMiddleware
from asgi_observe.errors.sentry_policy import http_status
from asgi_observe.frameworks.quart import register_quart_route_hook
from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
TOKEN = "framework-token-31337"
HEADERS = {
    "traceparent": TRACEPARENT,
    "x-request-id": "req-fw-1",
    "authorization": f"Bearer {TOKEN}",
    "cookie": "sessionid=fw-cookie-2718; theme=fw-theme-dark",
    "x-api-key": "fw-api-key-1618",
}
QUERY = "?page=1&access_token=fw-query-1414"
BODY = {"user": "bob", "password": "fw-body-password-1732"}
PLANTED = (
    TOKEN,
    "fw-cookie-2718",
    "fw-theme-dark",
    "fw-api-key-1618",
    "fw-query-1414",
    "fw-body-password-1732",
)


def fail(copied: str, body: Any) -> None:
    raise RuntimeError(f"refused {copied} for {body['user']}")


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.routing import Route

    async def item(request: Request) -> None:
        body = await request.json()
        fail(request.headers["authorization"].split()[1], body)

    async def missing(request: Request) -> None:
        raise HTTPException(404)

    return Starlette(
        routes=[Route("/items/{item_id}", item, methods=["POST"]), Route("/nf", missing)]
    )


def fastapi_app() -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: int, request: FastAPIRequest) -> None:
        body = await request.json()
        fail(request.headers["authorization"].split()[1], body)

    @app.get("/nf")
    async def missing() -> None:
        raise HTTPException(404)

    return app


def litestar_app() -> Any:
    from litestar import Litestar, get, post
    from litestar.exceptions import NotFoundException

    @post("/items/{item_id:int}")
    async def item(request: LitestarRequest[Any, Any, Any], item_id: FromPath[int]) -> None:
        body = await request.json()
        fail(request.headers["authorization"].split()[1], body)

    @get("/nf")
    async def missing() -> None:
        raise NotFoundException()

    return Litestar([item, missing])


def quart_app() -> Any:
    from quart import Quart, abort, request

    app = Quart(__name__)

    @app.post("/items/<int:item_id>")
    async def item(item_id: int) -> None:
        body = await request.get_json()
        fail(request.headers["authorization"].split()[1], body)

    @app.get("/nf")
    async def missing() -> None:
        abort(404)

    register_quart_route_hook(app)
    return app


FRAMEWORKS: dict[str, tuple[Callable[[], Any], str, str]] = {
    # name: (app factory, route template, mechanism of the one event)
    "starlette": (starlette_app, "/items/{item_id}", "starlette"),
    "fastapi": (fastapi_app, "/items/{item_id}", "starlette"),
    "litestar": (litestar_app, "/items/{item_id}", "litestar"),
    "quart": (quart_app, "/items/{item_id}", "quart"),
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def observed(app: Any, span_capture: Any) -> Any:
    layer = SentryMiddleware(app)
    return RequestIdMiddleware(TracingMiddleware(layer, tracer_provider=span_capture.provider))


async def post_failing_request(app: Any) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/items/42" + QUERY, headers=HEADERS, json=BODY)
        return response.status_code


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("send_default_pii", [False, True], ids=["no-pii", "pii"])
async def test_one_scrubbed_event_per_exception(
    framework: str, send_default_pii: bool, receiver: Receiver, span_capture: Any
) -> None:
    factory, route, mechanism = FRAMEWORKS[framework]
    with sentry_client(receiver.dsn, send_default_pii=send_default_pii, traces_sample_rate=1.0):
        app = observed(factory(), span_capture)  # after init: integrations patch on creation
        status = await post_failing_request(app)
        sentry_sdk.flush(timeout=5)
        wait_for(lambda: bool(receiver.events))

    events = receiver.events
    assert (500, 1) == (status, len(events)), [e["exception"]["values"] for e in events]
    [event] = events
    exception = event["exception"]["values"][-1]
    assert ("RuntimeError", mechanism) == (exception["type"], exception["mechanism"]["type"])
    assert "refused [Filtered] for bob" == exception["value"]
    assert ("req-fw-1", route) == (event["tags"]["request_id"], event["tags"]["http.route"])
    assert TRACE_ID == event["contexts"]["trace"]["trace_id"]
    raw = receiver.raw.decode("utf-8")
    assert [] == [secret for secret in PLANTED if secret in raw]


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
async def test_http_404_is_not_reported(
    framework: str, receiver: Receiver, span_capture: Any
) -> None:
    factory = FRAMEWORKS[framework][0]
    with sentry_client(receiver.dsn):
        app = observed(factory(), span_capture)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            status = (await client.get("/nf")).status_code
        sentry_sdk.flush(timeout=5)
    assert (404, []) == (status, receiver.events)


def framework_http_exceptions() -> list[tuple[BaseException, int]]:
    import fastapi
    import litestar.exceptions
    import starlette.exceptions
    import werkzeug.exceptions

    return [
        (starlette.exceptions.HTTPException(404), 404),
        (starlette.exceptions.HTTPException(503), 503),
        (fastapi.HTTPException(401), 401),
        (litestar.exceptions.NotFoundException(), 404),
        (litestar.exceptions.HTTPException(status_code=502), 502),
        (werkzeug.exceptions.NotFound(), 404),
        (werkzeug.exceptions.InternalServerError(), 500),
    ]


def test_framework_http_exceptions_are_recognised() -> None:
    """Duck-typed: status_code (Starlette, FastAPI, Litestar) or code (werkzeug/Quart)."""
    cases = framework_http_exceptions()
    assert [expected for _, expected in cases] == [http_status(exc) for exc, _ in cases]


@pytest.mark.e2e
def test_under_uvicorn_the_servers_error_log_adds_no_second_event(
    receiver: Receiver, span_capture: Any
) -> None:
    """uvicorn logs "Exception in ASGI application"; sentry's logging integration sees it."""
    import uvicorn

    with sentry_client(receiver.dsn):
        config = uvicorn.Config(
            observed(starlette_app(), span_capture),
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="error",
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
            response = httpx.post(
                f"http://127.0.0.1:{port}/items/1{QUERY}", headers=HEADERS, json=BODY, timeout=5
            )
        finally:
            server.should_exit = True
            thread.join(10)
        sentry_sdk.flush(timeout=5)
        wait_for(lambda: bool(receiver.events))

    assert (500, 1) == (response.status_code, len(receiver.events))
    raw = receiver.raw.decode("utf-8")
    assert [] == [secret for secret in PLANTED if secret in raw]


@pytest.mark.parametrize("framework", ["litestar", "quart"])
async def test_framework_handled_exception_is_reported_without_sentrys_integrations(
    framework: str, receiver: Receiver, span_capture: Any
) -> None:
    """Litestar and Quart answer the 500 themselves; observe()'s error hooks hand it over."""
    from prometheus_client import CollectorRegistry

    from asgi_observe import observe

    factory, route, _ = FRAMEWORKS[framework]
    options = {"auto_enabling_integrations": False, "default_integrations": False}
    with sentry_client(receiver.dsn, **options):
        app = observe(
            factory(),
            configure=False,
            tracer_provider=span_capture.provider,
            registry=CollectorRegistry(),
            log_correlation=False,
        )
        status = await post_failing_request(app)
        sentry_sdk.flush(timeout=5)
        wait_for(lambda: bool(receiver.events))

    [event] = receiver.events
    exception = event["exception"]["values"][-1]
    assert (500, "RuntimeError", "asgi_observe") == (
        status,
        exception["type"],
        exception["mechanism"]["type"],
    )
    assert exception["stacktrace"]["frames"]  # the traceback, not just a 500 message
    assert ("req-fw-1", route) == (event["tags"]["request_id"], event["tags"]["http.route"])
    [span] = span_capture.spans
    assert ("RuntimeError", 500) == (
        span.attributes["error.type"],
        span.attributes["http.response.status_code"],
    )
    assert ["exception"] == [span_event.name for span_event in span.events]
