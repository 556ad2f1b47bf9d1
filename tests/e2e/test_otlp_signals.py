"""RED metrics and logs reach real OTLP receivers on 127.0.0.1 (HTTP/protobuf and gRPC).

The receivers decode the protobuf requests the SDK's real exporters send. A collector that
is down (a closed port, a socket that never answers) costs requests nothing, never turns
the exporter's own warnings into exported records, drops and counts what a full queue
cannot hold, and cannot hold shutdown past the flush timeout.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest
import test_otlp_export
from e2e_harness import (
    LOOPBACK,
    Collector,
    ExportedLog,
    ExportedPoint,
    Recorder,
    decode_logs_request,
    decode_metrics_request,
    free_port,
)
from otel_reset import fresh  # noqa: F401
from prometheus_client import CollectorRegistry
from test_otlp_export import lifespan, traceparent

from asgi_observe import configure, observe
from asgi_observe.frameworks.routes import ROUTE_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh")]
black_hole = test_otlp_export.black_hole  # a listening socket that never answers

WAIT_S = 15.0
DURATION = "http.server.request.duration"
app_logger = logging.getLogger("tests.e2e.signals")


async def items(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET /items/{id}: 200, or 404 for id 0; logs one line per request."""
    scope[ROUTE_KEY] = "/items/{id}"
    status = 404 if scope["path"].endswith("/0") else 200
    app_logger.warning("serving item", extra={"item": scope["path"]})
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"item"})


@pytest.fixture
def grpc_signals() -> Iterator[Collector]:
    """A gRPC receiver for metrics and logs; `.recorder` holds points and log records."""
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import (
        metrics_service_pb2,
        metrics_service_pb2_grpc,
    )

    recorder = Recorder()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            recorder.add(*decode_metrics_request(request.SerializeToString()))
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            recorder.add(*decode_logs_request(request.SerializeToString()))
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    port = server.add_insecure_port(f"{LOOPBACK}:0")
    server.start()
    try:
        yield Collector(url=f"http://{LOOPBACK}:{port}", recorder=recorder)
    finally:
        server.stop(grace=None).wait(5)


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: Any, otlp_receiver: Collector, grpc_signals: Collector) -> Iterator[Any]:
    """(protocol, collector): the HTTP receiver (fresh recorder) or the gRPC one."""
    if request.param == "grpc":
        yield request.param, grpc_signals
        return
    otlp_receiver.recorder.items.clear()
    yield request.param, otlp_receiver


def points(recorder: Recorder, name: str) -> list[ExportedPoint]:
    return [p for p in recorder.snapshot() if isinstance(p, ExportedPoint) and p.name == name]


def otlp_env(monkeypatch: pytest.MonkeyPatch, protocol: str, url: str, **extra: str) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "signals-e2e")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


# --- RED metrics over OTLP ------------------------------------------------------------


async def test_request_metrics_arrive_over_otlp_and_nothing_is_doubled(
    monkeypatch: pytest.MonkeyPatch, receiver: tuple[str, Collector]
) -> None:
    protocol, collector = receiver
    # Only the shutdown flush exports: what arrives is all that was recorded.
    otlp_env(monkeypatch, protocol, collector.url, OTEL_METRIC_EXPORT_INTERVAL="600000")
    registry = CollectorRegistry()

    async with lifespan(observe(items, registry=registry)) as client:
        for index in range(5):
            await client.get(f"/items/{index}")

    found = points(collector.recorder, DURATION)
    counts = {(p.attributes["http.route"], p.attributes["http.response.status_code"]): p.value
              for p in found}  # fmt: skip
    assert {("/items/{id}", 200): 4.0, ("/items/{id}", 404): 1.0} == counts
    assert {"s"} == {p.unit for p in found}
    assert {2} == {p.temporality for p in found}  # cumulative, the SDK's default
    assert (0.005, 0.01, 0.025) == found[0].bounds[:3]
    active = points(collector.recorder, "http.server.active_requests")
    assert [0.0] == [p.value for p in active]
    # "auto" with a meter provider and no exposition served: prometheus-client is idle.
    labels = {"http_request_method": "GET", "http_route": "/items/{id}"}
    labels["http_response_status_code"] = "200"
    assert None is registry.get_sample_value("http_server_request_duration_seconds_count", labels)


