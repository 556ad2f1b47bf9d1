"""The per-request record every asgi_observe layer shares.

The outermost layer that runs creates one `RequestRecord`, stores it in a copy of the
scope under `RECORD_KEY`, and every inner layer reads it from there, so facts are
computed once per request: the start clock, the request id, the span, the status, the
route template and the end clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgi_observe._core.types import Message, Scope

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from asgi_observe._core.mcp_facts import McpFacts

RECORD_KEY = "asgi_observe.record"

RouteResolver = Callable[[Scope], "str | None"]

_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns


class RequestRecord:
    """What one request has shown so far; read and written by every layer."""

    __slots__ = (
        "_start_perf_ns",
        "client_disconnected",
        "end_ns",
        "exception",
        "mcp",
        "request_id",
        "response_started",
        "route",
        "route_resolved",
        "span",
        "span_parent_hook",
        "start_ns",
        "status",
        "trailers_expected",
    )

    def __init__(self) -> None:
        # Wall clock for span timestamps, monotonic clock for the duration: the end
        # time is derived from both, so every layer reports the same duration.
        self.start_ns: int = _time_ns()
        self._start_perf_ns: int = _perf_ns()
        self.end_ns: int | None = None
        self.request_id: str | None = None
        self.span: Span | None = None
        self.status: int | None = None
        self.route: str | None = None
        self.route_resolved: bool = False
        self.exception: BaseException | None = None
        self.trailers_expected: bool = False
        self.response_started: bool = False
        self.client_disconnected: bool = False
        # Filled by asgi_observe.mcp on MCP endpoints; every pillar reads it from here.
        self.mcp: McpFacts | None = None
        # Set by tracing while a span waits for a parent from the body (MCP params._meta):
        # called once with {"traceparent": ..., "tracestate": ...} or None.
        self.span_parent_hook: Callable[[dict[str, str] | None], object] | None = None

    def stamp_end(self) -> int:
        """Stamp the end of the request once; later calls return the same reading."""
        end_ns = self.end_ns
        if end_ns is None:
            end_ns = self.end_ns = self.start_ns + (_perf_ns() - self._start_perf_ns)
        return end_ns

    @property
    def duration_s(self) -> float:
        return (self.stamp_end() - self.start_ns) / 1e9

    def resolve_route(self, scope: Scope, resolver: RouteResolver) -> str | None:
        """Resolve the route template once, from what the framework left in `scope`."""
        if not self.route_resolved:
            self.route_resolved = True
            if self.route is None:
                try:
                    self.route = resolver(scope)
                except Exception:  # a user resolver must never break the response
                    self.route = None
        return self.route


def record_of(scope: Scope) -> RequestRecord | None:
    """The record an outer layer placed in `scope`, if any."""
    record: Any = scope.get(RECORD_KEY)
    return record if type(record) is RequestRecord else None


def ensure_record(scope: Scope) -> tuple[Scope, RequestRecord]:
    """Return `(scope, record)`, creating the record in a copy of the scope if needed."""
    record = scope.get(RECORD_KEY)
    if type(record) is RequestRecord:
        return scope, record
    record = RequestRecord()
    scope = dict(scope)
    scope[RECORD_KEY] = record
    return scope, record


def observe_message(record: RequestRecord, message: Message) -> bool:
    """Note what an outgoing message says about the response; True on the final event.

    The final event is the last body chunk, or the last trailers message when trailers
    were announced, or a pathsend/zerocopy message, or the websocket close/denial.
    Every layer calls this from its send wrapper; the first call for a message stamps
    the end clock, so all layers see the same reading.
    """
    message_type = message["type"]
    if message_type == "http.response.body":
        if message.get("more_body", False) or record.trailers_expected:
            return False
    elif message_type == "http.response.start":
        record.response_started = True
        record.status = message["status"]
        record.trailers_expected = bool(message.get("trailers", False))
        return False
    elif message_type == "http.response.trailers":
        if message.get("more_trailers", False):
            return False
    elif message_type == "websocket.accept":
        record.response_started = True
        record.status = 101
        return False
    elif message_type == "websocket.close":
        if not record.response_started:
            # Closing before accepting is a denial: the server answers 403.
            record.status = 403
            record.response_started = True
    elif message_type == "websocket.http.response.start":
        record.response_started = True
        record.status = message["status"]
        return False
    elif message_type == "websocket.http.response.body":
        if message.get("more_body", False):
            return False
    elif message_type not in ("http.response.pathsend", "http.response.zerocopy"):
        return False
    record.stamp_end()
    return True
