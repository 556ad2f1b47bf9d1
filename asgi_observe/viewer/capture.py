"""ViewerCaptureMiddleware: what the viewer learns from each request beyond its spans.

The request id and trace id of each sampled request (for the request id search), the
exceptions that failed it (as scrubbed events), and, for log records emitted while it
runs, the request's secret values so they can be redacted.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from asgi_observe._core.record import (
    RequestRecord,
    RouteResolver,
    ensure_record,
    observe_message,
    record_of,
)
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.errors.sentry_policy import ErrorPolicy
from asgi_observe.scrub.scrubber import Scrubber
from asgi_observe.scrub.values import MAX_BODY_BYTES

if TYPE_CHECKING:
    from asgi_observe.viewer.viewer import Viewer

__all__ = ["ViewerCaptureMiddleware", "current_request_secrets", "serving_viewer"]

_NO_SECRETS: frozenset[str] = frozenset()


class _Request:
    """The current request's raw inputs; its secret values are computed when first needed."""

    __slots__ = ("_body", "_body_size", "_scrubber", "_secrets", "scope")

    def __init__(self, scope: Scope, scrubber: Scrubber) -> None:
        self.scope = scope
        self._scrubber = scrubber
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._secrets: frozenset[str] | None = None

    def keep_body(self, chunk: Any) -> None:
        # References only, up to what the scrubber reads, as SentryMiddleware keeps them.
        if chunk and self._body_size < MAX_BODY_BYTES:
            if self._body is None:
                self._body = []
            self._body.append(chunk)
            self._body_size += len(chunk)
            self._secrets = None

    def secrets(self) -> frozenset[str]:
        if self._secrets is None:
            body = b"".join(self._body)[:MAX_BODY_BYTES] if self._body else b""
            scope = self.scope
            self._secrets = self._scrubber.request_secrets(
                scope.get("headers") or (), scope.get("query_string") or b"", body
            )
        return self._secrets


_VIEWER = object()  # set while the viewer serves its own page and API
_current: ContextVar[Any] = ContextVar("asgi_observe.viewer.request", default=None)


def current_request_secrets() -> frozenset[str] | None:
    """The secret values of the request served in this context; None inside the viewer."""
    current = _current.get()
    if current is None:
        return _NO_SECRETS
    if current is _VIEWER:
        return None
    secrets: frozenset[str] = current.secrets()
    return secrets


def serving_viewer() -> Any:
    """Mark this context as the viewer's own request; returns the token to reset."""
    return _current.set(_VIEWER)


def end_serving_viewer(token: Any) -> None:
    _current.reset(token)


class ViewerCaptureMiddleware:
    """Feed a `Viewer` from each HTTP request and websocket; lifespan passes through.

    Exceptions raised through it, and those a framework hook handed to the request
    record with a 5xx response, become scrubbed error events (HTTP 4xx exceptions and
    the like are expected, as for SentryMiddleware). The exception is re-raised unchanged.

    Args:
        app: the ASGI application to wrap.
        viewer: the viewer to feed.
        route_resolver: returns the route template from the scope after the app ran.

    Since 0.2.0.
    """

    def __init__(
        self, app: ASGIApp, *, viewer: Viewer, route_resolver: RouteResolver | None = None
    ) -> None:
        self.app = app
        self._viewer = viewer
        if route_resolver is None:
            from asgi_observe.frameworks.routes import resolve_route

            route_resolver = resolve_route
        self._resolve_route = route_resolver
        self._policy = ErrorPolicy(())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" and scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        record = record_of(scope)
        app_send = send
        if record is None:  # used alone: note the response here
            scope, record = ensure_record(scope)
            app_send = _observing_send(record, send)
        request = _Request(scope, self._viewer.scrubber)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.keep_body(message.get("body"))
            return message

        token = _current.set(request)
        try:
            await self.app(scope, receive_wrapper, app_send)
            exc = record.exception  # handed over by errors/hooks.py
            if isinstance(exc, Exception) and (record.status or 0) >= 500:
                self._capture(exc, scope, record, request)
        except Exception as exc:
            self._capture(exc, scope, record, request)
            raise
        finally:
            _current.reset(token)
            self._note(scope, record)

    def _capture(
        self, exc: Exception, scope: Scope, record: RequestRecord, request: _Request
    ) -> None:
        try:
            if self._policy.is_expected(exc):
                return
            route = record.resolve_route(scope, self._resolve_route)
            self._viewer.capture_exception(
                exc,
                scope=scope,
                span=record.span,
                request_id=record.request_id,
                route=route,
                secrets=request.secrets(),
            )
        except Exception:  # an observability fault must never replace the app's error
            pass

    def _note(self, scope: Scope, record: RequestRecord) -> None:
        span = record.span
        if span is None:
            return
        try:
            context = span.get_span_context()
            if context.trace_flags.sampled:
                self._viewer.traces.note_request(
                    format(context.trace_id, "032x"),
                    record.request_id,
                    (scope.get("headers") or (), scope.get("query_string") or b""),
                )
        except Exception:
            pass


def _observing_send(record: RequestRecord, send: Send) -> Send:
    async def send_wrapper(message: Message) -> None:
        observe_message(record, message)
        await send(message)

    return send_wrapper
