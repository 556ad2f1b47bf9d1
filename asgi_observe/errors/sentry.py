"""SentryMiddleware: one scrubbed Sentry event per unhandled exception, linked to the trace."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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
from asgi_observe.errors.sentry_policy import (
    ErrorPolicy,
    already_reported,
    current_request,
    scrub_last,
)
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
    while none is active). Each HTTP request and websocket runs in its own forks of
    Sentry's current and isolation scopes, so breadcrumbs and scope data never mix
    between requests, one after another or concurrent. Events captured while the
    request runs (ours, and those of sentry-sdk's Starlette, Litestar or Quart
    integrations) get the request, the route template, the request id tag and the
    OpenTelemetry trace context, and are scrubbed last, after any ``before_send`` of the
    user; the capture runs in a worker thread, off the event loop. Lifespan and other
    scope types pass straight through.

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
        client = sdk.get_client()
        if not client.is_active():
            await self.app(scope, receive, send)
            return
        scrub_last(client)  # once per client: logs need it before any event is sent
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

        tokens = sdk.enter(isolation)
        request_token = current_request.set(events)
        try:
            await self.app(scope, receive_wrapper, app_send)
            status = record.status
            if status is not None and status >= 500 and not events.reported:
                if isinstance(record.exception, Exception):  # handed over by errors/hooks.py
                    await _off_loop(self._report, events, record.exception)
                elif self._capture_5xx:
                    await _off_loop(self._report_status, events, status)
        except Exception as exc:
            await _off_loop(self._report, events, exc)
            raise
        finally:
            current_request.reset(request_token)
            sdk.leave(tokens)

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


_MAX_CAPTURE_THREADS = 2
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


async def _off_loop(report: Callable[[RequestEvents, Any], None], *args: Any) -> None:
    """Run a capture (event processors, sentry-sdk's serializer, our scrubber) in a
    worker thread, in this request's context, so a heavy event never stalls the event
    loop (issue 13). Without an asyncio loop (trio) it runs here; the scrubber's time
    budget bounds it."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        report(*args)
        return
    context = contextvars.copy_context()
    try:
        future = loop.run_in_executor(_capture_executor(), context.run, report, *args)
    except RuntimeError:  # the executor is shut down (interpreter exit): report here
        report(*args)
        return
    await future


def _capture_executor() -> ThreadPoolExecutor:
    # Our own few threads: a flood of heavy events queues here, never in the loop's
    # default executor that the app's own blocking calls use.
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    _MAX_CAPTURE_THREADS, thread_name_prefix="asgi_observe-sentry"
                )
    return _executor


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
        self.get_current_scope: Any = sentry_sdk.get_current_scope
        self.capture_event: Any = sentry_sdk.capture_event
        self.event_from_exception: Any = event_from_exception
        self._set_isolation_scope: Any = sentry_sdk.scope.Scope.set_isolation_scope
        self._set_current_scope: Any = sentry_sdk.scope.Scope.set_current_scope
        # What sentry_sdk.isolation_scope() does, as its own ASGI integration uses it: fork
        # both the current and the isolation scope, so `get_current_scope().set_user()` in
        # one request never reaches another's events (issue 13). Without its generator
        # context manager: the forks are set on the two ContextVars, with tokens. Without
        # those variables (a future sentry-sdk), the public setters.
        isolation = getattr(sentry_sdk.scope, "_isolation_scope", None)
        current = getattr(sentry_sdk.scope, "_current_scope", None)
        both = isinstance(isolation, ContextVar) and isinstance(current, ContextVar)
        self._variables: tuple[ContextVar[Any], ContextVar[Any]] | None = (
            (current, isolation) if both else None  # type: ignore[assignment]
        )

    @classmethod
    def load(cls) -> _Sdk:
        if cls._loaded is None:
            cls._loaded = cls()
        return cls._loaded

    def enter(self, isolation: Any) -> Any:
        current = self.get_current_scope().fork()
        _forget_outside_data(isolation)
        _forget_outside_data(current)
        if self._variables is not None:
            current_var, isolation_var = self._variables
            return current_var.set(current), isolation_var.set(isolation)
        previous = self.get_current_scope(), self.get_isolation_scope()
        self._set_current_scope(current)
        self._set_isolation_scope(isolation)
        return previous

    def leave(self, tokens: Any) -> None:
        if self._variables is not None:
            current_var, isolation_var = self._variables
            isolation_var.reset(tokens[1])
            current_var.reset(tokens[0])
        else:
            self._set_isolation_scope(tokens[1])
            self._set_current_scope(tokens[0])


def _forget_outside_data(scope: Any) -> None:
    # What the scope this request forked from holds was recorded outside this request
    # (in the lifespan, or by an integration running with no request's scope): a
    # transaction name and breadcrumbs are not this request's. sentry-sdk's own ASGI
    # middleware clears the breadcrumbs too. Tags, user and contexts set for the whole
    # process stay.
    scope.clear_breadcrumbs()
    if getattr(scope, "_transaction", None) is not None:
        scope._transaction = None
        scope._transaction_info = {}
