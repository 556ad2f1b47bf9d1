"""The Prometheus families of MCP awareness, beside the HTTP ones in the same registry.

Created once per (registry, namespace), like `metrics.families`, so two observe() calls
sharing a registry share the series, the published names and the session table.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Gauge, Histogram

from asgi_observe.mcp.names import OVERFLOW, PublishedNames
from asgi_observe.mcp.otel import McpInstruments, mcp_instruments_for
from asgi_observe.mcp.sessions import SessionTable

__all__ = [
    "DURATION_BUCKETS",
    "OPERATION_DURATION",
    "SESSIONS_ACTIVE",
    "SESSION_DURATION",
    "McpFamilies",
    "existing_mcp_families",
    "mcp_families_for",
]

# https://opentelemetry.io/docs/specs/semconv/gen-ai/mcp/ : the bucket advice of
# mcp.server.operation.duration and mcp.server.session.duration.
DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

OPERATION_DURATION = "mcp_server_operation_duration_seconds"
SESSION_DURATION = "mcp_server_session_duration_seconds"
SESSIONS_ACTIVE = "mcp_server_sessions_active"
LABELS = ("mcp_method_name", "gen_ai_tool_name", "gen_ai_prompt_name", "error_type")

Observe = Callable[[float], None]

_families: weakref.WeakKeyDictionary[Any, dict[str, McpFamilies]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class _PrometheusMcp:
    """The prometheus-client families of MCP awareness in one (registry, namespace)."""

    def __init__(self, registry: Any, namespace: str) -> None:
        self.operation = Histogram(
            OPERATION_DURATION,
            "Duration of MCP requests and notifications, from receipt to the answer sent.",
            LABELS,
            namespace=namespace,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.session_duration = Histogram(
            SESSION_DURATION,
            "Duration of MCP Streamable HTTP sessions, by how they ended.",
            ("reason",),
            namespace=namespace,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.sessions = Gauge(
            SESSIONS_ACTIVE,
            "MCP Streamable HTTP sessions started and not yet ended.",
            namespace=namespace,
            registry=registry,
            multiprocess_mode="livesum",
        )

    def bind(self, method: str, tool: str, prompt: str, error_type: str) -> Observe:
        observe: Observe = self.operation.labels(method, tool, prompt, error_type).observe
        return observe

    def bind_overflow(self) -> Observe:
        return self.bind(OVERFLOW, OVERFLOW, OVERFLOW, OVERFLOW)

    def session_ended(self, duration_s: float, reason: str) -> None:
        self.sessions.dec()
        self.session_duration.labels(reason).observe(duration_s)


class McpFamilies:
    """The MCP metrics of one (registry, namespace) and what bounds their labels.

    They record through prometheus-client, the OpenTelemetry meter, or both: the union
    of what the layers sharing them asked for (`record_with`).
    """

    def __init__(
        self,
        registry: Any,
        namespace: str,
        *,
        max_label_sets: int,
        max_names: int,
        idle_timeout_s: float,
        max_sessions: int,
    ) -> None:
        self._registry = registry
        self._namespace = namespace
        self.prometheus: _PrometheusMcp | None = None
        self.meters: list[McpInstruments] = []
        self.tools = PublishedNames(max_names)
        self.prompts = PublishedNames(max_names)
        self.session_table = SessionTable(
            idle_timeout_s=idle_timeout_s,
            max_sessions=max_sessions,
            on_start=self._session_started,
            on_end=self._session_ended,
        )
        self._max_label_sets = max_label_sets
        self._children: dict[tuple[str, str, str, str], Observe] = {}
        self._overflow: Observe | None = None

    def record_with(self, *, prometheus: bool, instruments: McpInstruments | None) -> None:
        """Also record through prometheus-client and/or these meter instruments."""
        with _lock:
            if prometheus and self.prometheus is None:
                self.prometheus = _PrometheusMcp(self._registry, self._namespace)
                self.prometheus.sessions.set(len(self.session_table))
            if instruments is not None and instruments not in self.meters:
                instruments.count_sessions_of(self.session_table)
                self.meters.append(instruments)
            # Label sets bound so far record into the old sinks only: bind them anew.
            self._children = {}
            self._overflow = None

    def _sinks(self) -> list[_PrometheusMcp | McpInstruments]:
        prometheus = [] if self.prometheus is None else [self.prometheus]
        return [*prometheus, *self.meters]

    def _session_started(self) -> None:
        if self.prometheus is not None:
            self.prometheus.sessions.inc()

    def _session_ended(self, duration_s: float, reason: str) -> None:
        for sink in self._sinks():
            sink.session_ended(duration_s, reason)

    def observe(self, method: str, tool: str, prompt: str, error_type: str, seconds: float) -> None:
        key = (method, tool, prompt, error_type)
        child = self._children.get(key)
        if child is None:
            child = self._bind(key)
        child(seconds)

    def _bind(self, key: tuple[str, str, str, str]) -> Observe:
        with _lock:
            child = self._children.get(key)
            if child is not None:
                return child
            if len(self._children) >= self._max_label_sets:
                if self._overflow is None:
                    self._overflow = _fan_out([sink.bind_overflow() for sink in self._sinks()])
                return self._overflow
            child = self._children[key] = _fan_out([sink.bind(*key) for sink in self._sinks()])
            return child


def _fan_out(observers: list[Observe]) -> Observe:
    if len(observers) == 1:
        return observers[0]  # the common case costs one call, as before

    def observe(seconds: float) -> None:
        for observer in observers:
            observer(seconds)

    return observe


def mcp_families_for(
    registry: Any,
    namespace: str,
    *,
    max_label_sets: int,
    max_names: int,
    idle_timeout_s: float,
    max_sessions: int,
    names: Iterable[str] = (),
    prometheus: bool = True,
    otel: bool = False,
    meter_provider: Any = None,
) -> McpFamilies:
    """The MCP families of (registry, namespace), created on first use.

    `names` (tool and prompt names the user declared) are added to the published ones.
    `prometheus` and `otel` add prometheus-client and the meter of `meter_provider` (the
    global one when None) to what they record with.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        by_namespace = _families.setdefault(registry, {})
        families = by_namespace.get(namespace)
        if families is None:
            families = by_namespace[namespace] = McpFamilies(
                registry,
                namespace,
                max_label_sets=max_label_sets,
                max_names=max_names,
                idle_timeout_s=idle_timeout_s,
                max_sessions=max_sessions,
            )
    families.record_with(
        prometheus=prometheus,
        instruments=mcp_instruments_for(meter_provider, DURATION_BUCKETS) if otel else None,
    )
    declared = list(names)
    if declared:
        families.tools.publish(declared)
        families.prompts.publish(declared)
    return families


def existing_mcp_families(registry: Any, namespace: str) -> McpFamilies | None:
    """The MCP families of (registry, namespace) if an MCP layer made them, else None."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        return _families.get(registry, {}).get(namespace)
