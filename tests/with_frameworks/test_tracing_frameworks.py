"""TracingMiddleware around real Starlette, FastAPI, Litestar and Quart apps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from asgi_observe.frameworks.quart import register_quart_route_hook
from asgi_observe.propagation import w3c_propagator
from asgi_observe.tracing.middleware import TracingMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND = {
    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    "baggage": "tenant=acme;scope=internal",
}


@pytest.fixture(autouse=True)
def w3c_global() -> Iterator[None]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(w3c_propagator())
    yield
    propagate.set_global_textmap(previous)


def outbound_headers() -> dict[str, str]:
    """What a handler's own downstream call would carry."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    carrier["current_trace_id"] = format(
        trace.get_current_span().get_span_context().trace_id, "032x"
    )
    return carrier


async def get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=INBOUND)


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def user(request: Any) -> JSONResponse:
        return JSONResponse(outbound_headers())

    async def boom(request: Any) -> JSONResponse:
        raise RuntimeError("boom")

    items = [Route("/items/{item_id:int}", user)]
    return Starlette(
        routes=[
            Route("/users/{user_id}", user),
            Route("/boom", boom),
            Mount("/tenants/{tenant}", routes=items),
        ]
    )


def fastapi_app() -> Any:
    from fastapi import APIRouter, FastAPI

    router = APIRouter(prefix="/v1")

    @router.get("/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        return outbound_headers()

    app = FastAPI()
    app.include_router(router)
    return app


def litestar_app() -> Any:
    from litestar import Litestar, get
    from litestar.params import FromPath

    @get("/users/{user_id:str}", sync_to_thread=False)
    def user(user_id: FromPath[str]) -> dict[str, str]:
        return outbound_headers()

    return Litestar(route_handlers=[user])


def quart_app() -> Any:
    from quart import Quart

    app = Quart(__name__)

    @app.get("/users/<user_id>")
    async def user(user_id: str) -> dict[str, str]:
        return outbound_headers()

    register_quart_route_hook(app)
    return app


CASES = [
    (starlette_app, "/users/7", "/users/{user_id}"),
    (starlette_app, "/tenants/acme/items/3", "/tenants/{tenant}/items/{item_id}"),
    (fastapi_app, "/v1/users/7", "/v1/users/{user_id}"),
    (litestar_app, "/users/7", "/users/{user_id}"),
    (quart_app, "/users/7", "/users/{user_id}"),
]


@pytest.mark.parametrize(("factory", "path", "route"), CASES)
async def test_route_template_and_context_in_real_frameworks(
    span_capture: Any, factory: Any, path: str, route: str
) -> None:
    app = TracingMiddleware(factory(), tracer_provider=span_capture.provider)
    response = await get(app, path)

    assert 200 == response.status_code
    (span,) = span_capture.spans
    assert f"GET {route}" == span.name
    assert route == span.attributes["http.route"]
    assert TRACE_ID == response.json()["current_trace_id"]
    expected_parent = f"00-{TRACE_ID}-{span.context.span_id:016x}-01"
    assert expected_parent == response.json()["traceparent"]
    assert INBOUND["baggage"] == response.json()["baggage"]


@pytest.mark.parametrize("factory", [starlette_app, fastapi_app, litestar_app, quart_app])
async def test_unmatched_path_has_no_route(span_capture: Any, factory: Any) -> None:
    app = TracingMiddleware(factory(), tracer_provider=span_capture.provider)
    response = await get(app, "/no/such/path/12345")

    assert 404 == response.status_code
    (span,) = span_capture.spans
    assert "GET" == span.name
    assert "http.route" not in span.attributes
    assert StatusCode.UNSET == span.status.status_code


async def test_starlette_exception_marks_the_span(span_capture: Any) -> None:
    app = TracingMiddleware(starlette_app(), tracer_provider=span_capture.provider)
    response = await get(app, "/boom")

    assert 500 == response.status_code
    (span,) = span_capture.spans
    assert StatusCode.ERROR == span.status.status_code
    assert "RuntimeError" == span.attributes["error.type"]
    assert 500 == span.attributes["http.response.status_code"]
    assert ["exception"] == [event.name for event in span.events]
    assert "GET /boom" == span.name


async def test_fastapi_native_telemetry_does_not_add_a_second_span(span_capture: Any) -> None:
    from fastapi import FastAPI

    # FastAPI starts its own server span when it is given (or finds) an SDK provider.
    fastapi = FastAPI(telemetry={"tracer_provider": span_capture.provider})

    @fastapi.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    alone = await get(fastapi, "/items/1")
    assert 200 == alone.status_code
    # FastAPI's own server span (and its internal ones): the guard is needed.
    assert [SpanKind.SERVER] == [s.kind for s in span_capture.spans if s.kind is SpanKind.SERVER]
    span_capture.exporter.clear()

    response = await get(
        TracingMiddleware(fastapi, tracer_provider=span_capture.provider), "/items/2"
    )
    assert 200 == response.status_code
    (span,) = span_capture.spans
    assert "GET /items/{item_id}" == span.name
