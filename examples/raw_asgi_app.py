"""A small framework-free ASGI service observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.raw_asgi_app:app

Environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other OTEL_* variables) choose where
spans go, ``DOWNSTREAM_URL`` is the service ``/downstream`` calls. See
docs/frameworks/raw-asgi.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.propagate import inject

import asgi_observe
from asgi_observe.frameworks import ROUTE_KEY
from asgi_observe.logs import JsonFormatter

DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8001/")

# One JSON object per log line; asgi_observe adds request_id, trace_id and span_id.
_handler = logging.StreamHandler()
_handler.setFormatter(JsonFormatter())
# force=True: a server may have configured the root logger before importing the app
# (daphne does), and the JSON handler must still be the one that writes.
logging.basicConfig(level=logging.INFO, handlers=[_handler], force=True)

# Tracer provider, OTLP exporter and W3C propagators from the OTEL_* variables.
asgi_observe.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "raw-asgi-example"))

logger = logging.getLogger("examples.raw_asgi")
tracer = trace.get_tracer("examples.raw_asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[dict[str, str], Send], Awaitable[None]]


async def send_json(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def get_item(params: dict[str, str], send: Send) -> None:
    item_id = int(params["item_id"])
    await send_json(send, 200, {"item_id": item_id, "name": f"item {item_id}"})


async def boom(params: dict[str, str], send: Send) -> None:
    raise RuntimeError("something broke")


async def stream(params: dict[str, str], send: Send) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for number in range(5):
        await asyncio.sleep(0.01)
        chunk = f"line {number}\n".encode()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def call_downstream(params: dict[str, str], send: Send) -> None:
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
    await send_json(send, 200, {"downstream_status": response.status_code})


# (route template, compiled pattern, handler). The template is what metrics and spans
# show as http.route; the app publishes it in the scope under asgi_observe's route key.
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("/items/{item_id}", re.compile(r"/items/(?P<item_id>\d+)"), get_item),
    ("/boom", re.compile(r"/boom"), boom),
    ("/stream", re.compile(r"/stream"), stream),
    ("/downstream", re.compile(r"/downstream"), call_downstream),
]


async def service(scope: Scope, receive: Receive, send: Send) -> None:
    """The application: a tiny path router that publishes the route template it matched."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    for template, pattern, handler in ROUTES:
        match = pattern.fullmatch(scope["path"])
        if match is not None:
            scope[ROUTE_KEY] = template
            if scope["method"] not in ("GET", "HEAD"):
                await send_json(send, 405, {"error": "method not allowed"})
                return
            await handler(match.groupdict(), send)
            return
    await send_json(send, 404, {"error": "not found"})


async def downstream_reachable() -> bool:
    # Readiness: the service we depend on answers (a hang counts as a failure too).
    async with httpx.AsyncClient(timeout=0.5) as client:
        response = await client.get(DOWNSTREAM_URL)
    return response.status_code < 500


# Without a framework there is nothing to mount into: observe() serves /metrics and the
# /health probes in front of the service.
app = asgi_observe.observe(
    service,
    metrics_path="/metrics",
    health_path="/health",
    health=asgi_observe.health_app(checks={"downstream": downstream_reachable}),
    access_log=True,
)
