"""SentryMiddleware: one scrubbed Sentry event per unhandled exception, linked to the trace."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from asgi_observe._core.record import (
    RequestRecord,
    RouteResolver,
    ensure_record,
    observe_message,
    record_of,
)
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.errors.sentry_event import RequestEvents
from asgi_observe.errors.sentry_policy import ErrorPolicy, already_reported
from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER, Scrubber

__all__ = ["MECHANISM", "SentryMiddleware", "sentry_active"]

MECHANISM = "asgi_observe"
"""The ``mechanism.type`` of the events SentryMiddleware captures."""

_SCOPE_TYPES = frozenset({"http", "websocket"})


def sentry_active() -> bool:
    """True when sentry-sdk is installed and a client with a DSN is active.

    Cheap: sentry-sdk is only imported when something already imported it, since a
    client can only be active after ``sentry_sdk.init``. Since 0.1.0.
    """
    if "sentry_sdk" not in sys.modules:
        return False
    try:
        import sentry_sdk

        client = sentry_sdk.get_client()
        return bool(client.is_active() and client.dsn)
    except Exception:
        return False


class SentryMiddleware:
    """Report each unhandled exception to Sentry once, then re-raise it unchanged.

    Works with the client set up by ``sentry_sdk.init`` (requests pass straight through
    while none is active). Each HTTP request and websocket runs in its own fork of
    Sentry's isolation scope, so breadcrumbs and scope data never mix between concurrent
    requests. Events captured while the request runs (ours, and those of sentry-sdk's
    Starlette, Litestar or Quart integrations) get the request, the route template, the
    request id tag and the OpenTelemetry trace context, and are scrubbed last, after any
    ``before_send`` of the user. Lifespan and other scope types pass straight through.

    Args:
        app: the ASGI application to wrap.
        ignore_exceptions: exception types that are never reported (subclasses included).
        capture_5xx_responses: also report a 5xx response when no exception was reported.
        scrubber: what to redact; the default `Scrubber()` when None.
        route_resolver: returns the route template from the scope after the app ran.

    Since 0.1.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        ignore_exceptions: Iterable[type[BaseException]] = (),
        capture_5xx_responses: bool = False,
        scrubber: Scrubber | None = None,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self._policy = ErrorPolicy(ignore_exceptions)
        if not isinstance(capture_5xx_responses, bool):
            raise TypeError("capture_5xx_responses must be a bool")
        self._capture_5xx = capture_5xx_responses
        if scrubber is not None and not isinstance(scrubber, Scrubber):
            raise TypeError("scrubber must be an asgi_observe.scrub.Scrubber")
        self._scrubber = scrubber or DEFAULT_SCRUBBER
        if route_resolver is not None and not callable(route_resolver):
            raise TypeError("route_resolver must be callable")
        if route_resolver is None:
            from asgi_observe.frameworks.routes import resolve_route

            route_resolver = resolve_route
        self._resolve_route = route_resolver
        self._sdk = _Sdk.load()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _SCOPE_TYPES:
            await self.app(scope, receive, send)
            return
        sdk = self._sdk
        if not sdk.get_client().is_active():
            await self.app(scope, receive, send)
            return
        __traceback_hide__ = True  # sentry-sdk leaves this frame out of events
        record = record_of(scope)
        # The status decides whether a framework-handled exception is reported. An outer
        # asgi_observe layer that made the record notes it from every message before
        # passing it on, so this layer wraps `send` only when it runs alone.
        app_send = send
        if record is None:
            scope, record = ensure_record(scope)
            app_send = _observing_send(record, send)
        events = RequestEvents(
            scope, record, self._scrubber, self._policy, self._resolve_route, sdk.get_client
        )
        isolation = sdk.get_isolation_scope().fork()
        isolation.add_event_processor(events)

        async def receive_wrapper() -> Message:
            # Only references are kept; a body is parsed only if an event is sent.
            message = await receive()
            if message["type"] == "http.request":
                events.keep_body(message.get("body"))
            return message

        token = sdk.enter(isolation)
        try:
            await self.app(scope, receive_wrapper, app_send)
            status = record.status
            if status is not None and status >= 500 and not events.reported:
                if isinstance(record.exception, Exception):  # handed over by error_hooks.py
                    self._report(events, record.exception)
                elif self._capture_5xx:
                    self._report_status(events, status)
        except Exception as exc:
            self._report(events, exc)
            raise
        finally:
            sdk.leave(token)

    def _report(self, events: RequestEvents, exc: Exception) -> None:
        try:
            if self._policy.is_expected(exc) or already_reported(exc):
                return
            events.record.resolve_route(events.scope, self._resolve_route)
            sdk = self._sdk
            event, hint = sdk.event_from_exception(
                exc,
                client_options=sdk.get_client().options,
                mechanism={"type": MECHANISM, "handled": False},
            )
            sdk.capture_event(event, hint=hint)
        except Exception:  # an observability fault must never replace the app's error
            pass

    def _report_status(self, events: RequestEvents, status: int) -> None:
        try:
            route = events.record.resolve_route(events.scope, self._resolve_route)
            method = events.scope.get("method", "GET")
            target = route or events.scope.get("path", "")
            event = {
                "level": "error",
                "message": f"HTTP {status} response to {method} {target}",
                "fingerprint": [MECHANISM, "5xx", method, route or "", str(status)],
            }
            self._sdk.capture_event(event)
        except Exception:
            pass


def _observing_send(record: RequestRecord, send: Send) -> Send:
    async def send_wrapper(message: Message) -> None:
        observe_message(record, message)
        await send(message)

    return send_wrapper


class _Sdk:
    """The few sentry-sdk entry points the middleware uses, imported once, on first use."""

    _loaded: _Sdk | None = None

    def __init__(self) -> None:
        try:
            import sentry_sdk
            import sentry_sdk.scope
            from sentry_sdk.utils import event_from_exception
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("SentryMiddleware needs sentry-sdk: pip install sentry-sdk") from exc
        # Typed loosely on purpose: sentry-sdk's TypedDicts change between versions.
        self.get_client: Any = sentry_sdk.get_client
        self.get_isolation_scope: Any = sentry_sdk.get_isolation_scope
        self.capture_event: Any = sentry_sdk.capture_event
        self.event_from_exception: Any = event_from_exception
        self._set_isolation_scope: Any = sentry_sdk.scope.Scope.set_isolation_scope
        # sentry_sdk.isolation_scope() also forks the current scope and runs as a generator
        # context manager (~5 us a request); setting the forked isolation scope on its
        # ContextVar, with a token, is all isolation needs (~2 us). Without that variable
        # (a future sentry-sdk), the public setter.
        variable = getattr(sentry_sdk.scope, "_isolation_scope", None)
        self._variable: ContextVar[Any] | None = (
            variable if isinstance(variable, ContextVar) else None
        )

    @classmethod
    def load(cls) -> _Sdk:
        if cls._loaded is None:
            cls._loaded = cls()
        return cls._loaded

    def enter(self, isolation: Any) -> Any:
        if self._variable is not None:
            return self._variable.set(isolation)
        previous = self.get_isolation_scope()
        self._set_isolation_scope(isolation)
        return previous

    def leave(self, token: Any) -> None:
        if self._variable is not None:
            self._variable.reset(token)
        else:
            self._set_isolation_scope(token)
