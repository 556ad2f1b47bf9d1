"""MetricsMiddleware around real Starlette, FastAPI, Litestar and Quart apps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from litestar import Litestar, get
from litestar.params import FromPath
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from quart import Quart
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from asgi_observe.frameworks.quart import register_quart_route_hook
from asgi_observe.metrics.middleware import MetricsMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware

DURATION = "http_server_request_duration_seconds"


def count(registry: CollectorRegistry, method: str, route: str, status: int) -> float | None:
    return registry.get_sample_value(
        DURATION + "_count",
        {
            "http_request_method": method,
            "http_route": route,
            "http_response_status_code": str(status),
        },
    )


def series(registry: CollectorRegistry, name: str = DURATION) -> set[tuple[Any, ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for metric in registry.collect()
        if metric.name == name
        for sample in metric.samples
        if sample.name.endswith(("_count", name))
    }


async def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


async def hello(request: Request) -> Response:
    status = int(request.query_params.get("status", "200"))
    return PlainTextResponse("x" * int(request.query_params.get("size", "1")), status_code=status)


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def sleepy_background(request: Request) -> Response:
    return PlainTextResponse("done", background=BackgroundTask(asyncio.sleep, 0.4))


async def slow_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            await asyncio.sleep(0.05)
            yield b"chunk"

    return StreamingResponse(chunks())


async def upload(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


def starlette_app(**middleware_options: Any) -> Starlette:
    routes = [
        Route("/users/{name}", hello),
        Route("/upload", upload, methods=["POST"]),
        Route("/boom", boom),
        Route("/background", sleepy_background),
        Route("/stream", slow_stream),
        Mount("/tenants/{tenant}", routes=[Route("/items/{id:int}", hello)]),
    ]
    middleware = [Middleware(MetricsMiddleware, **middleware_options)] if middleware_options else []
    return Starlette(routes=routes, middleware=middleware)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.mark.parametrize("placement", ["wrapping", "starlette-middleware"])
async def test_starlette_route_templates_are_the_labels(
    registry: CollectorRegistry, placement: str
) -> None:
    if placement == "wrapping":
        app: Any = MetricsMiddleware(starlette_app(), registry=registry)
    else:
        app = starlette_app(registry=registry)
    async with await client_for(app) as client:
        await client.get("/users/ann")
        await client.get("/users/bob")
        await client.get("/tenants/acme/items/3")
        await client.get("/tenants/initech/items/4")
        await client.get("/nope")
        await client.post("/users/ann")
        await client.get("/boom")
    assert 2.0 == count(registry, "GET", "/users/{name}", 200)
    assert 2.0 == count(registry, "GET", "/tenants/{tenant}/items/{id}", 200)
    assert 1.0 == count(registry, "GET", "_unmatched", 404)
    assert 1.0 == count(registry, "POST", "/users/{name}", 405)
    assert 1.0 == count(registry, "GET", "/boom", 500)


async def test_fastapi_included_routers_and_mounts(registry: CollectorRegistry) -> None:
    app = FastAPI()
    api = APIRouter(prefix="/api")

    @api.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    admin = APIRouter(prefix="/admin")
    admin.include_router(api)
    app.include_router(api)
    app.include_router(admin, prefix="/v2")
    sub = FastAPI()

    @sub.get("/s/{y}")
    async def s(y: str) -> dict[str, str]:
        return {}

    app.mount("/sub/{region}", sub)
    async with await client_for(MetricsMiddleware(app, registry=registry)) as client:
        await client.get("/api/orders/1")
        await client.get("/api/orders/not-a-number")
        await client.get("/v2/admin/api/orders/2")
        await client.get("/sub/eu/s/1")
        await client.delete("/api/orders/1")
        await client.get("/nope")
    assert 1.0 == count(registry, "GET", "/api/orders/{order_id}", 200)
    assert 1.0 == count(registry, "GET", "/api/orders/{order_id}", 422)
    assert 1.0 == count(registry, "GET", "/v2/admin/api/orders/{order_id}", 200)
    assert 1.0 == count(registry, "GET", "/sub/{region}/s/{y}", 200)
    assert 1.0 == count(registry, "DELETE", "/api/orders/{order_id}", 405)
    assert 1.0 == count(registry, "GET", "_unmatched", 404)


async def test_litestar_path_templates(registry: CollectorRegistry) -> None:
    @get("/books/{book_id:int}")
    async def book(book_id: FromPath[int]) -> str:
        return "b"

    app = MetricsMiddleware(Litestar(route_handlers=[book]), registry=registry)
    async with await client_for(app) as client:
        await client.get("/books/1")
        await client.get("/books/2")
        await client.post("/books/2")
        await client.get("/nope")
    assert 2.0 == count(registry, "GET", "/books/{book_id}", 200)
    assert 1.0 == count(registry, "POST", "_unmatched", 405)
    assert 1.0 == count(registry, "GET", "_unmatched", 404)


async def test_quart_url_rules_through_the_hook(registry: CollectorRegistry) -> None:
    quart_app = Quart(__name__)

    @quart_app.route("/pets/<int:pet_id>")
    async def pet(pet_id: int) -> str:
        return "p"

    register_quart_route_hook(quart_app)
    async with await client_for(MetricsMiddleware(quart_app, registry=registry)) as client:
        await client.get("/pets/1")
        await client.get("/pets/2")
        await client.get("/nope")
    assert 2.0 == count(registry, "GET", "/pets/{pet_id}", 200)
    assert 1.0 == count(registry, "GET", "_unmatched", 404)


async def test_thousands_of_paths_and_junk_methods_stay_bounded(
    registry: CollectorRegistry,
) -> None:
    app = MetricsMiddleware(starlette_app(), registry=registry, max_label_sets=50)
    rng = random.Random(4)
    junk = ["BREW", "get", "X-CUSTOM", "PROPFIND", "M" * 40]
    async with await client_for(app) as client:
        for i in range(2000):
            method = rng.choice(["GET", *junk])
            path = rng.choice([f"/users/u{i}", f"/random/{i}", f"/tenants/t{i}/items/{i}"])
            await client.request(method, path, params={"status": str(200 + i % 3)})
    labels = series(registry)
    routes = {dict(label)["http_route"] for label in labels}
    methods = {dict(label)["http_request_method"] for label in labels}
    assert routes <= {"/users/{name}", "/tenants/{tenant}/items/{id}", "_unmatched"}
    assert methods == {"GET", "_OTHER"}
    assert len(labels) <= 50
    active = series(registry, "http_server_active_requests")
    assert 11 == len(active)  # ten known methods and _OTHER, whatever the clients sent


async def test_cap_overflow_with_a_real_app(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(starlette_app(), registry=registry, max_label_sets=2)
    async with await client_for(app) as client:
        for status in range(200, 210):
            await client.get("/users/a", params={"status": str(status)})
    assert 3 == len(series(registry))
    assert 8.0 == count(registry, "_overflow", "_overflow", "_overflow")  # type: ignore[arg-type]


async def test_background_task_is_not_in_the_duration(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(starlette_app(), registry=registry)
    async with await client_for(app) as client:
        await client.get("/background")
    labels = {"http_request_method": "GET", "http_route": "/background"}
    labels["http_response_status_code"] = "200"
    assert (registry.get_sample_value(DURATION + "_sum", labels) or 1.0) < 0.3


async def test_streaming_duration_covers_the_whole_stream(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(starlette_app(), registry=registry, record_body_sizes=True)
    async with await client_for(app) as client:
        assert b"chunk" * 4 == (await client.get("/stream")).content
    labels = {"http_request_method": "GET", "http_route": "/stream"}
    labels["http_response_status_code"] = "200"
    assert (registry.get_sample_value(DURATION + "_sum", labels) or 0.0) >= 0.2
    response_size = "http_server_response_body_size_bytes_sum"
    assert 20.0 == registry.get_sample_value(response_size, labels)


async def test_exemplars_link_to_the_sampled_trace(
    registry: CollectorRegistry, span_capture: Any
) -> None:
    metrics = MetricsMiddleware(starlette_app(), registry=registry)
    app = TracingMiddleware(metrics, tracer_provider=span_capture.provider)
    async with await client_for(app) as client:
        await client.get("/users/ann")
    (span,) = span_capture.spans
    trace_id = format(span.context.trace_id, "032x")
    exposition = openmetrics(registry).decode()
    assert f'# {{trace_id="{trace_id}"}}' in exposition
    assert "/users/{name}" == span.attributes["http.route"]


async def test_interleaved_requests_are_not_mixed_up(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(starlette_app(), registry=registry, record_body_sizes=True)
    async with await client_for(app) as client:
        await asyncio.gather(
            *(
                client.get(f"/users/u{i}", params={"status": str(200 + i % 4), "size": str(i)})
                for i in range(40)
            ),
            *(client.post("/upload", content=b"u" * (i + 1)) for i in range(10)),
            client.get("/stream"),
            client.get("/nope"),
        )
    for status in range(200, 204):
        assert 10.0 == count(registry, "GET", "/users/{name}", status)
        sizes = sum(i for i in range(40) if i % 4 == status - 200)
        labels = {"http_request_method": "GET", "http_route": "/users/{name}"}
        labels["http_response_status_code"] = str(status)
        name = "http_server_response_body_size_bytes_sum"
        assert float(sizes) == registry.get_sample_value(name, labels)
    upload = {"http_request_method": "POST", "http_route": "/upload"}
    upload["http_response_status_code"] = "200"
    assert 55.0 == registry.get_sample_value("http_server_request_body_size_bytes_sum", upload)
    assert 1.0 == count(registry, "GET", "/stream", 200)
    assert 1.0 == count(registry, "GET", "_unmatched", 404)
