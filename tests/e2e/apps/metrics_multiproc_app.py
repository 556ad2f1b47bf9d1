"""A Starlette app served by several uvicorn workers; each answer names its worker's pid.

Run by tests/e2e/test_metrics_multiprocess.py with PROMETHEUS_MULTIPROC_DIR set, so
prometheus-client writes every worker's values to files that one scrape aggregates.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_observe.metrics.app import serve_metrics_at
from asgi_observe.metrics.middleware import MetricsMiddleware


async def work(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


app = serve_metrics_at(MetricsMiddleware(Starlette(routes=[Route("/work/{n}", work)])), "/metrics")
