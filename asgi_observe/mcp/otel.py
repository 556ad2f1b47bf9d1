"""The OpenTelemetry meter instruments of MCP awareness, beside the HTTP ones.

Created once per meter provider, like `metrics.otel`: every MCP layer recording into one
provider shares the instruments. The attribute dict of each label set is built once, when
the label set is first bound, so a measurement costs the SDK's own work.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import Attributes

from asgi_observe.mcp.sessions import SessionTable
from asgi_observe.metrics.otel import METER_NAME, OVERFLOW_ATTRIBUTES

__all__ = [
    "ACTIVE_SESSIONS",
    "END_REASON",
    "OPERATION_DURATION",
    "SESSION_DURATION",
    "McpInstruments",
    "mcp_instruments_for",
]

# https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/gen-ai/mcp.md
OPERATION_DURATION = "mcp.server.operation.duration"
SESSION_DURATION = "mcp.server.session.duration"
# The conventions define no session count and no end reason: these two names are ours.
ACTIVE_SESSIONS = "asgi_observe.mcp.server.active_sessions"
END_REASON = "asgi_observe.mcp.session.end_reason"

Observe = Callable[[float], None]

_instruments: weakref.WeakKeyDictionary[Any, McpInstruments] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class McpInstruments:
    """The MCP instruments of one meter provider."""

    def __init__(self, meter_provider: Any, buckets: Iterable[float]) -> None:
        meter = meter_provider.get_meter(METER_NAME)
        advice = tuple(buckets)
        self._operation = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="Duration of MCP requests and notifications, from receipt to the answer.",
            explicit_bucket_boundaries_advisory=advice,
        )
        self._session_duration = meter.create_histogram(
            SESSION_DURATION,
            unit="s",
            description="Duration of MCP Streamable HTTP sessions, by how they ended.",
            explicit_bucket_boundaries_advisory=advice,
        )
        # The live count is read from the session tables at each collection, so it is
        # exact whatever ended a session (DELETE, 404, idle, eviction).
        self._tables: weakref.WeakSet[SessionTable] = weakref.WeakSet()
        meter.create_observable_up_down_counter(
            ACTIVE_SESSIONS,
            callbacks=[self._observe_active],
            unit="{session}",
            description="MCP Streamable HTTP sessions started and not yet ended.",
        )
        self._reasons: dict[str, Attributes] = {}

    def count_sessions_of(self, table: SessionTable) -> None:
        self._tables.add(table)

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(len(table) for table in list(self._tables)))]

    def bind(self, method: str, tool: str, prompt: str, error_type: str) -> Observe:
        """Record one label set's durations; its attributes follow the conventions."""
        attributes: dict[str, str] = {"mcp.method.name": method}
        if tool:
            attributes["gen_ai.tool.name"] = tool
        if prompt:
            attributes["gen_ai.prompt.name"] = prompt
        if error_type:
            attributes["error.type"] = error_type
        return _recorder(self._operation.record, attributes)

    def bind_overflow(self) -> Observe:
        return _recorder(self._operation.record, OVERFLOW_ATTRIBUTES)

    def session_ended(self, duration_s: float, reason: str) -> None:
        attributes = self._reasons.get(reason)
        if attributes is None:
            attributes = self._reasons.setdefault(reason, {END_REASON: reason})
        self._session_duration.record(duration_s, attributes)


def _recorder(record: Callable[[float, Attributes], None], attributes: Attributes) -> Observe:
    def observe(seconds: float) -> None:
        record(seconds, attributes)

    return observe


def mcp_instruments_for(meter_provider: Any, buckets: Iterable[float]) -> McpInstruments:
    """The MCP instruments of `meter_provider` (the global one when None), made on first use."""
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    with _lock:
        instruments = _instruments.get(provider)
        if instruments is None:
            instruments = _instruments[provider] = McpInstruments(provider, buckets)
    return instruments
