"""RED metrics: the middleware, the metric families, the exposition app, measured()."""

from __future__ import annotations

from asgi_observe.metrics.app import metrics_app, serve_metrics_at
from asgi_observe.metrics.function import Measured, measured
from asgi_observe.metrics.middleware import (
    DURATION_BUCKETS,
    OVERFLOW,
    UNMATCHED_ROUTE,
    MetricsMiddleware,
)

__all__ = [
    "DURATION_BUCKETS",
    "OVERFLOW",
    "UNMATCHED_ROUTE",
    "Measured",
    "MetricsMiddleware",
    "measured",
    "metrics_app",
    "serve_metrics_at",
]
