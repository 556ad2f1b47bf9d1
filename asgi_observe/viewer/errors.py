"""The viewer's errors: Sentry-shaped events, scrubbed like Sentry's, grouped, bounded.

An event is built the way SentryMiddleware's events are enriched (the same ``request``
section and trace context, from `errors.sentry_event`) and passed through the same
`Scrubber.scrub_event` with the request's secret values, so what the viewer shows is
what Sentry would have received. No sentry-sdk and no DSN are needed. Frame locals are
never captured.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span

from asgi_observe._core.types import Scope
from asgi_observe.errors.sentry_event import request_data, set_trace_context
from asgi_observe.scrub.scrubber import SECRETS_HINT_KEY, Scrubber

__all__ = ["ErrorStore", "Fingerprint", "default_fingerprint", "error_event"]

Fingerprint = Callable[[Mapping[str, Any]], "str | Sequence[str]"]
"""Groups errors: takes a scrubbed event, returns its group's key."""

MAX_FRAMES = 40
# The traceback starts in the capture layer's own frame; the app's frames follow.
_CAPTURE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capture.py")
_MAX_CHAIN = 8
_MAX_VALUE_CHARS = 2048
_MAX_HEADER_CHARS = 1024
_MAX_HEADERS = 64


def default_fingerprint(event: Mapping[str, Any]) -> Sequence[str]:
    """The exception type and the route template (the raw path when no route matched)."""
    values = (event.get("exception") or {}).get("values") or [{}]
    exc_type = str(values[-1].get("type", "")) if isinstance(values[-1], Mapping) else ""
    tags = event.get("tags") or {}
    route = tags.get("http.route") if isinstance(tags, Mapping) else None
    return exc_type, str(route or "")


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < _MAX_CHAIN and current not in chain:
        chain.append(current)
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    chain.reverse()  # Sentry lists the chain oldest first, the raised exception last
    return chain


def _exception_value(exc: BaseException) -> dict[str, Any]:
    summary = traceback.extract_tb(exc.__traceback__)
    while len(summary) > 1 and summary[0].filename == _CAPTURE_FILE:
        summary.pop(0)
    frames = [
        {
            "filename": frame.filename,
            "function": frame.name,
            "lineno": frame.lineno,
            "context_line": frame.line or "",
        }
        for frame in summary[-MAX_FRAMES:]
    ]
    exc_type = type(exc)
    try:
        value = str(exc)
    except Exception:
        value = "<str() failed>"
    return {
        "type": exc_type.__qualname__,
        "module": exc_type.__module__,
        "value": value[:_MAX_VALUE_CHARS],
        "stacktrace": {"frames": frames},
    }


def _capped_request(request: dict[str, Any]) -> dict[str, Any]:
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {
            name: value[:_MAX_HEADER_CHARS] for name, value in list(headers.items())[:_MAX_HEADERS]
        }
    return request


def error_event(
    exc: BaseException,
    *,
    scope: Scope,
    span: Span | None,
    request_id: str | None,
    route: str | None,
    scrubber: Scrubber,
    secrets: frozenset[str],
) -> dict[str, Any]:
    """One scrubbed, Sentry-shaped event for an exception raised while serving `scope`."""
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "level": "error",
        "exception": {"values": [_exception_value(item) for item in _chain(exc)]},
        "request": _capped_request(request_data(scope, scrubber)),
        "tags": {},
    }
    if request_id is not None:
        event["tags"]["request_id"] = request_id
    if route:
        event["tags"]["http.route"] = route
        event["transaction"] = route
    set_trace_context(event, span)
    scrubbed: dict[str, Any] = scrubber.scrub_event(event, {SECRETS_HINT_KEY: secrets})
    return scrubbed


class _Group:
    __slots__ = ("count", "first_seen", "key", "last_event", "last_seen")

    def __init__(self, key: tuple[str, ...], event: dict[str, Any]) -> None:
        self.key = key
        self.count = 0
        self.first_seen = event.get("timestamp", 0.0)
        self.last_seen = self.first_seen
        self.last_event = event


class ErrorStore:
    """The last `max_errors` events and at most `max_groups` groups; thread safe."""

    def __init__(self, *, max_errors: int, max_groups: int, fingerprint: Fingerprint) -> None:
        self.max_errors = max_errors
        self.max_groups = max_groups
        self._fingerprint = fingerprint
        self._events: deque[dict[str, Any]] = deque(maxlen=max_errors)
        self._groups: OrderedDict[tuple[str, ...], _Group] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, event: dict[str, Any]) -> tuple[str, ...]:
        try:
            key = self._fingerprint(event)
        except Exception:  # a user's grouping function must not lose the error
            key = default_fingerprint(event)
        return (key,) if isinstance(key, str) else tuple(str(part) for part in key)

    def add(self, event: dict[str, Any]) -> None:
        key = self._key(event)
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key, event)
                while len(self._groups) > self.max_groups:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end(key)
            group.count += 1
            group.last_seen = event.get("timestamp", group.last_seen)
            group.last_event = event
            event["group"] = _group_id(key)
            self._events.append(event)

    def groups(self) -> list[dict[str, Any]]:
        """Most recently seen first, each with its latest event's headline."""
        with self._lock:
            groups = list(self._groups.values())
        return [_group_summary(group) for group in reversed(groups)]

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            for event in self._events:
                if event.get("event_id") == event_id:
                    return event
            for group in self._groups.values():
                if group.last_event.get("event_id") == event_id:
                    return group.last_event
        return None

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self._events)
        return [_event_summary(event) for event in reversed(events)][:limit]

    def __len__(self) -> int:
        return len(self._events)

    def group_count(self) -> int:
        return len(self._groups)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._groups.clear()


def _group_id(key: tuple[str, ...]) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "\x1f".join(key)).hex[:16]


def _event_summary(event: Mapping[str, Any]) -> dict[str, Any]:
    values = (event.get("exception") or {}).get("values") or [{}]
    last = values[-1] if isinstance(values[-1], Mapping) else {}
    tags = event.get("tags") or {}
    trace = (event.get("contexts") or {}).get("trace") or {}
    request = event.get("request") or {}
    return {
        "event_id": event.get("event_id"),
        "group": event.get("group"),
        "timestamp": event.get("timestamp"),
        "type": last.get("type"),
        "value": last.get("value"),
        "route": tags.get("http.route"),
        "method": request.get("method"),
        "request_id": tags.get("request_id"),
        "trace_id": trace.get("trace_id"),
    }


def _group_summary(group: _Group) -> dict[str, Any]:
    summary = _event_summary(group.last_event)
    summary.update(
        id=_group_id(group.key),
        fingerprint=list(group.key),
        count=group.count,
        first_seen=group.first_seen,
        last_seen=group.last_seen,
    )
    return summary
