"""McpMiddleware: per-tool RED metrics and MCP facts for Streamable HTTP endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace

from asgi_observe._core.http import path_set
from asgi_observe._core.mcp_facts import McpFacts, current_mcp
from asgi_observe._core.record import ensure_record
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.mcp.exchange import Exchange, ExchangeSettings, McpSpans
from asgi_observe.mcp.families import mcp_families_for
from asgi_observe.metrics.backend import resolve_backend

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "McpMiddleware"]

# The SDKs refuse request bodies over 4 MiB; messages up to 1 MiB are read (a tools/list
# answer of a few hundred tools fits), larger ones are served and counted as _unknown.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
DEFAULT_SESSION_IDLE_TIMEOUT_S = 30 * 60.0  # the mcp SDK's own idle timeout
_DEFAULT_MAX_SESSIONS = 10_000
_DEFAULT_MAX_NAMES = 1000
_DEFAULT_MAX_LABEL_SETS = 2000


class McpMiddleware:
    """Read the JSON-RPC messages of MCP endpoints as they pass, and measure each one.

    For requests to `paths` (exact match, with or without a trailing slash): every
    JSON-RPC request and notification is timed from its receipt to its answer into
    ``mcp_server_operation_duration_seconds`` (labels ``mcp_method_name``,
    ``gen_ai_tool_name``, ``gen_ai_prompt_name``, ``error_type``), sessions are counted
    in ``mcp_server_sessions_active`` and ``mcp_server_session_duration_seconds``, and
    the method, tool, id, session and protocol version go onto the request record,
    where tracing, logs and Sentry read them. Bytes and their timing are unchanged:
    messages are read as they pass, never held. Other paths and scope types pass
    straight through. See docs/frameworks/mcp.md.

    Args:
        app: the ASGI application to wrap.
        paths: the MCP endpoint paths, as the server sees them (mount prefix included).
        registry: the prometheus-client registry; the default one when None.
        namespace: prefix of the metric names, as for the HTTP metrics.
        names: tool and prompt names that may be labels before the server lists them.
        max_message_bytes: messages larger than this are served but not read.
        max_names: the most tool (and prompt) names kept as labels; then ``_overflow``.
        max_label_sets: the most label sets of the operation histogram.
        session_idle_timeout: seconds without a request after which a session ends.
        max_sessions: the most sessions tracked at once (least recently used ends).
        spans: emit an MCP SERVER span per request ourselves (for servers emitting none).
        tracer_provider: where those spans go; the global provider when None.
        sentry_tool_errors: also send ``isError`` results and JSON-RPC errors to Sentry.
        backend: "prometheus", "otel" (or "otlp"), "both" or "auto", as for
            MetricsMiddleware; None reads ``ASGI_OBSERVE_METRICS_BACKEND``. Through the
            meter: ``mcp.server.operation.duration``, ``mcp.server.session.duration`` and
            ``asgi_observe.mcp.server.active_sessions``.
        meter_provider: the meter provider; the global one when None.

    Since 0.2.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Iterable[str],
        registry: Any = None,
        namespace: str = "",
        names: Iterable[str] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_names: int = _DEFAULT_MAX_NAMES,
        max_label_sets: int = _DEFAULT_MAX_LABEL_SETS,
        session_idle_timeout: float = DEFAULT_SESSION_IDLE_TIMEOUT_S,
        max_sessions: int = _DEFAULT_MAX_SESSIONS,
        spans: bool = False,
        tracer_provider: trace.TracerProvider | None = None,
        sentry_tool_errors: bool = False,
        backend: str | None = None,
        meter_provider: Any = None,
    ) -> None:
        if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
            raise TypeError("meter_provider must be an OpenTelemetry MeterProvider")
        prometheus, otel = resolve_backend(backend, meter_provider=meter_provider)
        self.app = app
        configured = path_set("mcp_paths", paths)
        self._paths = frozenset(configured | {p.rstrip("/") or "/" for p in configured}) | {
            p.rstrip("/") + "/" for p in configured
        }
        if isinstance(names, str):
            raise TypeError("names must be an iterable of tool or prompt names, not a string")
        for option, value in (
            ("max_message_bytes", max_message_bytes),
            ("max_names", max_names),
            ("max_label_sets", max_label_sets),
            ("max_sessions", max_sessions),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive integer, not {value!r}")
        if not isinstance(session_idle_timeout, (int, float)) or session_idle_timeout <= 0:
            raise ValueError("session_idle_timeout must be a positive number of seconds")
        self._families = mcp_families_for(
            registry,
            namespace,
            max_label_sets=max_label_sets,
            max_names=max_names,
            idle_timeout_s=float(session_idle_timeout),
            max_sessions=max_sessions,
            names=[name for name in names if isinstance(name, str)],
            prometheus=prometheus,
            otel=otel,
            meter_provider=meter_provider,
        )
        own_spans: McpSpans | None = None
        if spans:
            from asgi_observe.mcp.spans import OwnMcpSpans

            own_spans = OwnMcpSpans(tracer_provider)
        on_error: Callable[[McpFacts, str, str | None], None] | None = None
        if sentry_tool_errors:
            from asgi_observe.mcp.sentry import report_mcp_error

            on_error = report_mcp_error
        self._settings = ExchangeSettings(self._families, max_message_bytes, own_spans, on_error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths:
            await self.app(scope, receive, send)
            return
        scope, record = ensure_record(scope)
        exchange = Exchange(self._settings, record, scope)

        async def receive_wrapper() -> Message:
            message = await receive()
            if exchange.reading and message["type"] == "http.request":
                try:
                    exchange.request_body(message)
                except Exception:
                    exchange.fault()  # our fault never changes the response
            return message

        async def send_wrapper(message: Message) -> None:
            if exchange.reading:
                try:
                    exchange.sent(message)
                except Exception:
                    exchange.fault()
            await send(message)

        token = current_mcp.set(exchange.facts)
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            current_mcp.reset(token)
            exchange.finish(record)
