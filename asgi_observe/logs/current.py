"""The request being handled, for log handlers that want more than its id.

RequestIdMiddleware sets it for the duration of a request, next to the request id. The
OTLP log handler reads the route from it: frameworks publish the matched route in the
scope once they have routed, so a record logged by the handler of a route carries it.
"""

from __future__ import annotations

from contextvars import ContextVar

from asgi_observe._core.record import RouteResolver, record_of
from asgi_observe._core.types import Scope

__all__ = ["current_request", "current_route"]

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
