"""Log correlation: record factory, filter, JSON formatter, structlog processor."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import asgi_observe.logs.correlation as observe_logging
from asgi_observe.logs.correlation import (
    JsonFormatter,
    RequestContextFilter,
    add_request_context,
    install_log_record_factory,
    request_id_var,
    uninstall_log_record_factory,
)

logger = logging.getLogger("tests.logging")


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture
def factory() -> Iterator[None]:
    original = logging.getLogRecordFactory()
    install_log_record_factory()
    yield
    uninstall_log_record_factory()
    logging.setLogRecordFactory(original)


@pytest.fixture
def in_request() -> Iterator[str]:
    token = request_id_var.set("req-1")
    yield "req-1"
    request_id_var.reset(token)


@pytest.fixture
def tracer() -> Iterator[trace.Tracer]:
    provider = TracerProvider()
    yield provider.get_tracer("tests")
    provider.shutdown()


def ids(record: Any) -> tuple[Any, Any, Any]:
    return record.request_id, record.trace_id, record.span_id


def hex_ids(span: trace.Span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- record factory -------------------------------------------------------------------


def test_factory_sets_none_outside_a_request(factory: None, records: list[Any]) -> None:
    logger.info("outside")
    assert (None, None, None) == ids(records[0])


def test_factory_sets_request_id_without_a_span(
    factory: None, in_request: str, records: list[Any]
) -> None:
    logger.info("no span")
    assert ("req-1", None, None) == ids(records[0])


def test_factory_sets_current_span_ids_as_lowercase_hex(
    factory: None, in_request: str, tracer: trace.Tracer, records: list[Any]
) -> None:
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner") as span:
        logger.info("in span")
    trace_id, span_id = hex_ids(span)
    assert ("req-1", trace_id, span_id) == ids(records[0])
    assert re.fullmatch("[0-9a-f]{32}", records[0].trace_id)
    assert re.fullmatch("[0-9a-f]{16}", records[0].span_id)


def test_factory_ignores_spans_outside_a_request(
    factory: None, tracer: trace.Tracer, records: list[Any]
) -> None:
    with tracer.start_as_current_span("background"):
        logger.info("not a request")
    assert (None, None, None) == ids(records[0])


def test_invalid_span_gives_no_trace_ids(
    factory: None, in_request: str, records: list[Any]
) -> None:
    with trace.use_span(trace.INVALID_SPAN):
        logger.info("invalid")
    assert ("req-1", None, None) == ids(records[0])


def test_install_is_idempotent(factory: None) -> None:
    installed = logging.getLogRecordFactory()
    install_log_record_factory()
    assert installed is logging.getLogRecordFactory()


def test_factory_chains_the_existing_factory(records: list[Any]) -> None:
    original = logging.getLogRecordFactory()

    def custom(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.custom = "kept"
        return record

    logging.setLogRecordFactory(custom)
    install_log_record_factory()
    token = request_id_var.set("chained")
    try:
        logger.info("chained")
    finally:
        request_id_var.reset(token)
        uninstall_log_record_factory()
    assert custom is logging.getLogRecordFactory()
    logging.setLogRecordFactory(original)
    assert ("kept", "chained") == (records[0].custom, records[0].request_id)


def test_uninstall_restores_the_previous_factory() -> None:
    original = logging.getLogRecordFactory()
    install_log_record_factory()
    uninstall_log_record_factory()
    assert original is logging.getLogRecordFactory()


def test_uninstall_keeps_a_factory_chained_on_top(records: list[Any]) -> None:
    original = logging.getLogRecordFactory()
    install_log_record_factory()
    ours = logging.getLogRecordFactory()

    def on_top(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(on_top)
    uninstall_log_record_factory()
    try:
        assert on_top is logging.getLogRecordFactory()
        logger.info("still works")
        assert ["still works"] == [r.getMessage() for r in records]
    finally:
        logging.setLogRecordFactory(original)


def test_a_broken_factory_below_ours_does_not_lose_the_log_line(records: list[Any]) -> None:
    original = logging.getLogRecordFactory()

    def broken(*args: Any, **kwargs: Any) -> logging.LogRecord:
        raise RuntimeError("broken factory")

    logging.setLogRecordFactory(broken)
    install_log_record_factory()
    token = request_id_var.set("survives")
    try:
        logger.warning("hello %s", "world")
    finally:
        request_id_var.reset(token)
        uninstall_log_record_factory()
        logging.setLogRecordFactory(original)
    assert [("hello world", "survives")] == [(r.getMessage(), r.request_id) for r in records]


def test_a_record_refusing_attributes_is_still_logged(records: list[Any]) -> None:
    original = logging.getLogRecordFactory()

    class Frozen(logging.LogRecord):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in ("request_id", "trace_id", "span_id"):
                raise AttributeError(name)
            super().__setattr__(name, value)

    logging.setLogRecordFactory(Frozen)
    install_log_record_factory()
    try:
        logger.info("frozen")
    finally:
        uninstall_log_record_factory()
        logging.setLogRecordFactory(original)
    assert ["frozen"] == [r.getMessage() for r in records]


def test_broken_tracing_keeps_the_request_id(
    factory: None, in_request: str, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("tracing is broken")

    monkeypatch.setattr(observe_logging, "get_current_span", broken)
    logger.info("still logged")
    assert ("req-1", None, None) == ids(records[0])


# --- filter ---------------------------------------------------------------------------


def make_record(msg: str = "message", *args: Any, **attributes: Any) -> logging.LogRecord:
    record = logging.LogRecord("tests.logging", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(attributes)
    return record


def test_filter_adds_ids_and_never_drops(in_request: str, tracer: trace.Tracer) -> None:
    record = make_record()
    with tracer.start_as_current_span("span") as span:
        kept = RequestContextFilter().filter(record)
    assert (True, ("req-1", *hex_ids(span))) == (kept, ids(record))


def test_filter_keeps_ids_a_record_already_carries(in_request: str) -> None:
    record = make_record(request_id="from-elsewhere", trace_id=None, span_id=None)
    RequestContextFilter().filter(record)
    assert ("from-elsewhere", None, None) == ids(record)


def test_filter_outside_a_request_sets_none() -> None:
    record = make_record()
    RequestContextFilter().filter(record)
    assert (None, None, None) == ids(record)


# --- JSON formatter -------------------------------------------------------------------


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_json_has_the_documented_keys(in_request: str) -> None:
    record = make_record("hello %s", "world")
    record.created = 1_700_000_000.123456
    assert {
        "timestamp": "2023-11-14T22:13:20.123456Z",
        "level": "INFO",
        "logger": "tests.logging",
        "message": "hello world",
        "request_id": "req-1",
        "trace_id": None,
        "span_id": None,
    } == formatted(record)


def test_json_timestamp_is_iso_8601_utc() -> None:
    record = make_record()
    parsed = datetime.fromisoformat(formatted(record)["timestamp"].replace("Z", "+00:00"))
    assert datetime.fromtimestamp(record.created, tz=timezone.utc) == parsed


def test_json_prefers_ids_carried_by_the_record(in_request: str) -> None:
    record = make_record(request_id="carried", trace_id="t" * 32, span_id="s" * 16)
    entry = formatted(record)
    assert ("carried", "t" * 32, "s" * 16) == (
        entry["request_id"],
        entry["trace_id"],
        entry["span_id"],
    )


def test_json_includes_exception_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    exception = formatted(record)["exception"]
    assert exception.startswith("Traceback") and exception.endswith("ValueError: boom")


def test_json_includes_extra_fields_and_renders_the_unserialisable() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    class Custom:
        def __str__(self) -> str:
            return "custom!"

    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    record = make_record(
        user=42, tags=["a"], custom=Custom(), bad=Unprintable(), when=when, raw=b"\xff"
    )
    entry = formatted(record)
    assert {
        "user": 42,
        "tags": ["a"],
        "custom": "custom!",
        "bad": "<unrepresentable Unprintable>",
        "when": "2024-01-02T03:04:05+00:00",
        "raw": "b'\\xff'",
    } == {key: entry[key] for key in ("user", "tags", "custom", "bad", "when", "raw")}


def test_json_keys_win_over_extra_fields_of_the_same_name() -> None:
    entry = formatted(make_record(level="shadow", logger="shadow", order=1))
    assert ("INFO", "tests.logging", 1) == (entry["level"], entry["logger"], entry["order"])


def test_json_survives_circular_and_non_string_keys() -> None:
    circular: list[Any] = []
    circular.append(circular)
    entry = formatted(make_record(loop=circular, mapping={(1, 2): "x"}))
    assert ("[[...]]", "{(1, 2): 'x'}", "message") == (
        entry["loop"],
        entry["mapping"],
        entry["message"],
    )


def test_json_survives_bad_format_arguments() -> None:
    entry = formatted(make_record("%d items", "not a number"))
    assert "%d items % ('not a number',)" == entry["message"]


def test_json_formatter_through_a_real_handler(factory: None, in_request: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        logger.warning("shipped", extra={"order": 7})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert ("shipped", "WARNING", "req-1", 7) == (
        entry["message"],
        entry["level"],
        entry["request_id"],
        entry["order"],
    )


# --- structlog ------------------------------------------------------------------------


def test_structlog_processor_adds_ids(in_request: str, tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("span") as span:
        event = add_request_context(None, "info", {"event": "hi"})
    assert {"event": "hi", "request_id": "req-1"} | dict(
        zip(("trace_id", "span_id"), hex_ids(span), strict=True)
    ) == event


def test_structlog_processor_keeps_bound_values(in_request: str) -> None:
    event = add_request_context(None, "info", {"event": "hi", "request_id": "bound"})
    assert "bound" == event["request_id"]


def test_structlog_processor_outside_a_request() -> None:
    event = add_request_context(None, "info", {"event": "hi"})
    assert {"event": "hi", "request_id": None, "trace_id": None, "span_id": None} == event


def test_structlog_pipeline(in_request: str) -> None:
    captured: list[Any] = []

    def capture(_: Any, __: str, event_dict: Any) -> Any:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[add_request_context, capture])
    try:
        structlog.get_logger().info("through structlog", order=3)
    finally:
        structlog.reset_defaults()
    assert [("through structlog", 3, "req-1")] == [
        (e["event"], e["order"], e["request_id"]) for e in captured
    ]


def test_json_leaves_out_uvicorns_colour_copy_of_the_message() -> None:
    entry = formatted(make_record(color_message="\x1b[32mok\x1b[0m", order=2))
    assert (False, 2) == ("color_message" in entry, entry["order"])


async def test_a_line_logged_outside_the_tracing_layer_carries_the_request_trace(
    span_capture: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The request-id layer sits outside the span's context; its lines still name the trace."""
    from asgi_driver import call, http_scope

    from asgi_observe.logs.request_id import RequestIdMiddleware
    from asgi_observe.tracing.middleware import TracingMiddleware

    async def answers_then_raises(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"oops"})
        raise RuntimeError("after the response")

    stack = RequestIdMiddleware(
        TracingMiddleware(answers_then_raises, tracer_provider=span_capture.provider),
        error_response=True,
    )
    install_log_record_factory()
    try:
        with caplog.at_level(logging.ERROR, logger="asgi_observe.request_id"):
            await call(stack, http_scope())
    finally:
        uninstall_log_record_factory()
    (span,) = span_capture.spans
    (line,) = [r for r in caplog.records if r.name == "asgi_observe.request_id"]
    assert (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")) == (
        line.trace_id,  # type: ignore[attr-defined]
        line.span_id,  # type: ignore[attr-defined]
    )
