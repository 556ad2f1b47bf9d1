"""asgi_observe: traces, request ids, RED metrics and error capture for any ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgi_observe.logs.request_id import RequestIdMiddleware, get_request_id
from asgi_observe.metrics.function import measured
from asgi_observe.metrics.middleware import MetricsMiddleware

# Through the old module path on purpose: importing a submodule binds its name on the
# package, so `asgi_observe.metrics_app` must be loaded before the function takes the name.
from asgi_observe.metrics_app import metrics_app
from asgi_observe.observe import observe
from asgi_observe.scrub import Scrubber, scrub_event
from asgi_observe.setup.config import TelemetryHandle, configure
from asgi_observe.setup.health import Check, health_app
from asgi_observe.setup.lifespan import LifespanMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware
from asgi_observe.tracing.spans import traced

if TYPE_CHECKING:
    from asgi_observe.errors.sentry import SentryMiddleware

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
    "measured",
    "metrics_app",
    "observe",
    "scrub_event",
    "traced",
]


def __getattr__(name: str) -> Any:
    # sentry-sdk is an optional extra: its middleware loads on first use only.
    if name == "SentryMiddleware":
        from asgi_observe.errors.sentry import SentryMiddleware

        return SentryMiddleware
    raise AttributeError(f"module 'asgi_observe' has no attribute {name!r}")
