"""Bounded label values: MCP method names, and the tool and prompt names a server published.

Methods, tool names and prompt names all come from the client, so none becomes a metric
label as sent: methods outside the MCP specification are ``_other``, and a tool or prompt
name is a label only once the server itself listed it (in a ``tools/list`` or
``prompts/list`` answer) or the user named it. Others are ``_unknown``; past the cap,
newly published names are ``_overflow``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["KNOWN_METHODS", "OTHER", "OVERFLOW", "UNKNOWN", "PublishedNames", "method_label"]

OTHER = "_other"
UNKNOWN = "_unknown"
OVERFLOW = "_overflow"
INVALID = "_invalid"
_OVERFLOW_MEMORY = 10  # overflowed names remembered, as a multiple of the cap

# Requests and notifications of the MCP schema (2024-11-05 to 2026-07-28).
KNOWN_METHODS = frozenset(
    {
        "completion/complete",
        "elicitation/create",
        "initialize",
        "logging/setLevel",
        "notifications/cancelled",
        "notifications/elicitation/complete",
        "notifications/initialized",
        "notifications/message",
        "notifications/progress",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/resources/updated",
        "notifications/roots/list_changed",
        "notifications/tasks/status",
        "notifications/tools/list_changed",
        "ping",
        "prompts/get",
        "prompts/list",
        "resources/list",
        "resources/read",
        "resources/subscribe",
        "resources/templates/list",
        "resources/unsubscribe",
        "roots/list",
        "sampling/createMessage",
        "server/discover",
        "subscriptions/listen",
        "tasks/cancel",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tools/call",
        "tools/list",
    }
)


def method_label(method: str | None) -> str:
    if method is None:
        return UNKNOWN
    return method if method in KNOWN_METHODS else OTHER


class PublishedNames:
    """The tool (or prompt) names that may become label values, at most `cap` of them."""

    __slots__ = ("_cap", "_lock", "_names", "_overflowed")

    def __init__(self, cap: int, given: Iterable[str] = ()) -> None:
        self._cap = cap
        self._names: set[str] = set(list(given)[:cap])
        # Published past the cap: remembered (up to a bound) only to label them _overflow.
        self._overflowed: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, names: Iterable[str]) -> None:
        new = [name for name in names if name not in self._names]
        if not new:
            return
        with self._lock:
            for name in new:
                if len(self._names) < self._cap:
                    self._names.add(name)
                elif len(self._overflowed) < _OVERFLOW_MEMORY * self._cap:
                    self._overflowed.add(name)

    def label(self, name: str | None) -> str:
        """The label for a name the client sent: itself if published, else a marker."""
        if name is None:
            return ""
        if name in self._names:
            return name
        return OVERFLOW if name in self._overflowed else UNKNOWN

    def __contains__(self, name: object) -> bool:
        return name in self._names