async def test_the_counts_over_otlp_equal_the_scraped_prometheus_counts(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: Collector
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    otlp_receiver.recorder.items.clear()
    otlp_env(monkeypatch, "http/protobuf", otlp_receiver.url, OTEL_METRIC_EXPORT_INTERVAL="600000")
    registry = CollectorRegistry()
    mix = {"/items/1": 6, "/items/0": 3, "/items/2": 2}  # 404 for /items/0
    # "auto" with a served exposition and a meter provider: both record every request.
    app = observe(items, registry=registry, metrics_path="/metrics")
    async with lifespan(app) as client:
        for path, times in mix.items():
            for _ in range(times):
                await client.request("POST" if path == "/items/2" else "GET", path)
        scrape = (await client.get("/metrics")).text

    prometheus = {
        (s.labels["http_request_method"], s.labels["http_response_status_code"]): s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
        if s.name == "http_server_request_duration_seconds_count"
    }
    otlp = {}
    for point in points(otlp_receiver.recorder, DURATION):
        attributes = point.attributes
        key = (attributes["http.request.method"], str(attributes["http.response.status_code"]))
        otlp[key] = point.value
    assert {("GET", "200"): 6.0, ("GET", "404"): 3.0, ("POST", "200"): 2.0} == prometheus
    assert prometheus == otlp


async def test_the_export_interval_and_delta_temporality_are_honoured(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: Collector
) -> None:
    otlp_receiver.recorder.items.clear()
    otlp_env(
        monkeypatch,
        "http/protobuf",
        otlp_receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta",
    )
    async with lifespan(observe(items)) as client:
        await client.get("/items/1")
        # Exported on the 200 ms timer, long before the shutdown flush.
        otlp_receiver.recorder.wait_for(
            lambda p: isinstance(p, ExportedPoint) and p.name == DURATION, timeout=5
        )
        await client.get("/items/2")
        await asyncio.sleep(0.6)

    found = points(otlp_receiver.recorder, DURATION)
    assert {1} == {p.temporality for p in found}  # delta
    assert 2.0 == sum(p.value for p in found)  # each request counted in one interval only


MCP_OPERATION = "mcp.server.operation.duration"


def test_mcp_metrics_of_a_real_server_arrive_over_otlp_as_scraped(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: Collector
) -> None:
    # The real mcp SDK server under uvicorn, its own client; configure() from the
    # environment. Every call counted in the exposition arrives over OTLP, once.
    import httpx
    from mcp_servers import mcp_sdk_app
    from prometheus_client.parser import text_string_to_metric_families
    from test_mcp_servers import run_mcp_client, serving

    otlp_receiver.recorder.items.clear()
    otlp_env(monkeypatch, "http/protobuf", otlp_receiver.url, OTEL_METRIC_EXPORT_INTERVAL="600000")
    registry = CollectorRegistry()
    app = observe(mcp_sdk_app(), registry=registry, metrics_path="/metrics")

    async def session() -> str:
        async with serving(app) as base:  # its lifespan shutdown flushes the meter
            await run_mcp_client(f"{base}/mcp", legacy=False, headers=False)
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{base}/metrics")).text

    scrape = asyncio.run(session())
    keys = ("mcp_method_name", "gen_ai_tool_name", "gen_ai_prompt_name", "error_type")
    scraped = {
        tuple(sample.labels[key] for key in keys): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "mcp_server_operation_duration_seconds_count"
    }
    names = ("mcp.method.name", "gen_ai.tool.name", "gen_ai.prompt.name", "error.type")
    exported = {
        tuple(str(point.attributes.get(name, "")) for name in names): point.value
        for point in points(otlp_receiver.recorder, MCP_OPERATION)
    }
    assert scraped[("tools/call", "add", "", "")] == 1.0
    assert scraped[("tools/call", "boom", "", "tool_error")] == 1.0
    assert scraped[("tools/call", "_unknown", "", "tool_error")] == 1.0
    assert scraped == exported
    assert {"s"} == {p.unit for p in points(otlp_receiver.recorder, MCP_OPERATION)}


# --- logs over OTLP -------------------------------------------------------------------


async def test_logs_arrive_over_otlp_with_the_requests_ids(
    monkeypatch: pytest.MonkeyPatch, receiver: tuple[str, Collector]
) -> None:
    protocol, collector = receiver
    otlp_env(
        monkeypatch,
        protocol,
        collector.url,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_BLRP_SCHEDULE_DELAY="60000",  # only the shutdown flush exports
    )
    trace_id, _, header = traceparent()
    async with lifespan(observe(items)) as client:
        response = await client.get("/items/3", headers={"traceparent": header})

    [log] = collector.recorder.wait_for(
        lambda item: isinstance(item, ExportedLog) and item.body == "serving item", timeout=WAIT_S
    )
    assert ("signals-e2e", trace_id, 1, 13, "WARN") == (
        log.service_name,
        log.trace_id,
        log.flags & 1,
        log.severity_number,
        log.severity_text,
    )
    assert response.headers["x-request-id"] == log.attributes["request_id"]
    assert "/items/3" == log.attributes["item"]


# --- a collector that is down ---------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("down", ["closed port", "black hole"])
async def test_logs_to_a_collector_that_is_down_never_loop_never_block_and_stop_in_time(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    black_hole: str,
    protocol: str,
    down: str,
) -> None:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    endpoint = black_hole if down == "black hole" else f"http://{LOOPBACK}:{free_port()}"
    otlp_env(
        monkeypatch,
        protocol,
        endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BLRP_SCHEDULE_DELAY="20",
        OTEL_BLRP_MAX_QUEUE_SIZE="20",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="5",
    )
    test_otlp_export.forget_duplicate_filters()
    caplog.set_level(logging.WARNING)
    handle = configure(logs_exporter="otlp")
    assert handle.log_export is not None
    # Everything the handler hands to the provider, whatever the exporter does with it.
    seen = InMemoryLogRecordExporter()
    handle.log_export.provider.add_log_record_processor(SimpleLogRecordProcessor(seen))

    async with lifespan(observe(items, configure=False)) as client:
        latencies = []
        for index in range(300):
            before = time.perf_counter()
            assert 200 == (await client.get(f"/items/{index + 1}")).status_code
            latencies.append(time.perf_counter() - before)
        await asyncio.sleep(1.5)  # let export attempts fail and the exporter warn

        started = time.monotonic()
        handle.force_flush(timeout=1.0)
        flush_s = time.monotonic() - started

    bodies = {data.log_record.body for data in seen.get_finished_logs()}
    assert {"serving item"} == bodies, "the exporter's own records were exported again"
    assert handle.log_export.dropped > 0, "a full queue must drop, and count it"
    assert statistics.median(latencies) < 0.05 and max(latencies) < 0.5, latencies
    assert flush_s < 2.0
    handle.log_export.detach()
    # One warning of ours for the whole outage, none of the exporter's own.
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asgi_observe.export" and r.getMessage().startswith("Exporting telemetry")
    ]
    theirs = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    assert (1, []) == (len(ours), theirs), ours
