"""Spans reach real OTLP receivers on 127.0.0.1 (HTTP/protobuf and gRPC); a down one costs nothing.

The HTTP receiver is the harness's http.server decoding ExportTraceServiceRequest; the
gRPC one is a grpc.server implementing TraceServiceServicer. Requests carry a
traceparent, go through observe(), and the spans must arrive with the inbound trace id
and the configured service.name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import (
    BIN_DIR,
    LOOPBACK,
    Collector,
    ExportedSpan,
    Recorder,
    clean_env,
    decode_export_request,
    free_port,
    http_ready,
    running,
)
from otel_reset import fresh  # noqa: F401

from asgi_observe import observe
from asgi_observe.setup.export_log import EXPORT_LOGGER_NAME, install_export_failure_filter

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh")]

SPAN_KIND_SERVER = 2
WAIT_S = 15.0


def traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan, yield a client for it, then shut it down (which flushes)."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan"}, incoming.get, answers.put))
    await incoming.put({"type": "lifespan.startup"})
    assert "lifespan.startup.complete" == (await asyncio.wait_for(answers.get(), 5))["type"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await incoming.put({"type": "lifespan.shutdown"})
    assert "lifespan.shutdown.complete" == (await asyncio.wait_for(answers.get(), 15))["type"]
    await asyncio.wait_for(task, 5)


def server_span(recorder: Recorder, trace_id: str) -> ExportedSpan:
    [span] = recorder.wait_for(
        lambda span: span.trace_id == trace_id and span.kind == SPAN_KIND_SERVER, timeout=WAIT_S
    )
    return span


# --- the receivers ------------------------------------------------------------------------


@pytest.fixture
def grpc_receiver() -> Iterator[Collector]:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    recorder = Recorder()

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            recorder.add(*decode_export_request(request.SerializeToString()))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port(f"{LOOPBACK}:0")
    server.start()
    try:
        yield Collector(url=f"http://{LOOPBACK}:{port}", recorder=recorder)
    finally:
        server.stop(grace=None).wait(5)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A listening socket that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):  # the 0.1 s timeout, to check `stop`
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


# --- spans arrive -------------------------------------------------------------------------


async def test_otlp_http_receives_the_server_span_with_the_inbound_trace_id(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: Collector
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otlp-http-e2e")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flush exports
    trace_id, parent_id, header = traceparent()

    async with lifespan(observe(hello)) as client:
        response = await client.get("/hello", headers={"traceparent": header})

    assert 200 == response.status_code
    span = server_span(otlp_receiver.recorder, trace_id)
    assert ("otlp-http-e2e", parent_id, "GET") == (
        span.service_name,
        span.parent_span_id,
        span.name,
    )


async def test_otlp_grpc_receives_the_server_span_with_the_inbound_trace_id(
    monkeypatch: pytest.MonkeyPatch, grpc_receiver: Collector
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otlp-grpc-e2e")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    trace_id, parent_id, header = traceparent()

    async with lifespan(observe(hello)) as client:
        await client.get("/hello", headers={"traceparent": header})

    span = server_span(grpc_receiver.recorder, trace_id)
    assert ("otlp-grpc-e2e", parent_id) == (span.service_name, span.parent_span_id)
    assert 200 == span.attributes["http.response.status_code"]


def test_the_last_span_of_a_server_stopped_with_sigterm_arrives(
    tmp_path: Path, otlp_receiver: Collector
) -> None:
    (tmp_path / "sigterm_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'bye'})\n"
    )
    port = free_port()
    env = clean_env(
        {
            "OTEL_SERVICE_NAME": "sigterm-e2e",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
            "OTEL_METRICS_EXPORTER": "none",
            # Nothing is exported on a timer: only the shutdown flush can deliver it.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
        }
    )
    argv = [str(BIN_DIR / "asgi-observe"), "run", "sigterm_app:app", "--app-dir", str(tmp_path)]
    trace_id, parent_id, header = traceparent()
    with running(
        [*argv, "--port", str(port)],
        log_path=tmp_path / "server.log",
        env=env,
        ready=http_ready("/metrics", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    ) as server:
        response = httpx.get(server.base_url + "/last", headers={"traceparent": header}, timeout=5)
        time.sleep(0.2)
        assert [] == [s for s in otlp_receiver.recorder.snapshot() if s.trace_id == trace_id]
        server.popen.send_signal(signal.SIGTERM)
        server.popen.wait(timeout=20)

    assert 200 == response.status_code
    span = server_span(otlp_receiver.recorder, trace_id)
    assert ("sigterm-e2e", parent_id) == (span.service_name, span.parent_span_id)


# --- an exporter that is down -------------------------------------------------------------


async def latencies(
    client: httpx.AsyncClient, *, seconds: float = 0.0, count: int = 0
) -> list[float]:
    """Request /hello `count` times, then keep going until `seconds` have passed."""
    measured: list[float] = []
    start = time.monotonic()
    while len(measured) < count or time.monotonic() - start < seconds:
        before = time.perf_counter()
        response = await client.get("/hello")
        measured.append(time.perf_counter() - before)
        assert 200 == response.status_code
        if seconds:
            await asyncio.sleep(0.005)  # spread spans over several export attempts
    return measured


async def baseline_median() -> float:
    from otel_reset import fresh_globals

    with fresh_globals():  # an SDK provider with no exporter at all
        async with lifespan(observe(hello)) as client:
            await latencies(client, count=50)  # warm up
            return statistics.median(await latencies(client, count=200))


def forget_duplicate_filters() -> None:
    """Reset the SDK's DuplicateFilter: it hides a message template seen in the last 20 s,
    which an earlier test in this process may have logged already."""
    for name in (
        "opentelemetry.exporter.otlp.proto.grpc.exporter",
        "opentelemetry.sdk._shared_internal",
    ):
        for log_filter in logging.getLogger(name).filters:
            if hasattr(log_filter, "last_log"):
                del log_filter.last_log


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("down", ["closed port", "black hole"])
async def test_an_exporter_that_is_down_costs_requests_nothing_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    black_hole: str,
    protocol: str,
    down: str,
) -> None:
    base = await baseline_median()
    forget_duplicate_filters()
    endpoint = black_hole if down == "black hole" else f"http://{LOOPBACK}:{free_port()}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

    with caplog.at_level(logging.WARNING):
        app = observe(hello)
        async with lifespan(app) as client:
            await latencies(client, count=50)
            measured = await latencies(client, seconds=2.5, count=200)
        exporter_filter = install_export_failure_filter()

    down_median = statistics.median(measured)
    # Generous: a blocked export would cost a whole second (the exporter's timeout).
    assert down_median < base * 3 + 0.002, (base, down_median)
    assert max(measured) < 0.5, max(measured)
    # The gRPC exporter's own DuplicateFilter already drops a repeated identical error
    # (a black hole times out the same way every time) before ours counts it.
    repeated = 1 if (protocol, down) == ("grpc", "black hole") else 2
    assert exporter_filter.collapsed >= repeated, "the exporter kept failing"
    ours = [r for r in caplog.records if r.name == EXPORT_LOGGER_NAME]
    theirs = [r for r in caplog.records if r.name.startswith("opentelemetry")]
    assert 1 == len(ours), [r.getMessage() for r in ours]
    assert [] == [r.getMessage() for r in theirs]
