from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class SpanCapture:
    """An SDK tracer provider whose finished spans stay in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self):  # type: ignore[no-untyped-def]
        return self.exporter.get_finished_spans()


@pytest.fixture
def span_capture() -> Iterator[SpanCapture]:
    capture = SpanCapture()
    yield capture
    capture.provider.shutdown()
