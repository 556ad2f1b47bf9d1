"""SentryMiddleware: one scrubbed Sentry event per unhandled exception, linked to the trace."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from ._request import RouteResolver, ensure_record, observe_message
from ._sentry_event import (
    SCRUBBER_HINT_KEY,
    RequestFacts,
    http_status,
    is_automatic,
    request_data,
    scrub_last,
    set_trace_context,
)
from ._types import ASGIApp, Message, Receive, Scope, Send
from .scrub import DEFAULT_SCRUBBER as _DEFAULT_SCRUBBER
from .scrub import SECRETS_HINT_KEY, Scrubber

__all__ = ["MECHANISM", "SentryMiddleware", "sentry_active"]

MECHANISM = "asgi_observe"
"""The ``mechanism.type`` of the events SentryMiddleware captures."""

_SCOPE_TYPES = frozenset({"http", "websocket"})
_MAX_CHAIN = 16

# Set on an exception once an event for it went through a request's processor (ours or
# a framework integration's), so the middleware does not capture it a second time.
_REPORTED_MARK = "_asgi_observe_reported"


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

    Works with the client set up by ``sentry_sdk.init`` (nothing happens while none is
    active). Each HTTP request and websocket runs in its own fork of Sentry's isolation
    scope, so breadcrumbs and scope data never mix between concurrent requests. Events
    captured while the request runs (ours, and those of sentry-sdk's Starlette, Litestar
    or Quart integrations) get the request, the route template, the request id tag and
    the OpenTelemetry trace context, and are scrubbed last, after any ``before_send`` of
    the user. Lifespan scopes pass straight through.

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
        self._ignored = _exception_types(ignore_exceptions)
        if not isinstance(capture_5xx_responses, bool):
            raise TypeError("capture_5xx_responses must be a bool")
        self._capture_5xx = capture_5xx_responses
        if scrubber is not None and not isinstance(scrubber, Scrubber):
            raise TypeError("scrubber must be an asgi_observe.scrub.Scrubber")
        self._scrubber = scrubber or _DEFAULT_SCRUBBER
        if route_resolver is not None and not callable(route_resolver):
            raise TypeError("route_resolver must be callable")
        self._resolve_route = route_resolver or _default_resolver()
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
        scope, record = ensure_record(scope)
        facts = RequestFacts(scope, record)
        isolation = sdk.get_isolation_scope().fork()
        isolation.add_event_processor(_Processor(self, facts))

        async def receive_wrapper() -> Message:
            # Only references are kept; bodies are parsed only if an event is sent.
            message = await receive()
            if message["type"] == "http.request":
                facts.keep_body(message.get("body"))
            return message

        async def send_wrapper(message: Message) -> None:
            observe_message(record, message)
            await send(message)

        token = sdk.enter(isolation)
        try:
            await self.app(scope, receive_wrapper, send_wrapper if self._capture_5xx else send)
            status = record.status
            if self._capture_5xx and status is not None and status >= 500 and not facts.reported:
                self._report_status(facts, status)
        except Exception as exc:
            self._report(facts, exc)
            raise
        finally:
            sdk.leave(token)

    def is_expected(self, exc: BaseException) -> bool:
        """True for exceptions that are never reported: ignored types and HTTP 4xx."""
        if isinstance(exc, self._ignored):
            return True
        status = http_status(exc)
        return status is not None and status < 500

    def _report(self, facts: RequestFacts, exc: Exception) -> None:
        try:
            if self.is_expected(exc) or _already_reported(exc):
                return
            facts.record.resolve_route(facts.scope, self._resolve_route)
            sdk = self._sdk
            event, hint = sdk.event_from_exception(
                exc,
                client_options=sdk.get_client().options,
                mechanism={"type": MECHANISM, "handled": False},
            )
            sdk.capture_event(event, hint=hint)
        except Exception:  # an observability fault must never replace the app's error
            pass

    def _report_status(self, facts: RequestFacts, status: int) -> None:
        try:
            route = facts.record.resolve_route(facts.scope, self._resolve_route)
            method = facts.scope.get("method", "GET")
            target = route or facts.scope.get("path", "")
            event = {
                "level": "error",
                "message": f"HTTP {status} response to {method} {target}",
                "fingerprint": [MECHANISM, "5xx", method, route or "", str(status)],
            }
            self._sdk.capture_event(event)
        except Exception:
            pass


class _Processor:
    """The event processor of one request: runs only for events captured inside it."""

    __slots__ = ("facts", "middleware")

    def __init__(self, middleware: SentryMiddleware, facts: RequestFacts) -> None:
        self.middleware = middleware
        self.facts = facts

    def __call__(self, event: Any, hint: Any) -> Any:
        middleware, facts = self.middleware, self.facts
        if not isinstance(hint, dict):
            return event
        # Scrubbing is arranged first: whatever fails below, the event leaves scrubbed.
        scrubber = middleware._scrubber
        hint[SCRUBBER_HINT_KEY] = scrubber
        scrub_last(middleware._sdk.get_client())
        hint[SECRETS_HINT_KEY] = facts.secrets(scrubber)
        exc_info = hint.get("exc_info")
        exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
        if isinstance(exc, BaseException):
            if is_automatic(event) and middleware.is_expected(exc):
                return None
            _mark_reported(exc)
            facts.reported = True
        if isinstance(event, dict) and event.get("type") != "transaction":
            with contextlib.suppress(Exception):  # enrichment is best effort
                self._enrich(event, scrubber)
        return event

    def _enrich(self, event: dict[str, Any], scrubber: Scrubber) -> None:
        facts, resolver = self.facts, self.middleware._resolve_route
        record, scope = facts.record, facts.scope
        # Before the app returned, the route is read without caching it in the record,
        # so the layers that resolve it at the final response event still do.
        route = record.route if record.route_resolved else resolver(scope)
        tags = event.get("tags")
        if not isinstance(tags, dict):
            tags = event["tags"] = {}
        if record.request_id is not None:
            tags["request_id"] = record.request_id
        if route:
            tags["http.route"] = route
            if not event.get("transaction"):
                event["transaction"] = route
                event["transaction_info"] = {"source": "route"}
        request = event.get("request")
        if not isinstance(request, dict):
            request = event["request"] = {}
        for key, value in request_data(scope, scrubber).items():
            request.setdefault(key, value)
        set_trace_context(event, record.span)


def _already_reported(exc: BaseException) -> bool:
    # The exception itself, or one it was raised from or while handling (a framework
    # that captured, then wrapped it), already gave an event.
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return False
        if getattr(seen, _REPORTED_MARK, False) is True:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _mark_reported(exc: BaseException) -> None:
    with contextlib.suppress(Exception):  # an exception class that refuses attributes
        setattr(exc, _REPORTED_MARK, True)


def _exception_types(types: Iterable[type[BaseException]]) -> tuple[type[BaseException], ...]:
    if isinstance(types, type):
        raise TypeError("ignore_exceptions must be an iterable of exception types")
    result = tuple(types)
    for item in result:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"ignore_exceptions entries must be exception types: {item!r}")
    return result


def _default_resolver() -> RouteResolver:
    try:
        from .routes import resolve_route
    except ImportError:  # pragma: no cover - routes.py ships with the package
        return lambda scope: None
    return resolve_route


class _Sdk:
    """The few sentry-sdk entry points the middleware uses, looked up once."""

    _loaded: _Sdk | None = None

    def __init__(self) -> None:
        try:
            import sentry_sdk
            import sentry_sdk.scope
            from sentry_sdk.utils import event_from_exception
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "SentryMiddleware needs sentry-sdk: pip install 'asgi-observe[sentry]'"
            ) from exc
        # Typed loosely on purpose: sentry-sdk's TypedDicts change between versions.
        self.get_client: Any = sentry_sdk.get_client
        self.get_isolation_scope: Any = sentry_sdk.get_isolation_scope
        self.capture_event: Any = sentry_sdk.capture_event
        self.event_from_exception: Any = event_from_exception
        self._set_isolation_scope: Any = sentry_sdk.scope.Scope.set_isolation_scope
        # sentry-sdk's own isolation_scope() forks the current scope too and runs as a
        # generator context manager (~5 us); setting the fork on its ContextVar with a
        # token is all isolation needs (~2 us). Without that variable, the public setter.
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
