"""TracingMiddleware: one OpenTelemetry SERVER span per HTTP request or websocket."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode

from asgi_observe._core.http import known_methods as _validate_methods
from asgi_observe._core.http import path_set
from asgi_observe._core.record import RequestRecord, RouteResolver, ensure_record, observe_message
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.frameworks.routes import resolve_route
from asgi_observe.tracing.attributes import span_start_facts
from asgi_observe.tracing.lean_tracer import span_starter

__all__ = ["TracingMiddleware"]

_logger = logging.getLogger("asgi_observe.tracing")

# Documented in docs/tracing.md: what a span says when no response was completed.
CLIENT_DISCONNECTED = "client_disconnected"
INCOMPLETE_RESPONSE = "incomplete_response"

_INSTRUMENTATION_NAME = "asgi_observe"
# FastAPI >= 0.16x starts its own SERVER span whenever an SDK provider is set, unless
# this key is in the scope; a None value also turns its per-route hooks off.
_FASTAPI_TELEMETRY_KEY = "fastapi.telemetry"


class TracingMiddleware:
    """Start one SERVER span per request, continuing the inbound W3C trace.

    The span, with the inbound baggage, is the current OpenTelemetry context while the
    app runs, and ends at the final response event. Websocket connections get one span
    for the whole connection; lifespan and other scope types pass straight through.

    Args:
        app: the ASGI application to wrap.
        tracer_provider: the provider to use; the global one when None.
        propagator: the propagator that extracts the inbound context; the global one
            (looked up per request) when None.
        exclude_paths: paths that are never traced (exact match).
        exclude_prefixes: path prefixes that are never traced.
        known_methods: HTTP methods reported as is; others become ``_OTHER``.
        route_resolver: returns the route template from the scope after the app ran.

    Since 0.1.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        exclude_paths: Iterable[str] = (),
        exclude_prefixes: Iterable[str] = (),
        known_methods: Iterable[str] | None = None,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        # The SDK's provider gets the lean span (lean_tracer.py); any other, its own tracer.
        self._tracer = span_starter(_INSTRUMENTATION_NAME, tracer_provider)
        self._propagator = propagator
        # Imported here, not at module import: `opentelemetry.propagate` resolves
        # OTEL_PROPAGATORS when first imported, and configure() reports a bad value
        # with the variable's name first.
        from opentelemetry import propagate

        self._global_textmap = propagate.get_global_textmap
        self._exclude_paths = path_set("exclude_paths", exclude_paths)
        self._exclude_prefixes = tuple(sorted(path_set("exclude_prefixes", exclude_prefixes)))
        self._known_methods = _validate_methods(known_methods)
        self._resolve_route = route_resolver or resolve_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self._exclude_paths or (
            self._exclude_prefixes and path.startswith(self._exclude_prefixes)
        ):
            await self.app(scope, receive, send)
            return

        scope, record = ensure_record(scope)
        scope.setdefault(_FASTAPI_TELEMETRY_KEY, None)  # one server span per request
        try:
            parent_context, attributes, method = span_start_facts(
                scope, scope_type, self._propagator or self._global_textmap(), self._known_methods
            )
            span = self._tracer.start_span(
                method,
                context=parent_context,
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=record.start_ns,
            )
        except Exception:  # a broken sampler or processor must not fail the request
            _report_fault("start")
            await self.app(scope, receive, send)
            return
        record.span = span
        recording = span.is_recording()
        token = otel_context.attach(trace.set_span_in_context(span, parent_context))
        span_open = True
        completed = False
        raised = False

        def end_span() -> None:
            nonlocal span_open
            span_open = False
            try:
                finish_span()
            except Exception:  # e.g. a span processor that raises in on_end
                _report_fault("end")

        def finish_span() -> None:
            if not recording:  # an unsampled span drops attributes: build none
                span.end(end_time=record.stamp_end())
                return
            route = record.resolve_route(scope, self._resolve_route)
            if route is not None:
                span.set_attribute("http.route", route)
                if method != "HTTP":
                    span.update_name(f"{method} {route}")
            status = record.status
            exc = record.exception
            if status is None and isinstance(exc, Exception) and scope_type == "http":
                status = 500  # what observe()'s request-id layer or the server answers
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            # An exception raised through us failed the response; one a framework
            # handled itself (see error_hooks.py) matters only when it made a 5xx.
            if exc is not None and (raised or status is None or status >= 500):
                _record_exception(span, exc)
            elif status is not None and status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=record.stamp_end())

        async def send_wrapper(message: Message) -> None:
            nonlocal completed
            if not observe_message(record, message):
                await send(message)
                return
            completed = True
            # A 5xx span stays open until the app is done, so the exception that
            # caused it (re-raised, or handed over by a framework hook) is recorded;
            # its end time is the response's all the same.
            if not span_open or (record.status or 0) >= 500:
                await send(message)
                return
            try:
                await send(message)
            finally:
                end_span()

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] in ("http.disconnect", "websocket.disconnect"):
                record.client_disconnected = True
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            record.exception = exc
            raised = True
            raise
        else:
            if span_open and not completed and scope_type == "http":
                _record_incomplete(span, record)
        finally:
            if span_open:
                end_span()
            otel_context.detach(token)


_fault_reported = False


def _report_fault(when: str) -> None:
    # Once with the traceback, then quietly: a broken exporter setup would otherwise
    # log one traceback per request.
    global _fault_reported
    if _fault_reported:
        _logger.debug("asgi_observe could not %s a request span", when, exc_info=True)
        return
    _fault_reported = True
    _logger.exception(
        "asgi_observe could not %s a request span; requests are served untraced "
        "while this lasts (further failures are logged at DEBUG)",
        when,
    )


def _record_exception(span: trace.Span, exc: BaseException) -> None:
    exc_type = type(exc)
    module = exc_type.__module__
    qualname = exc_type.__qualname__
    span.set_attribute("error.type", qualname if module == "builtins" else f"{module}.{qualname}")
    span.record_exception(exc, escaped=True)
    span.set_status(Status(StatusCode.ERROR, f"{qualname}: {exc}"[:1024]))


def _record_incomplete(span: trace.Span, record: RequestRecord) -> None:
    error_type = CLIENT_DISCONNECTED if record.client_disconnected else INCOMPLETE_RESPONSE
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
