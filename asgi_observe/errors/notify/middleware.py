"""NotifyMiddleware: a chat message for each unhandled exception, off the request path."""

from __future__ import annotations

from asgi_observe._core.record import (
    RequestRecord,
    RouteResolver,
    ensure_record,
    observe_message,
    record_of,
)
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.errors.notify.context import RequestContext, _current
from asgi_observe.errors.notify.mcp_tools import mcp_failure
from asgi_observe.errors.notify.notifier import Notifier

__all__ = ["NotifyMiddleware"]

_SCOPE_TYPES = frozenset({"http", "websocket"})


class NotifyMiddleware:
    """Notify each unhandled exception of an HTTP request or websocket, then re-raise it.

    Also notifies the exception a Litestar or Quart app handed to the request record
    (errors/hooks.py) when it answered 5xx, and, when the notifier's events include
    ``"5xx"``, a 5xx response without any exception, and with ``"mcp"`` an ``isError``
    tool result or JSON-RPC error answer the MCP layer recorded (errors/notify/mcp_tools.py;
    a tool that raises notifies as an exception). Messages are built and queued only
    when deduplication lets them through, and sent by background threads: a slow or dead
    destination costs the request nothing. Lifespan and other scopes pass straight through.

    Args:
        app: the ASGI application to wrap.
        notifier: the `Notifier` that deduplicates and sends.
        route_resolver: returns the route template from the scope after the app ran.

    Since 0.1.0.
    """

    def __init__(
        self, app: ASGIApp, *, notifier: Notifier, route_resolver: RouteResolver | None = None
    ) -> None:
        self.app = app
        if not isinstance(notifier, Notifier):
            raise TypeError("notifier must be an asgi_observe Notifier")
        if route_resolver is not None and not callable(route_resolver):
            raise TypeError("route_resolver must be callable")
        if route_resolver is None:
            from asgi_observe.frameworks.routes import resolve_route

            route_resolver = resolve_route
        self._notifier = notifier
        self._resolve_route = route_resolver
        self._exceptions = notifier.wants("exceptions")
        self._statuses = notifier.wants("5xx")
        self._mcp = notifier.wants("mcp")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _SCOPE_TYPES:
            await self.app(scope, receive, send)
            return
        record = record_of(scope)
        app_send = send
        if record is None:  # used alone: note the status ourselves
            scope, record = ensure_record(scope)
            app_send = _observing_send(record, send)
        request = RequestContext(scope, record, self._resolve_route)
        token = _current.set(request)
        try:
            await self.app(scope, receive, app_send)
        except Exception as exc:
            if self._exceptions:
                # An exception that escapes the app becomes a 500 at the server.
                status = record.status if record.response_started else 500
                self._notifier.notify_exception(exc, request=request, status=status)
            raise
        else:
            if self._mcp and not request.notified:  # a raising tool notified already
                mcp_failure(self._notifier, record.mcp)
            status = record.status
            if status is not None and status >= 500 and not request.notified:
                handed_over = record.exception  # by a framework error hook
                if self._exceptions and isinstance(handed_over, Exception):
                    self._notifier.notify_exception(handed_over, request=request, status=status)
                elif self._statuses:
                    self._notifier.notify_status(request, status)
        finally:
            _current.reset(token)


def _observing_send(record: RequestRecord, send: Send) -> Send:
    async def send_wrapper(message: Message) -> None:
        observe_message(record, message)
        await send(message)

    return send_wrapper
