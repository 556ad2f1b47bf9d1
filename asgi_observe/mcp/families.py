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
from asgi_observe.mcp.sessions import SessionTable

__all__ = [
    "DURATION_BUCKETS",
    "OPERATION_DURATION",
    "SESSIONS_ACTIVE",
    "SESSION_DURATION",
    "McpFamilies",
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


class McpFamilies:
    """The MCP metrics of one (registry, namespace) and what bounds their labels."""

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
        self.tools = PublishedNames(max_names)
        self.prompts = PublishedNames(max_names)
        self.session_table = SessionTable(
            idle_timeout_s=idle_timeout_s,
            max_sessions=max_sessions,
            on_start=self.sessions.inc,
            on_end=self._session_ended,
        )
        self._max_label_sets = max_label_sets
        self._children: dict[tuple[str, str, str, str], Observe] = {}
        self._overflow: Observe | None = None

    def _session_ended(self, duration_s: float, reason: str) -> None:
        self.sessions.dec()
        self.session_duration.labels(reason).observe(duration_s)

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
                    self._overflow = self.operation.labels(
                        OVERFLOW, OVERFLOW, OVERFLOW, OVERFLOW
                    ).observe
                return self._overflow
            child = self._children[key] = self.operation.labels(*key).observe
            return child


def mcp_families_for(
    registry: Any,
    namespace: str,
    *,
    max_label_sets: int,
    max_names: int,
    idle_timeout_s: float,
    max_sessions: int,
    names: Iterable[str] = (),
) -> McpFamilies:
    """The MCP families of (registry, namespace), created on first use.

    `names` (tool and prompt names the user declared) are added to the published ones.
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
    declared = list(names)
    if declared:
        families.tools.publish(declared)
        families.prompts.publish(declared)
    return families
