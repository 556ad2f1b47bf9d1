"""Tracing: the SERVER span per request, its start attributes, and `traced()`."""

from __future__ import annotations

from asgi_observe.tracing.middleware import TracingMiddleware
from asgi_observe.tracing.spans import Traced, traced

__all__ = ["Traced", "TracingMiddleware", "traced"]
