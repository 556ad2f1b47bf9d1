"""The request being handled, for log handlers that want more than its id.

RequestIdMiddleware sets it for the duration of a request, next to the request id. The
OTLP log handler reads the route from it: frameworks publish the matched route in the
scope once they have routed, so a record logged by the handler of a route carries it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from asgi_observe._core.record import RouteResolver, record_of
from asgi_observe._core.types import Scope

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["current_request", "current_route", "current_span"]

# (scope, the route resolver of the layer that set it)
current_request: ContextVar[tuple[Scope, RouteResolver] | None] = ContextVar(
    "asgi_observe.current_request", default=None
)


def current_route() -> str | None:
    """The route template of the current request, once the framework has routed it."""
    current = current_request.get()
    if current is None:
        return None
    scope, resolver = current
    record = record_of(scope)
    if record is not None and record.route_resolved:
        return record.route
    try:
        # Not cached on the record: before routing it would pin None for the request.
        return resolver(scope)
    except Exception:  # a user resolver must never break logging
        return None


def current_span() -> Span | None:
    """The server span of the current request, also where its context is not current.

    Layers outside the tracing layer (the request-id layer's error line, say) log within
    the request but outside its span's context.
    """
    current = current_request.get()
    record = None if current is None else record_of(current[0])
    return None if record is None else record.span
