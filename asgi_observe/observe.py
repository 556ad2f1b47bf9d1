"""observe(): every asgi_observe layer around an app, in the right order."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace

from ._types import ASGIApp
from .propagation import install_global_propagator
from .tracing import TracingMiddleware


def observe(
    app: ASGIApp,
    *,
    install_propagator: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
    exclude_paths: Iterable[str] = (),
    exclude_prefixes: Iterable[str] = (),
) -> ASGIApp:
    """Wrap `app` in every asgi_observe layer, in the right order.

    Since 0.1.0.
    """
    if install_propagator:
        install_global_propagator()
    return TracingMiddleware(
        app,
        tracer_provider=tracer_provider,
        exclude_paths=exclude_paths,
        exclude_prefixes=exclude_prefixes,
    )
