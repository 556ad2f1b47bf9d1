"""A small Django service, in one file, observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.django_app:app

(or `daphne examples.django_app:app`, `granian --interface asgi examples.django_app:app`).
Environment: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other OTEL_* variables) choose where
spans go, ``DOWNSTREAM_URL`` is the service ``/downstream`` calls. See
docs/frameworks/django.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import django
import httpx
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import Http404, HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import include, path, re_path
from opentelemetry import trace
from opentelemetry.propagate import inject

import asgi_observe
from asgi_observe.logging import JsonFormatter

DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8001/")

# One JSON object per log line; asgi_observe adds request_id, trace_id and span_id.
_handler = logging.StreamHandler()
_handler.setFormatter(JsonFormatter())
# force=True: a server may have configured the root logger before importing the app
# (daphne does), and the JSON handler must still be the one that writes.
logging.basicConfig(level=logging.INFO, handlers=[_handler], force=True)

# A one-file project: the settings a settings.py would hold. LOGGING_CONFIG=None keeps
# the logging set up above (Django's "Internal Server Error" lines included).
settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="example-only-not-secret",
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
)
django.setup()

# Tracer provider, OTLP exporter and W3C propagators from the OTEL_* variables.
asgi_observe.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "django-example"))

logger = logging.getLogger("examples.django")
tracer = trace.get_tracer("examples.django")


async def get_item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id == 0:
        raise Http404("no item 0")  # a 404 of a matched route keeps its template
    return JsonResponse({"item_id": item_id, "name": f"item {item_id}"})


def get_order(request: HttpRequest, user_id: int, order: str) -> JsonResponse:
    # A sync view: Django runs it in a worker thread, and the log line still carries
    # the request's ids.
    logger.info("loading order", extra={"user_id": user_id, "order": order})
    return JsonResponse({"user_id": user_id, "order": order})


def archive(request: HttpRequest, year: str) -> JsonResponse:
    return JsonResponse({"year": int(year)})


async def boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("something broke")


def sync_boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("something broke in a thread")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.01)
            yield f"line {number}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


async def call_downstream(request: HttpRequest) -> JsonResponse:
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
    return JsonResponse({"downstream_status": response.status_code})


async def downstream_reachable() -> bool:
    # Readiness: the service we depend on answers (a hang counts as a failure too).
    async with httpx.AsyncClient(timeout=0.5) as client:
        response = await client.get(DOWNSTREAM_URL)
    return response.status_code < 500


api_patterns = [
    path("users/<int:user_id>/orders/<slug:order>", get_order),
    re_path(r"^archive/(?P<year>[0-9]{4})/$", archive),
]

urlpatterns = [
    path("items/<int:item_id>", get_item),
    path("api/v1/", include(api_patterns)),
    path("boom", boom),
    path("sync-boom", sync_boom),
    path("stream", stream),
    path("downstream", call_downstream),
]

health = asgi_observe.health_app(checks={"downstream": downstream_reachable})

# observe() recognises Django's handler: it publishes each request's
# `resolver_match.route` (/items/{item_id}, /api/v1/users/{user_id}/orders/{order})
# and hands the exceptions Django answers with a 500 to the span and to Sentry.
# Django speaks no lifespan; asgi_observe answers it (and marks /health/startup started).
app = asgi_observe.observe(
    get_asgi_application(),
    metrics_path="/metrics",
    health=health,
    health_path="/health",
    access_log=True,
)
