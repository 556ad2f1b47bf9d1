"""A small Starlette service observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.starlette_app:app

Environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other OTEL_* variables) choose where
spans go, ``DOWNSTREAM_URL`` is the service ``/downstream`` calls. See
docs/frameworks/starlette.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from opentelemetry import trace
from opentelemetry.propagate import inject
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route

import asgi_observe
from asgi_observe.logs import JsonFormatter

DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8001/")

# One JSON object per log line; asgi_observe adds request_id, trace_id and span_id.
_handler = logging.StreamHandler()
_handler.setFormatter(JsonFormatter())
# force=True: a server may have configured the root logger before importing the app
# (daphne does), and the JSON handler must still be the one that writes.
logging.basicConfig(level=logging.INFO, handlers=[_handler], force=True)

# Tracer provider, OTLP exporter and W3C propagators from the OTEL_* variables.
asgi_observe.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "starlette-example"))

logger = logging.getLogger("examples.starlette")
tracer = trace.get_tracer("examples.starlette")


async def get_item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    return JSONResponse({"item_id": item_id, "name": f"item {item_id}"})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("something broke")


async def stream(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.01)
            yield f"line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


async def call_downstream(request: Request) -> JSONResponse:
    logger.info("calling downstream", extra={"url": DOWNSTREAM_URL})
    with tracer.start_as_current_span(
        "GET", kind=trace.SpanKind.CLIENT, attributes={"url.full": DOWNSTREAM_URL}
    ) as span:
        headers: dict[str, str] = {}
        inject(headers)  # traceparent (this client span) and the inbound baggage
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(DOWNSTREAM_URL, headers=headers)
        span.set_attribute("http.response.status_code", response.status_code)
    logger.info("downstream answered", extra={"status": response.status_code})
    return JSONResponse({"downstream_status": response.status_code})


async def downstream_reachable() -> bool:
    # Readiness: the service we depend on answers (a hang counts as a failure too).
    async with httpx.AsyncClient(timeout=0.5) as client:
        response = await client.get(DOWNSTREAM_URL)
    return response.status_code < 500


health = asgi_observe.health_app(checks={"downstream": downstream_reachable})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    health.mark_started()  # from now on /health/startup answers 200
    yield


starlette_app = Starlette(
    lifespan=lifespan,
    routes=[
        Route("/items/{item_id:int}", get_item),
        Route("/boom", boom),
        Route("/stream", stream),
        Route("/downstream", call_downstream),
        Mount("/health", app=health),
    ],
)

# Wrapping the whole app puts the observability layers outside Starlette's
# ServerErrorMiddleware: the 500 it sends for an unhandled exception passes through them.
# metrics_path serves /metrics in front of those layers, so scrapes are neither traced
# nor counted (Mount("/metrics", app=asgi_observe.metrics_app()) works too, but
# Starlette then redirects /metrics to /metrics/).
app = asgi_observe.observe(starlette_app, metrics_path="/metrics", access_log=True)
