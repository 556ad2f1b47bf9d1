"""asgi_observe: traces, request ids, RED metrics and error capture for any ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import TelemetryHandle, configure
from .health import Check, health_app
from .lifespan import LifespanMiddleware
from .metrics import MetricsMiddleware
from .metrics_app import metrics_app
from .observe import observe
from .request_id import RequestIdMiddleware, get_request_id
from .scrub import Scrubber, scrub_event
from .spans import traced
from .tracing import TracingMiddleware

if TYPE_CHECKING:
    from .sentry import SentryMiddleware

__version__ = "0.1.0"

__all__ = [
    "Check",
    "LifespanMiddleware",
    "MetricsMiddleware",
    "RequestIdMiddleware",
    "Scrubber",
    "SentryMiddleware",
    "TelemetryHandle",
    "TracingMiddleware",
    "__version__",
    "configure",
    "get_request_id",
    "health_app",
    "metrics_app",
    "observe",
    "scrub_event",
    "traced",
]


def __getattr__(name: str) -> Any:
    # sentry-sdk is an optional extra: its middleware loads on first use only.
    if name == "SentryMiddleware":
        from .sentry import SentryMiddleware

        return SentryMiddleware
    raise AttributeError(f"module 'asgi_observe' has no attribute {name!r}")
