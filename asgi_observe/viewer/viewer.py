"""Viewer: the in-process stores behind the local viewer, and what feeds them."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from asgi_observe._core.record import RouteResolver
from asgi_observe._core.types import ASGIApp, Scope
from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER, SECRETS_HINT_KEY, Scrubber
from asgi_observe.viewer.access import ClientPolicy
from asgi_observe.viewer.capture import ViewerCaptureMiddleware, current_request_secrets
from asgi_observe.viewer.errors import ErrorStore, Fingerprint, default_fingerprint, error_event
from asgi_observe.viewer.logs import LogStore, install_log_handler
from asgi_observe.viewer.red import MCP_ROWS, RedWindow
from asgi_observe.viewer.traces import TraceStore, attach_span_processor

__all__ = ["Viewer"]


def _positive(name: str, value: int) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


class Viewer:
    """The local viewer's bounded, in-memory data: traces, RED per route and per MCP tool,
    errors, logs.

    `observe(app, viewer_path="/_observe")` creates one, connects it and mounts its page;
    pass your own `Viewer` to `observe(viewer=...)` to change its limits or who may see it.
    Everything it shows is scrubbed with `scrubber`, as Sentry events are.

    Args:
        max_traces: traces kept (the oldest go first).
        max_spans_per_trace: spans kept per trace; later ones are counted, not kept.
        max_errors: error events kept; `max_error_groups` groups are counted.
        max_logs: log records kept.
        allow: networks whose clients may see the viewer; None for loopback only
            (see docs/viewer.md for what "client" means behind a proxy).
        scrubber: what to redact; the default `Scrubber()` when None.
        fingerprint: groups error events (takes a scrubbed event, returns a key);
            exception type and route template when None.
        red_window_s: how far back the RED table looks, in seconds.
        logs: keep log records (a handler on the root logger).

    Since 0.2.0.
    """

    def __init__(
        self,
        *,
        max_traces: int = 200,
        max_spans_per_trace: int = 256,
        max_errors: int = 100,
        max_error_groups: int = 200,
        max_logs: int = 1000,
        allow: Iterable[str] | None = None,
        scrubber: Scrubber | None = None,
        fingerprint: Fingerprint | None = None,
        red_window_s: float = 300.0,
        logs: bool = True,
    ) -> None:
        if scrubber is not None and not isinstance(scrubber, Scrubber):
            raise TypeError("scrubber must be an asgi_observe.scrub.Scrubber")
        if fingerprint is not None and not callable(fingerprint):
            raise TypeError("fingerprint must be callable")
        if not isinstance(red_window_s, (int, float)) or red_window_s <= 0:
            raise ValueError(f"red_window_s must be a positive number, not {red_window_s!r}")
        self.scrubber = scrubber or DEFAULT_SCRUBBER
        self.access = ClientPolicy(allow)
        self.traces = TraceStore(
            max_traces=_positive("max_traces", max_traces),
            max_spans=_positive("max_spans_per_trace", max_spans_per_trace),
        )
        self.errors = ErrorStore(
            max_errors=_positive("max_errors", max_errors),
            max_groups=_positive("max_error_groups", max_error_groups),
            fingerprint=fingerprint or default_fingerprint,
        )
        self.logs = LogStore(max_logs=_positive("max_logs", max_logs), scrubber=self.scrubber)
        self._keep_logs = bool(logs)
        self._red_window_s = float(red_window_s)
        self._red: RedWindow | None = None
        self._mcp_red: RedWindow | None = None
        self._provider: Any = None
        self._tracing = False
        self._started = time.time()
        self._app: ASGIApp | None = None

    def connect(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        registry: Any = None,
        namespace: str = "",
        metrics: bool = True,
    ) -> None:
        """Feed the viewer: spans of `tracer_provider` (the global one when None), the
        duration histogram of (`registry`, `namespace`) when `metrics` and a metrics
        layer records there, the MCP operation histogram there when an MCP layer records
        it with prometheus-client, and the root logger's records. Calling it again is
        harmless."""
        self._provider = tracer_provider
        self._attach_tracing()
        if metrics and self._red is None:
            from asgi_observe.metrics.families import existing_families

            families = existing_families(registry, namespace)
            if families is not None:
                self._red = RedWindow(families.duration, window_s=self._red_window_s)
        # Looked up only when an MCP layer was built: without one nothing of mcp/ loads.
        if self._mcp_red is None and "asgi_observe.mcp.families" in sys.modules:
            from asgi_observe.mcp.families import existing_mcp_families

            mcp = existing_mcp_families(registry, namespace)
            if mcp is not None and mcp.prometheus is not None:
                self._mcp_red = RedWindow(
                    mcp.prometheus.operation, rows=MCP_ROWS, window_s=self._red_window_s
                )
        if self._keep_logs:
            install_log_handler(self.logs, current_request_secrets)

    def _attach_tracing(self) -> bool:
        # The global provider may be set after observe() ran (in the app's lifespan):
        # the viewer tries again whenever it is looked at.
        if not self._tracing:
            provider = self._provider or trace.get_tracer_provider()
            self._tracing = attach_span_processor(provider, self.traces)
        return self._tracing

    def middleware(self, app: ASGIApp, *, route_resolver: RouteResolver | None = None) -> ASGIApp:
        """Wrap `app` in the layer that feeds request ids and errors to this viewer."""
        return ViewerCaptureMiddleware(app, viewer=self, route_resolver=route_resolver)

    @property
    def asgi_app(self) -> ASGIApp:
        """The page and JSON API, to mount past every observability layer."""
        if self._app is None:
            from asgi_observe.viewer.app import ViewerApp

            self._app = ViewerApp(self)
        return self._app

    def capture_exception(
        self,
        exc: BaseException,
        *,
        scope: Scope,
        span: Span | None = None,
        request_id: str | None = None,
        route: str | None = None,
        secrets: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Keep a scrubbed event for `exc`, raised while serving `scope`; return it."""
        event = error_event(
            exc,
            scope=scope,
            span=span,
            request_id=request_id,
            route=route,
            scrubber=self.scrubber,
            secrets=secrets,
        )
        self.errors.add(event)
        return event

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace with its spans, scrubbed with its request's secret values."""
        found = self.traces.get(trace_id)
        if found is None:
            return None
        detail, request = found
        secrets = self.scrubber.request_secrets(*request) if request else frozenset()
        scrubbed: dict[str, Any] = self.scrubber.scrub_event(detail, {SECRETS_HINT_KEY: secrets})
        return scrubbed

    def trace_list(self, query: str = "", limit: int = 100) -> list[dict[str, Any]]:
        scrubbed = self.scrubber.scrub_event({"traces": self.traces.summaries(query, limit)})
        traces: list[dict[str, Any]] = scrubbed.get("traces", [])
        return traces

    def red(self) -> dict[str, Any] | None:
        """The RED table, or None when no metrics layer records into the viewer's families."""
        return None if self._red is None else self._red.table()

    def mcp_red(self) -> dict[str, Any] | None:
        """RED per MCP method and tool or prompt, or None when no MCP layer records here."""
        return None if self._mcp_red is None else self._mcp_red.table()

    def status(self) -> dict[str, Any]:
        return {
            "started": self._started,
            "tracing": self._attach_tracing(),
            "metrics": self._red is not None,
            "mcp_metrics": self._mcp_red is not None,
            "logs": self._keep_logs,
            "traces": len(self.traces),
            "evicted_traces": self.traces.evicted,
            "errors": len(self.errors),
            "error_groups": self.errors.group_count(),
            "log_records": len(self.logs),
            "limits": {
                "traces": self.traces.max_traces,
                "spans_per_trace": self.traces.max_spans,
                "errors": self.errors.max_errors,
                "error_groups": self.errors.max_groups,
                "logs": self.logs.max_logs,
            },
        }

    def clear(self) -> None:
        """Forget every trace, error and log record kept so far."""
        self.traces.clear()
        self.errors.clear()
        self.logs.clear()
