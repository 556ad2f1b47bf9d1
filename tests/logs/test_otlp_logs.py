"""OTLPLogHandler: ids in their own fields, attributes, severity, scrubbed exceptions, no loops."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from asgi_observe.logs.correlation import (
    install_log_record_factory,
    request_id_var,
    uninstall_log_record_factory,
)
from asgi_observe.logs.exception_ids import RequestIds, tag_exception
from asgi_observe.logs.otlp import OTLPLogHandler, exporting, severity_number

logger = logging.getLogger("tests.otlp_logs")


class Pipeline:
    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.handler = OTLPLogHandler(self.provider, logging.DEBUG)

    @property
    def records(self) -> list[Any]:
        return [data.log_record for data in self.exporter.get_finished_logs()]


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline()
    logger.addHandler(pipeline.handler)
    logger.setLevel(logging.DEBUG)
    install_log_record_factory()
    yield pipeline
    uninstall_log_record_factory()
    logger.removeHandler(pipeline.handler)
    pipeline.provider.shutdown()


def test_a_record_in_a_request_carries_its_trace_fields_and_request_id(
    pipeline: Pipeline,
) -> None:
    tracer = TracerProvider().get_tracer("t")
    token = request_id_var.set("req-1")
    try:
        with tracer.start_as_current_span("work") as span:
            logger.info("charging %s", "card", extra={"order_id": 42})
    finally:
        request_id_var.reset(token)

    [record] = pipeline.records
    context = span.get_span_context()
    assert (context.trace_id, context.span_id, int(context.trace_flags)) == (
        record.trace_id,
        record.span_id,
        int(record.trace_flags),
    )
    assert ("charging card", "req-1", 42) == (
        record.body,
        record.attributes["request_id"],
        record.attributes["order_id"],
    )
    assert (SeverityNumber.INFO, "INFO") == (record.severity_number, record.severity_text)
    assert "trace_id" not in record.attributes  # in the record's own fields only


@pytest.mark.parametrize(
    ("level", "number", "text"),
    [
        (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
        (logging.INFO, SeverityNumber.INFO, "INFO"),
        (logging.WARNING, SeverityNumber.WARN, "WARN"),
        (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
        (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    ],
)
def test_severity_is_mapped(pipeline: Pipeline, level: int, number: Any, text: str) -> None:
    logger.log(level, "x")
    [record] = pipeline.records
    assert (number, text) == (record.severity_number, record.severity_text)


def test_levels_between_names_step_up_within_their_range() -> None:
    assert SeverityNumber.INFO2 == severity_number(logging.INFO + 1)
    assert SeverityNumber.WARN4 == severity_number(logging.WARNING + 9)
    assert SeverityNumber.TRACE == severity_number(5)


def test_an_exception_is_typed_and_scrubbed_of_secrets(pipeline: Pipeline) -> None:
    try:
        password = "hunter2-very-secret"  # noqa: F841  (a local the stack may show)
        raise PermissionError("login failed: password=hunter2-very-secret token=abc123xyz")
    except PermissionError:
        logger.exception("could not log in", extra={"api_key": "sk-live-123456"})

    [record] = pipeline.records
    attributes = record.attributes
    assert "PermissionError" == attributes["exception.type"]
    assert "hunter2" not in attributes["exception.message"]
    assert "abc123xyz" not in attributes["exception.message"]
    assert "login failed" in attributes["exception.message"]
    assert "hunter2-very-secret" not in attributes["exception.stacktrace"]
    assert "Traceback" in attributes["exception.stacktrace"]
    assert "sk-live" not in str(attributes["api_key"])


def test_the_exporters_own_records_are_never_exported_again(pipeline: Pipeline) -> None:
    exporter_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http._log_exporter")
    exporter_logger.addHandler(pipeline.handler)
    try:
        exporter_logger.warning("Failed to export logs batch")
        logging.getLogger("asgi_observe.export").warning("Exporting telemetry failed")
        with exporting():
            logger.warning("urllib3 says: connection refused")
        logger.warning("an app warning")
    finally:
        exporter_logger.removeHandler(pipeline.handler)

    assert ["an app warning"] == [record.body for record in pipeline.records]


def test_what_export_threads_log_is_not_exported(pipeline: Pipeline) -> None:
    import threading

    def in_thread(name: str) -> None:
        thread = threading.Thread(target=lambda: logger.warning(f"from {name}"), name=name)
        thread.start()
        thread.join(5)

    for name in ("OtelBatchSpanRecordProcessor", "OtelPeriodicExportingMetricReader"):
        in_thread(name)
    in_thread("app-worker")
    logging.getLogger("urllib3.connectionpool").addHandler(pipeline.handler)
    try:
        logging.getLogger("urllib3.connectionpool").warning("the app's own HTTP client")
    finally:
        logging.getLogger("urllib3.connectionpool").removeHandler(pipeline.handler)

    assert ["from app-worker", "the app's own HTTP client"] == [r.body for r in pipeline.records]


def test_attached_to_a_logger_and_its_parent_it_exports_a_record_once(
    pipeline: Pipeline,
) -> None:
    child = logging.getLogger("tests.otlp_logs.child")
    child.addHandler(pipeline.handler)
    try:
        child.warning("once")
        child.warning("once")
    finally:
        child.removeHandler(pipeline.handler)
    assert ["once", "once"] == [record.body for record in pipeline.records]


def test_the_server_error_line_carries_the_ids_of_the_request_it_escaped(
    pipeline: Pipeline,
) -> None:
    server_logger = logging.getLogger("tests.otlp_logs.server")
    exc = RuntimeError("boom")
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    tag_exception(exc, RequestIds("req-9", trace_id, span_id, True, "/items/{id}"))
    try:
        raise exc
    except RuntimeError:
        server_logger.exception("Exception in ASGI application")  # no request is current

    [record] = pipeline.records
    assert (int(trace_id, 16), int(span_id, 16), 1) == (
        record.trace_id,
        record.span_id,
        int(record.trace_flags),
    )
    assert ("req-9", "/items/{id}") == (
        record.attributes["request_id"],
        record.attributes["http.route"],
    )


def test_structlog_and_stdlib_records_go_out_together(pipeline: Pipeline) -> None:
    # The setup docs/logs.md gives: events become stdlib records, whose ids the record
    # factory stamps (add_request_context would pass them again as `extra`).
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    tracer = TracerProvider().get_tracer("t")
    token = request_id_var.set("req-7")
    try:
        with tracer.start_as_current_span("work") as span:
            structlog.get_logger("tests.otlp_logs").warning("tool failed", tool="search")
            logger.warning("stdlib line")
    finally:
        request_id_var.reset(token)
        structlog.reset_defaults()

    trace_id = span.get_span_context().trace_id
    assert [
        ("tool failed", "search", "req-7", trace_id),
        ("stdlib line", None, "req-7", trace_id),
    ] == [
        (r.body, r.attributes.get("tool"), r.attributes["request_id"], r.trace_id)
        for r in pipeline.records
    ]


def test_extras_that_are_no_otlp_type_are_sent_as_text_or_maps(pipeline: Pipeline) -> None:
    logger.info(
        "tool called",
        extra={"arguments": {"api_key": "sk-live-123456", "query": "shoes"}, "nothing": None,
               "obj": object(), "tags": ["a", "b"]},
    )  # fmt: skip
    [record] = pipeline.records
    attributes = record.attributes
    assert {"api_key": "[Filtered]", "query": "shoes"} == dict(attributes["arguments"])
    assert ("", ("a", "b")) == (attributes["nothing"], tuple(attributes["tags"]))
    assert str(attributes["obj"]).startswith("<object object")


async def test_the_access_log_goes_out_with_its_route_and_request_id(pipeline: Pipeline) -> None:
    from asgi_driver import call, http_scope, plain_app

    from asgi_observe.frameworks.routes import ROUTE_KEY
    from asgi_observe.logs.request_id import RequestIdMiddleware

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = "/orders/{id}"
        await plain_app(201)(scope, receive, send)

    app = RequestIdMiddleware(routed, access_log=logger)
    sent = await call(app, http_scope("/orders/7", method="POST"))

    [record] = pipeline.records
    request_id = sent.header(b"x-request-id")[0].decode()
    assert (request_id, "/orders/{id}", 201) == (
        record.attributes["request_id"],
        record.attributes["http.route"],
        record.attributes["status"],
    )


async def test_a_record_logged_by_a_route_handler_carries_its_route(pipeline: Pipeline) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asgi_observe.logs.request_id import RequestIdMiddleware

    async def item(request: Request) -> PlainTextResponse:
        logger.info("looking up the item")
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/items/42")
    logger.info("outside any request")

    assert [("looking up the item", "/items/{item_id}", response.headers["x-request-id"]),
            ("outside any request", None, None)] == [
        (r.body, r.attributes.get("http.route"), r.attributes.get("request_id"))
        for r in pipeline.records
    ]  # fmt: skip
