"""A small Quart service observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.quart_app:app

(or ``hypercorn examples.quart_app:app``). Environment: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(and the other OTEL_* variables) choose where spans go, ``DOWNSTREAM_URL`` is the
service ``/downstream`` calls. See docs/frameworks/quart.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import httpx
from opentelemetry import trace
from opentelemetry.propagate import inject
from quart import Quart

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
asgi_observe.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "quart-example"))

logger = logging.getLogger("examples.quart")
tracer = trace.get_tracer("examples.quart")

app = Quart(__name__)


@app.get("/items/<int:item_id>")
async def get_item(item_id: int) -> dict[str, object]:
    return {"item_id": item_id, "name": f"item {item_id}"}


@app.get("/boom")
async def boom() -> dict[str, object]:
    raise RuntimeError("something broke")


@app.get("/stream")
async def stream() -> tuple[AsyncIterator[bytes], int, dict[str, str]]:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.01)
            yield f"line {number}\n".encode()

    return lines(), 200, {"Content-Type": "text/plain"}


@app.get("/downstream")
async def call_downstream() -> dict[str, object]:
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


# Quart has no mounts: observe() serves /metrics and the /health probes itself, in
# front of the app. Replacing app.asgi_app keeps `app` the Quart object, so its CLI,
# test client and decorators work as before.
app.asgi_app = asgi_observe.observe(  # type: ignore[method-assign,assignment]
    app.asgi_app,
    metrics_path="/metrics",
    health_path="/health",
    health=asgi_observe.health_app(checks={"downstream": downstream_reachable}),
    access_log=True,
)
