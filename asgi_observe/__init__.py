"""asgi_observe: traces, request ids, RED metrics and error capture for any ASGI app."""

from __future__ import annotations

from .observe import observe
from .tracing import TracingMiddleware

__version__ = "0.1.0"

__all__ = ["TracingMiddleware", "__version__", "observe"]
