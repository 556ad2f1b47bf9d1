"""A small Litestar service observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.litestar_app:app

Environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other OTEL_* variables) choose where
spans go, ``DOWNSTREAM_URL`` is the service ``/downstream`` calls. See
docs/frameworks/litestar.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import httpx
from litestar import Litestar, asgi, get
from litestar.exceptions import HTTPException
from litestar.response import Stream
from litestar.types import Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.propagate import inject

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
asgi_observe.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "litestar-example"))

logger = logging.getLogger("examples.litestar")
tracer = trace.get_tracer("examples.litestar")


@get("/items/{item_id:int}")
async def get_item(item_id: int) -> dict[str, object]:
    return {"item_id": item_id, "name": f"item {item_id}"}


@get("/boom")
async def boom() -> None:
    raise RuntimeError("something broke")


@get("/stream")
async def stream() -> Stream:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.01)
            yield f"line {number}\n".encode()

    return Stream(lines(), media_type="text/plain")


@get("/downstream")
async def call_downstream() -> dict[str, int]:
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
    return {"downstream_status": response.status_code}


async def downstream_reachable() -> bool:
    # Readiness: the service we depend on answers (a hang counts as a failure too).
    async with httpx.AsyncClient(timeout=0.5) as client:
        response = await client.get(DOWNSTREAM_URL)
    return response.status_code < 500


async def log_exception(exception: Exception, scope: Scope) -> None:
    # Litestar answers 500 itself; this puts the traceback in the JSON log, with the
    # request's ids. Client errors (404, 405, validation) are not worth a traceback.
    if isinstance(exception, HTTPException) and exception.status_code < 500:
        return
    logger.error("unhandled exception", exc_info=exception)


_metrics = asgi_observe.metrics_app()
_health = asgi_observe.health_app(checks={"downstream": downstream_reachable})


@asgi("/metrics", is_mount=True, copy_scope=True)
async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
    await _metrics(scope, receive, send)  # type: ignore[arg-type]


@asgi("/health", is_mount=True, copy_scope=True)
async def health(scope: Scope, receive: Receive, send: Send) -> None:
    await _health(scope, receive, send)  # type: ignore[arg-type]


litestar_app = Litestar(
    route_handlers=[get_item, boom, stream, call_downstream, metrics, health],
    after_exception=[log_exception],
    # /health/startup answers 200 once Litestar's startup hooks have run.
    on_startup=[_health.mark_started],
    # The JSON handler set up above stays the only one on the root logger.
    logging_config=None,
)

# Wrapping the app, rather than `middleware=[DefineMiddleware(asgi_observe.observe)]`,
# also observes requests no route matched (404s and 405s): Litestar runs its middleware
# only for the route handler it found.
app = asgi_observe.observe(litestar_app, access_log=True)
