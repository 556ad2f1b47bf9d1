"""The viewer's traces: a span processor on the tracer provider, and a bounded trace buffer.

Spans reach the buffer only through the SDK's processor chain, beside the real exporters,
and only when sampled: the viewer shows what an exporter would have sent. Values are
capped when a span ends and scrubbed when a trace is read (`Viewer.trace`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_EVENTS",
    "MAX_VALUE_CHARS",
    "SpanFacts",
    "TraceStore",
    "ViewerSpanProcessor",
    "attach_span_processor",
]

MAX_ATTRIBUTES = 64
"""Attributes kept per span or event; the SDK's own default limit is 128."""
MAX_EVENTS = 32
MAX_VALUE_CHARS = 2048
"""Longer string values are cut (the SDK keeps attribute values whole by default)."""
MAX_STACKTRACE_CHARS = 16 * 1024
_MAX_SEQUENCE = 32

_log = logging.getLogger("asgi_observe.viewer")


def _capped(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, (tuple, list)):
        return [_capped(item) for item in value[:_MAX_SEQUENCE]]
    return value


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    kept = dict(attributes)
    if len(kept) > MAX_ATTRIBUTES:
        kept = dict(list(kept.items())[:MAX_ATTRIBUTES])
    for key, value in kept.items():
        # Most values are short strings and numbers: only long ones and lists are copied.
        if type(value) is str:
            if len(value) > MAX_VALUE_CHARS:
                limit = MAX_STACKTRACE_CHARS if key == "exception.stacktrace" else MAX_VALUE_CHARS
                kept[key] = _capped(value, limit)
        elif isinstance(value, (tuple, list)):
            kept[key] = _capped(value)
    return kept


class SpanFacts:
    """What the viewer keeps of one ended span: capped copies, no SDK objects."""

    __slots__ = (
        "attributes",
        "end_ns",
        "events",
        "kind",
        "name",
        "parent_id",
        "scope",
        "span_id",
        "start_ns",
        "status",
        "status_message",
    )

    def __init__(self, span: ReadableSpan) -> None:
        context = span.context
        parent = span.parent
        self.span_id = format(context.span_id, "016x") if context is not None else ""
        self.parent_id = format(parent.span_id, "016x") if parent is not None else None
        self.name = _capped(span.name, 256)
        self.kind = span.kind.name
        self.start_ns = span.start_time or 0
        self.end_ns = span.end_time or self.start_ns
        self.status = span.status.status_code.name
        self.status_message = _capped(span.status.description or "")
        self.attributes = _attributes(span.attributes)
        events = span.events
        self.events = (
            [
                (event.name, event.timestamp, _attributes(event.attributes))
                for event in events[:MAX_EVENTS]
            ]
            if events
            else []
        )
        scope = span.instrumentation_scope
        self.scope = scope.name if scope is not None else ""

    def as_dict(self, origin_ns: int) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "start_ms": (self.start_ns - origin_ns) / 1e6,
            "duration_ms": (self.end_ns - self.start_ns) / 1e6,
            "status": self.status,
            "status_message": self.status_message,
            "scope": self.scope,
            "attributes": self.attributes,
            "events": [
                {"name": name, "at_ms": (timestamp - origin_ns) / 1e6, "attributes": attributes}
                for name, timestamp, attributes in self.events
            ],
        }


class _Trace:
    __slots__ = ("dropped_spans", "request", "request_id", "service", "spans", "trace_id")

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.spans: list[SpanFacts] = []
        self.dropped_spans = 0
        self.request_id: str | None = None
        # The request's raw headers and query: their secret values are redacted from
        # the spans when the trace is read, as SentryMiddleware does for events.
        self.request: tuple[Iterable[Any], bytes] | None = None
        self.service = ""

    def root(self) -> SpanFacts | None:
        ids = {span.span_id for span in self.spans}
        roots = [span for span in self.spans if span.parent_id not in ids]
        return min(roots, key=lambda span: span.start_ns) if roots else None

    def summary(self) -> dict[str, Any]:
        root = self.root()
        start = min((span.start_ns for span in self.spans), default=0)
        end = max((span.end_ns for span in self.spans), default=start)
        errors = sum(1 for span in self.spans if span.status == "ERROR")
        status_code = root.attributes.get("http.response.status_code") if root else None
        return {
            "trace_id": self.trace_id,
            "name": root.name if root else "(spans still open)",
            "start_ns": start,
            "duration_ms": (end - start) / 1e6,
            "spans": len(self.spans),
            "dropped_spans": self.dropped_spans,
            "errors": errors,
            "status_code": status_code,
            "path": root.attributes.get("url.path") if root else None,
            "request_id": self.request_id,
            "service": self.service,
        }


