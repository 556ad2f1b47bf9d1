"""A fully observed app with the viewer on, its tracer provider global, its own registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from otel_reset import fresh_globals
from prometheus_client import CollectorRegistry
from viewer_app import app as viewed_app

from asgi_observe import observe
from asgi_observe.viewer import Viewer

LOOPBACK_CLIENT = ("127.0.0.1", 50000)


@dataclass
class Stack:
    app: Any
    viewer: Viewer
    capture: Any
    registry: CollectorRegistry


@pytest.fixture
def stack(span_capture: Any) -> Iterator[Stack]:
    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        registry = CollectorRegistry()
        viewer = Viewer()
        app = observe(
            viewed_app,
            configure=False,
            install_propagator=False,
            registry=registry,
            metrics_path="/metrics",
            viewer=viewer,
            sentry=False,
        )
        yield Stack(app, viewer, span_capture, registry)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=stack.app, raise_app_exceptions=False, client=LOOPBACK_CLIENT
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c
