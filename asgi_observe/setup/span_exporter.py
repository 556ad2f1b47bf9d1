"""The OTLP/HTTP span exporter configure() installs: the official one, encoding with ours.

`FastOTLPSpanExporter` is `OTLPSpanExporter` in every respect (retries, compression,
size limits, its own metrics) except that its batches are encoded by span_encoding.py,
which writes the official encoder's bytes in a quarter of the instructions and steps aside
for anything it does not recognise. The official exporter module calls its module-level
`encode_spans` when it exports; `install()` wraps that name once, and the wrapper uses our
encoder only inside this class's `export` (a thread-local flag), so every other exporter
in the process keeps the official encoder. If the exporter module has no `encode_spans`
to wrap, nothing is wrapped and the official encoder does the work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http import trace_exporter as _official_module
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from asgi_observe.setup.span_encoding import encode_spans

__all__ = ["FastOTLPSpanExporter", "install"]

_local = threading.local()
_MARK = "_asgi_observe_wrapper"
_WRAPPED = "encode_spans"  # the exporter module's global that its export() calls


class _Encoded:
    """What the exporter calls on the official encoder's result, holding our bytes."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def SerializePartialToString(self) -> bytes:
        return self._data

    def SerializeToString(self) -> bytes:
        return self._data


def install() -> bool:
    """Wrap the exporter module's `encode_spans` once; False when there is none to wrap."""
    official = getattr(_official_module, _WRAPPED, None)
    if official is None:
        return False
    if getattr(official, _MARK, False):
        return True

    def encode_spans_wrapper(spans: Sequence[ReadableSpan]) -> Any:
        if getattr(_local, "ours", False):
            data = encode_spans(spans)
            if data is not None:
                return _Encoded(data)
        return official(spans)

    setattr(encode_spans_wrapper, _MARK, True)
    setattr(_official_module, _WRAPPED, encode_spans_wrapper)
    return True


class FastOTLPSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter (http/protobuf) whose batches span_encoding.py encodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _local.ours = True
        try:
            return super().export(spans)
        finally:
            _local.ours = False
