"""TracingMiddleware: one OpenTelemetry SERVER span per HTTP request or websocket."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode

from asgi_observe._core.http import known_methods as _validate_methods
from asgi_observe._core.http import path_set
from asgi_observe._core.logsafe import log_safely
from asgi_observe._core.record import RequestRecord, RouteResolver, ensure_record, observe_message
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.frameworks.routes import resolve_route
from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER
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
        body_parent_paths: paths whose requests may carry their trace parent in the body
            (MCP's ``params._meta``, issue 15): without a ``traceparent`` header the span
            starts, backdated to the request's start, once asgi_observe.mcp has read the
            first message, as a child of its ``_meta`` context, and is not made current
            (docs/frameworks/mcp.md).

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
        body_parent_paths: Iterable[str] = (),
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
        self._body_parent_paths = path_set("body_parent_paths", body_parent_paths)

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
        propagator = self._propagator or self._global_textmap()
        try:
            parent_context, attributes, method = span_start_facts(
                scope, scope_type, propagator, self._known_methods
            )
            deferred = (
                path in self._body_parent_paths
                and scope_type == "http"
                and not trace.get_current_span(parent_context).get_span_context().is_valid
            )
            span: trace.Span | None = None
            if not deferred:
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
        token = None
        recording = False
        mcp_at_start: dict[str, str] = {}  # MCP attributes a deferred span started with
        mcp_key_at_start: tuple[str | None, ...] | None = None
        if span is not None:
            record.span = span
            recording = span.is_recording()
            token = otel_context.attach(trace.set_span_in_context(span, parent_context))

        def started(carrier: dict[str, str] | None = None) -> trace.Span:
            # A deferred span starts here: from the body's trace context when the MCP
            # layer found one, else at the response or the end, from the headers'.
            nonlocal span, recording, mcp_at_start, mcp_key_at_start
            if span is not None:
                return span
            record.span_parent_hook = None
            try:
                context = parent_context
                if carrier:
                    context = propagator.extract(carrier, context=parent_context)
                start_attributes = attributes
                if record.mcp is not None:
                    # The body is read by now: its MCP facts go in at start, one
                    # validation pass instead of a second at the end, and the sampler
                    # sees them.
                    mcp_at_start = record.mcp.span_attributes()
                    mcp_key_at_start = record.mcp.attribute_key()
                    start_attributes = {**attributes, **mcp_at_start}
                span = self._tracer.start_span(
                    method,
                    context=context,
                    kind=SpanKind.SERVER,
                    attributes=start_attributes,
                    start_time=record.start_ns,
                )
            except Exception:
                _report_fault("start")
                span = trace.INVALID_SPAN
            record.span = span
            recording = span.is_recording()
            if record.mcp is not None:
                record.mcp.server_span = span
            return span

        if span is None:
            record.span_parent_hook = started
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
            span = started()
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
            # handled itself (see errors/hooks.py) matters only when it made a 5xx.
            if exc is not None and (raised or status is None or status >= 500):
                _record_exception(span, exc, scope)
            elif status is not None and status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            elif record.mcp is not None and record.mcp.error_type:
                # An MCP tool error or JSON-RPC error hides behind an HTTP 200 (issue 15).
                span.set_attribute("error.type", record.mcp.error_type)
                span.set_status(Status(StatusCode.ERROR))
            if record.mcp is not None and record.mcp.attribute_key() != mcp_key_at_start:
                late = record.mcp.span_attributes()
                if late != mcp_at_start:
                    if mcp_at_start:  # only what the answer added or changed (a session id)
                        late = {k: v for k, v in late.items() if mcp_at_start.get(k) != v}
                    span.set_attributes(late)
            span.end(end_time=record.stamp_end())

        async def send_wrapper(message: Message) -> None:
            nonlocal completed
            if span is None:
                started()
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
                _record_incomplete(started(), record)
        finally:
            if span_open:
                end_span()
            if token is not None:
                otel_context.detach(token)


_fault_reported = False


def _report_fault(when: str) -> None:
    # Once with the traceback, then quietly: a broken exporter setup would otherwise
    # log one traceback per request.
    global _fault_reported
    if _fault_reported:
        log_safely(
            _logger, logging.DEBUG, "asgi_observe could not %s a request span", when, exc_info=True
        )
        return
    _fault_reported = True
    log_safely(
        _logger,
        logging.ERROR,
        "asgi_observe could not %s a request span; requests are served untraced "
        "while this lasts (further failures are logged at DEBUG)",
        when,
        exc_info=True,
    )


def _record_exception(span: trace.Span, exc: BaseException, scope: Scope) -> None:
    exc_type = type(exc)
    module = exc_type.__module__
    qualname = exc_type.__qualname__
    span.set_attribute("error.type", qualname if module == "builtins" else f"{module}.{qualname}")
    # The message and traceback often carry a token or a DSN: scrubbed by value with
    # the request's header and query secrets, and by shape, as Sentry events are.
    scrubber = DEFAULT_SCRUBBER
    secrets = scrubber.request_secret_set(
        scope.get("headers") or (), scope.get("query_string") or b""
    )
    message = scrubber.scrub_text(_message(exc), secrets)
    stacktrace = scrubber.scrub_text("".join(traceback.format_exception(exc)), secrets)
    span.record_exception(
        exc,
        attributes={"exception.message": message, "exception.stacktrace": stacktrace},
        escaped=True,
    )
    span.set_status(Status(StatusCode.ERROR, f"{qualname}: {message}"[:1024]))


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises
        return f"<unprintable {type(exc).__qualname__}>"


def _record_incomplete(span: trace.Span, record: RequestRecord) -> None:
    error_type = CLIENT_DISCONNECTED if record.client_disconnected else INCOMPLETE_RESPONSE
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
