"""span_encoding.encode_spans writes the official OTLP encoder's bytes, or steps aside."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from asgi_observe.setup.span_encoding import encode_spans


def official_bytes(spans: list[Any]) -> bytes:
    return official(spans).SerializePartialToString()


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.binary(max_size=4),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3).map(tuple),
    st.lists(st.lists(_scalars, max_size=2), max_size=2),
)
_attributes = st.dictionaries(st.text(max_size=5), _values, max_size=4)
_ids = st.integers(1, 2**64 - 1)
_contexts = st.builds(
    SpanContext,
    trace_id=st.integers(1, 2**128 - 1),
    span_id=_ids,
    is_remote=st.booleans(),
    trace_flags=st.sampled_from([TraceFlags(0), TraceFlags(1)]),
    trace_state=st.sampled_from([None, TraceState(), TraceState([("a", "1"), ("b", "x")])]),
)
_times = st.none() | st.integers(0, 2**64 - 1)
_statuses = st.sampled_from(
    [
        Status(StatusCode.UNSET),
        Status(StatusCode.OK),
        Status(StatusCode.ERROR),
        Status(StatusCode.ERROR, "failed: é"),
    ]
)
RESOURCES = [
    Resource.create({"service.name": "encoder"}),
    Resource({"a": 1, "b": (True, False)}, schema_url="https://schema"),
    Resource({}),
]
SCOPES = [
    InstrumentationScope("asgi_observe", "0.1.0"),
    InstrumentationScope("app", "", "https://scope-schema", {"scope.attr": "x"}),
    None,
]
_events = st.builds(
    Event, name=st.text(max_size=4), attributes=_attributes, timestamp=st.integers(0, 2**63)
)
_links = st.builds(Link, context=_contexts, attributes=st.none() | _attributes)
_spans = st.builds(
    ReadableSpan,
    name=st.text(max_size=8),
    context=_contexts,
    parent=st.none() | _contexts,
    resource=st.sampled_from(RESOURCES),
    attributes=_attributes,
    events=st.lists(_events, max_size=2),
    links=st.lists(_links, max_size=2),
    kind=st.sampled_from(list(SpanKind)),
    status=_statuses,
    start_time=_times,
    end_time=_times,
    instrumentation_scope=st.sampled_from(SCOPES),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_spans, min_size=1, max_size=4))
@example([ReadableSpan("x", SpanContext(1, 1, False), attributes={"z": -0.0, "y": 0.0})])
@example([ReadableSpan("x", SpanContext(1, 1, False), attributes={"n": math.nan})])
def test_generated_spans_encode_to_the_official_bytes(spans: list[ReadableSpan]) -> None:
    assert official_bytes(spans) == encode_spans(spans)


def test_spans_the_sdk_and_the_lean_span_make_encode_alike() -> None:
    from asgi_observe.tracing.lean_tracer import LeanTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for tracer in (provider.get_tracer("sdk"), LeanTracer(provider.get_tracer("lean"))):
        span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes={"a": 1, "b": "x"})
        span.set_attribute("http.response.status_code", 500)
        span.record_exception(ValueError("boom"))
        span.set_status(Status(StatusCode.ERROR, "ValueError: boom"))
        span.end()
    spans = list(exporter.get_finished_spans())
    assert 2 == len(spans)
    assert official_bytes(spans) == encode_spans(spans)
    provider.shutdown()


@pytest.mark.parametrize(
    "attributes",
    [
        {"big": 2**63},  # the official encoder logs and skips it
        {"surrogate": "\ud800"},
        {"mapping": {"a": 1}},
        {"object": object()},
    ],
    ids=["int-out-of-range", "lone-surrogate", "mapping", "unknown-type"],
)
def test_anything_unrecognised_is_left_to_the_official_encoder(attributes: dict[str, Any]) -> None:
    span = ReadableSpan("x", SpanContext(1, 1, False), attributes=attributes)
    assert encode_spans([span]) is None


def test_equal_resources_in_another_order_are_not_confused() -> None:
    """The resource cache is by identity: equal resources may order attributes differently."""
    first = Resource({"a": "1", "b": "2"})
    second = Resource({"b": "2", "a": "1"})
    for resource in (first, second):
        span = ReadableSpan("x", SpanContext(1, 1, False), resource=resource)
        assert official_bytes([span]) == encode_spans([span])


# --- the exporter configure() installs -----------------------------------------------


class _Receiver:
    """A loopback OTLP/HTTP receiver that keeps every request body."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_fast_exporter_posts_the_official_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from asgi_observe.setup import span_encoding
    from asgi_observe.setup.span_exporter import FastOTLPSpanExporter

    calls: list[int] = []
    real = span_encoding.encode_spans
    monkeypatch.setattr(
        "asgi_observe.setup.span_exporter.encode_spans",
        lambda spans: calls.append(len(spans)) or real(spans),
    )
    receiver = _Receiver()
    try:
        span = ReadableSpan(
            "GET /users/{user_id}",
            SpanContext(1, 2, False),
            parent=SpanContext(1, 3, True),
            attributes={"http.request.method": "GET", "http.response.status_code": 200},
            kind=SpanKind.SERVER,
            start_time=10,
            end_time=20,
        )
        for exporter_class in (FastOTLPSpanExporter, OTLPSpanExporter):
            exporter = exporter_class(endpoint=receiver.endpoint)
            assert exporter.export([span]).name == "SUCCESS"
            exporter.shutdown()
    finally:
        receiver.close()
    ours, theirs = receiver.bodies
    assert official_bytes([span]) == ours == theirs
    assert [1] == calls  # ours encoded once; the plain exporter kept the official encoder
