"""Trace and span ids in the hex form OpenTelemetry writes them, for logs and events."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Span


def span_ids(span: Span | None) -> tuple[str | None, str | None]:
    """(trace_id, span_id) of `span` as OpenTelemetry writes them, or Nones when invalid."""
    if span is None:
        return None, None
    context = span.get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