class TraceStore:
    """The last `max_traces` traces, each holding at most `max_spans` spans; thread safe."""

    def __init__(self, *, max_traces: int, max_spans: int) -> None:
        self.max_traces = max_traces
        self.max_spans = max_spans
        self.evicted = 0
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, trace_id: str) -> _Trace:
        # Called with the lock held.
        entry = self._traces.get(trace_id)
        if entry is None:
            entry = self._traces[trace_id] = _Trace(trace_id)
            while len(self._traces) > self.max_traces:
                self._traces.popitem(last=False)
                self.evicted += 1
        return entry

    def add(self, trace_id: str, span: SpanFacts, service: str) -> None:
        with self._lock:
            entry = self._entry(trace_id)
            if len(entry.spans) >= self.max_spans:
                entry.dropped_spans += 1
                return
            entry.spans.append(span)
            if not entry.service:
                entry.service = service

    def note_request(self, trace_id: str, request_id: str | None, request: Any) -> None:
        with self._lock:
            entry = self._entry(trace_id)
            entry.request_id = request_id
            entry.request = request

    def summaries(self, query: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; `query` matches a trace id (or its start) or a request id."""
        query = query.strip().lower()
        with self._lock:
            entries = list(self._traces.values())
        found = []
        for entry in reversed(entries):
            if query and not (
                entry.trace_id.startswith(query)
                or (entry.request_id is not None and entry.request_id.lower() == query)
            ):
                continue
            if entry.spans:
                found.append(entry.summary())
        found.sort(key=lambda summary: summary["start_ns"], reverse=True)
        return found[:limit]

    def get(self, trace_id: str) -> tuple[dict[str, Any], Any] | None:
        """The trace's summary and spans (unscrubbed), and the request seen with it."""
        with self._lock:
            entry = self._traces.get(trace_id.strip().lower())
            if entry is None or not entry.spans:
                return None
            spans = list(entry.spans)
            summary = entry.summary()
            request = entry.request
        origin = summary["start_ns"]
        summary["spans"] = [span.as_dict(origin) for span in sorted(spans, key=_start)]
        return summary, request

    def __len__(self) -> int:
        return len(self._traces)

    def span_count(self) -> int:
        with self._lock:
            return sum(len(entry.spans) for entry in self._traces.values())

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()


def _start(span: SpanFacts) -> int:
    return span.start_ns


class ViewerSpanProcessor(SpanProcessor):
    """Hands each sampled span, when it ends, to the trace stores attached to a provider.

    One per provider, shared by every viewer on it (a weak set, so a viewer that is
    gone stops costing anything). Never raises into the SDK's processor chain.
    """

    def __init__(self) -> None:
        # Weak references, read as a tuple on the hot path (a WeakSet's iteration costs
        # more than the span copy); a store that is gone is dropped by its callback.
        self._stores: tuple[weakref.ref[TraceStore], ...] = ()
        self._faulted = False

    def add_store(self, store: TraceStore) -> None:
        if not any(ref() is store for ref in self._stores):
            self._stores = (*self._stores, weakref.ref(store, self._forget))

    def _forget(self, gone: weakref.ref[TraceStore]) -> None:
        self._stores = tuple(ref for ref in self._stores if ref is not gone)

    @property
    def stores(self) -> list[TraceStore]:
        return [store for store in (ref() for ref in self._stores) if store is not None]

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        stores = self._stores
        # What a BatchSpanProcessor exports: sampled spans only (RECORD_ONLY ones are not).
        if context is None or not context.trace_flags.sampled or not stores:
            return
        try:
            facts = SpanFacts(span)
            service = str(span.resource.attributes.get("service.name", ""))
            trace_id = format(context.trace_id, "032x")
            for ref in stores:
                store = ref()
                if store is not None:
                    store.add(trace_id, facts, service)
        except Exception:  # the viewer must never break the app's spans or exporters
            if not self._faulted:
                self._faulted = True
                _log.exception("asgi_observe's viewer could not keep a span")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_processors: weakref.WeakKeyDictionary[Any, ViewerSpanProcessor] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def attach_span_processor(provider: Any, store: TraceStore) -> bool:
    """Feed `store` from `provider`'s spans; False when it is not an SDK provider."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    with _attach_lock:
        processor = _processors.get(provider)
        if processor is None:
            processor = _processors[provider] = ViewerSpanProcessor()
            add(processor)
        processor.add_store(store)
    return True
