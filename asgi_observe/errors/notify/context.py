"""The request a notification is about: found in a ContextVar while the request runs."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace

from asgi_observe._core.record import RequestRecord, RouteResolver
from asgi_observe._core.span_ids import span_ids
from asgi_observe._core.types import Scope

__all__ = ["RequestContext", "RequestFacts", "current_request"]


@dataclass(frozen=True)
class RequestFacts:
    """What a message says about the request, and what the scrubber needs from it."""

    method: str | None = None
    route: str | None = None
    status: int | None = None
    request_id: str | None = None
    trace_id: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    query_string: bytes = b""


class RequestContext:
    """One request seen by NotifyMiddleware; `notified` once a message went out for it."""

    __slots__ = ("notified", "record", "resolve_route", "scope")

    def __init__(self, scope: Scope, record: RequestRecord, resolve_route: RouteResolver) -> None:
        self.scope = scope
        self.record = record
        self.resolve_route = resolve_route
        self.notified = False

    def route_key(self) -> str | None:
        """Method and route template, the route part of a fingerprint."""
        try:
            record = self.record
            route = record.route if record.route_resolved else self.resolve_route(self.scope)
        except Exception:
            route = None
        method = self.scope.get("method")
        return " ".join(part for part in (method, route) if part) or None

    def facts(self, status: int | None = None) -> RequestFacts:
        scope, record = self.scope, self.record
        # While the app still runs the route is read without caching it in the record, so
        # the layers that resolve it at the final response event still do.
        try:
            route = record.route if record.route_resolved else self.resolve_route(scope)
        except Exception:
            route = None
        span = record.span if record.span is not None else trace.get_current_span()
        headers = tuple(
            (bytes(name), bytes(value))
            for name, value in scope.get("headers") or ()
            if isinstance(name, (bytes, bytearray)) and isinstance(value, (bytes, bytearray))
        )
        query = scope.get("query_string")
        if status is None:
            status = record.status
        if status == 101:  # an accepted websocket: no status to speak of
            status = None
        return RequestFacts(
            method=scope.get("method") or _websocket(scope),
            route=route,
            status=status,
            request_id=record.request_id,
            trace_id=span_ids(span)[0],
            headers=headers,
            query_string=bytes(query) if isinstance(query, (bytes, bytearray)) else b"",
        )


def _websocket(scope: Scope) -> str | None:
    return "WEBSOCKET" if scope.get("type") == "websocket" else None


_current: ContextVar[RequestContext | None] = ContextVar(
    "asgi_observe.notify.request", default=None
)


def current_request() -> RequestContext | None:
    """The request NotifyMiddleware is serving in this context, if any."""
    return _current.get()
