"""The old path of `asgi_observe.metrics.app`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.metrics.app import (
    metrics_app,
    serve_metrics_at,
)

__all__ = [
    "metrics_app",
    "serve_metrics_at",
]
