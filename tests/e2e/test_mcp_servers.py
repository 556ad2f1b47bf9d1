"""Real MCP servers of both SDKs under uvicorn on 127.0.0.1, called by each SDK's own client.

One session per SDK and protocol era runs the same calls (a tool that succeeds, one that
returns isError, one that raises, an unknown tool, a prompt, a resource, a missing
resource, a notification); the assertions read what left the process: the /metrics
exposition, the spans the OTLP receiver got, the Sentry receiver's events, and the log
lines.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import fastmcp.client  # noqa: F401 - imported here, not deep in a test (CPython 3.11 AST bug)
import httpx
import pytest
from e2e_harness import LOOPBACK, Collector, ExportedSpan, free_port
from mcp_servers import fastmcp_app, mcp_sdk_app, mounted_mcp_sdk_app, structlog_lines
from otel_reset import fresh_globals
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sentry_receiver import Receiver, sentry_client

from asgi_observe import observe
from asgi_observe.logs.correlation import JsonFormatter
from asgi_observe.mcp.exchange import session_digest

pytestmark = [pytest.mark.e2e]

SPAN_KIND_SERVER = 2
SECRET = "Bearer sk-live-e2e-0123456789abcdef"
# "mcp" and "mcp-legacy" use the client as it comes: its trace context travels only in
# params._meta. "mcp-headers" also sends it in the HTTP headers, as an instrumented HTTP
# client would.
# "mcp-mounted" serves it at /tools/mcp inside a FastAPI app.
VARIANTS = ["mcp", "mcp-legacy", "mcp-headers", "mcp-mounted", "fastmcp"]


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Run:
    """What one client session against one observed server left behind."""

    variant: str
    metrics: str = ""
    spans: list[ExportedSpan] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[dict[str, Any]] = field(default_factory=list)
    structlog_lines: list[dict[str, Any]] = field(default_factory=list)
    session_ids: set[str] = field(default_factory=set)

    def count(self, **labels: str) -> float:
        want = {"gen_ai_tool_name": "", "gen_ai_prompt_name": "", "error_type": "", **labels}
        for family in text_string_to_metric_families(self.metrics):
            for sample in family.samples:
                if sample.name == "mcp_server_operation_duration_seconds_count" and all(
                    sample.labels.get(key) == value for key, value in want.items()
                ):
                    return float(sample.value)
        return 0.0

    def sample(self, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(self.metrics):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def http_spans(self, **attributes: Any) -> list[ExportedSpan]:
        return [
            span
            for span in self.spans
            if span.kind == SPAN_KIND_SERVER
            and span.name.startswith(("POST ", "GET ", "DELETE "))
            and all(span.attributes.get(k) == v for k, v in attributes.items())
        ]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.ensure_future(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def run_mcp_client(url: str, *, legacy: bool, headers: bool) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from opentelemetry import propagate

    async def inject(request: Any) -> None:
        # What an instrumented HTTP client does: the MCP client span's context goes in
        # the headers as well as in params._meta (docs/frameworks/mcp.md, trace shape).
        propagate.inject(request.headers)

    http_client = httpx2.AsyncClient(
        headers={"authorization": SECRET},
        timeout=30,
        event_hooks={"request": [inject] if headers else []},
    )
    transport = streamable_http_client(url, http_client=http_client)
    async with http_client, Client(transport, **({"mode": "legacy"} if legacy else {})) as client:
        await client.list_tools()
        await client.list_prompts()
        assert not (await client.call_tool("add", {"a": 1, "b": 2})).is_error
        assert (await client.call_tool("soft_fail", {})).is_error
        assert (await client.call_tool("boom", {})).is_error
        assert (await client.call_tool("nope", {})).is_error
        await client.call_tool("chatty", {})
        await client.get_prompt("greet", {"name": "e2e"})
        await client.read_resource("res://greeting")
        with pytest.raises(Exception, match="res://missing"):
            await client.read_resource("res://missing")
        with warnings.catch_warnings():  # client progress is deprecated in 2026-07-28
            warnings.simplefilter("ignore")
            await client.send_progress_notification("token", 1.0)


async def run_fastmcp_client(url: str) -> None:
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    transport = StreamableHttpTransport(url, headers={"authorization": SECRET})
    async with Client(transport) as client:
        await client.list_tools()
        await client.list_prompts()
        assert not (await client.call_tool("add", {"a": 1, "b": 2})).is_error
        assert (await client.call_tool("soft_fail", {}, raise_on_error=False)).is_error
        assert (await client.call_tool("boom", {}, raise_on_error=False)).is_error
        assert (await client.call_tool("nope", {}, raise_on_error=False)).is_error
        await client.call_tool("chatty", {})
        await client.get_prompt("greet", {"name": "e2e"})
        await client.read_resource("res://greeting")
        with pytest.raises(Exception, match="res://missing"):
            await client.read_resource("res://missing")
        with warnings.catch_warnings():  # roots are deprecated in 2026-07-28
            warnings.simplefilter("ignore")
            await client.send_roots_list_changed()


@pytest.fixture(scope="module")
def tracing(otlp_receiver: Collector) -> Iterator[Any]:
    """One global SDK provider for the module: the SDKs' tracers bind to it on first use."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with fresh_globals():
        provider = TracerProvider(resource=Resource.create({"service.name": "mcp-e2e"}))
        exporter = OTLPSpanExporter(endpoint=f"{otlp_receiver.url}/v1/traces", timeout=5)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        yield provider


_runs: dict[str, Run] = {}


@pytest.fixture(scope="module", params=VARIANTS)
def run(request: pytest.FixtureRequest, tracing: Any, otlp_receiver: Collector) -> Run:
    """Serve the variant's SDK behind observe(), run its client session once, collect."""
    variant: str = request.param
    if variant in _runs:
        return _runs[variant]
    receiver = Receiver().start()
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    structlog_lines.clear()
    before = len(otlp_receiver.recorder.snapshot())
    registry = CollectorRegistry()
    try:
        with sentry_client(receiver.dsn, traces_sample_rate=None):
            builders = {"fastmcp": fastmcp_app, "mcp-mounted": mounted_mcp_sdk_app}
            app = builders.get(variant, mcp_sdk_app)()
            observed = observe(
                app, configure=False, registry=registry, metrics_path="/metrics", sentry=True
            )

            async def session() -> str:
                async with serving(observed) as base:
                    url = f"{base}/tools/mcp" if variant == "mcp-mounted" else f"{base}/mcp"
                    if variant == "fastmcp":
                        await run_fastmcp_client(url)
                    else:
                        await run_mcp_client(
                            url, legacy=variant == "mcp-legacy", headers=variant == "mcp-headers"
                        )
                    async with httpx.AsyncClient() as http:
                        return (await http.get(f"{base}/metrics")).text

            metrics = asyncio.run(session())
            import sentry_sdk

            sentry_sdk.flush(timeout=5)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        receiver.stop()
    result = Run(variant=variant, metrics=metrics)
    result.events = receiver.events
    result.structlog_lines = list(structlog_lines)
    import json

    result.log_lines = [json.loads(line) for line in handler.lines]
    tracing.force_flush()
    result.spans = otlp_receiver.recorder.snapshot()[before:]
    _runs[variant] = result
    return result


# --- metrics ------------------------------------------------------------------------------


def test_each_tool_outcome_is_its_own_series(run: Run) -> None:
    assert 1.0 == run.count(mcp_method_name="tools/call", gen_ai_tool_name="add")
    assert 1.0 == run.count(
        mcp_method_name="tools/call", gen_ai_tool_name="soft_fail", error_type="tool_error"
    )
    assert 1.0 == run.count(
        mcp_method_name="tools/call", gen_ai_tool_name="boom", error_type="tool_error"
    )
    # The client made the name up: never a label of its own.
    assert 1.0 == run.count(
        mcp_method_name="tools/call", gen_ai_tool_name="_unknown", error_type="tool_error"
    )
    assert "nope" not in run.metrics


def test_prompts_resources_and_notifications_are_measured(run: Run) -> None:
    assert 1.0 == run.count(mcp_method_name="prompts/get", gen_ai_prompt_name="greet")
    assert 1.0 == run.count(mcp_method_name="resources/read")
    assert 1.0 == run.count(mcp_method_name="resources/read", error_type="-32602")
    notification = (
        "notifications/roots/list_changed" if run.variant == "fastmcp" else "notifications/progress"
    )
    assert 1.0 == run.count(mcp_method_name=notification)


def test_the_mcp_metrics_sit_beside_the_http_ones(run: Run) -> None:
    assert "http_server_request_duration_seconds_bucket" in run.metrics
    assert 'mcp_server_operation_duration_seconds_bucket{error_type="",' in run.metrics
    assert 'le="300.0"' in run.metrics  # the semantic conventions' last bucket


def test_sessions_of_the_handshake_era(run: Run) -> None:
    if run.variant != "mcp-legacy":
        # 2026-07-28 has no session; fastmcp's client negotiates it too.
        assert (run.sample("mcp_server_sessions_active") or 0.0) == 0.0
        return
    assert 1.0 == run.count(mcp_method_name="initialize")
    # The client deleted its session on exit, before /metrics was read.
    assert 0.0 == run.sample("mcp_server_sessions_active")
    assert 1.0 == run.sample("mcp_server_session_duration_seconds_count", reason="deleted")


# --- spans --------------------------------------------------------------------------------


def test_the_http_span_carries_the_mcp_attributes(run: Run) -> None:
    [span] = run.http_spans(**{"gen_ai.tool.name": "add"})
    assert "tools/call" == span.attributes["mcp.method.name"]
    assert "execute_tool" == span.attributes["gen_ai.operation.name"]
    assert span.attributes["jsonrpc.request.id"]
    assert span.attributes["mcp.protocol.version"]
    assert "error.type" not in span.attributes
    if run.variant == "mcp-legacy":
        assert 16 == len(span.attributes["mcp.session.id"])


@pytest.mark.parametrize("tool", ["soft_fail", "boom", "nope"])
def test_tool_errors_mark_the_http_span_as_failed(run: Run, tool: str) -> None:
    [span] = run.http_spans(**{"gen_ai.tool.name": tool})
    assert 200 == span.attributes["http.response.status_code"]
    assert "tool_error" == span.attributes["error.type"]
    assert 2 == span.status_code  # ERROR


def test_a_json_rpc_error_marks_the_http_span(run: Run) -> None:
    [span] = run.http_spans(**{"mcp.resource.uri": "res://missing"})
    assert "-32602" == span.attributes["error.type"]


def test_client_http_and_sdk_mcp_spans_form_one_tree_without_duplicates(run: Run) -> None:
    [http] = run.http_spans(**{"gen_ai.tool.name": "add"})
    children = [span for span in run.spans if span.parent_span_id == http.span_id]
    assert ["tools/call add"] == [span.name for span in children]
    assert http.trace_id == children[0].trace_id
    mcp_server_spans = [
        span
        for span in run.spans
        if span.name == "tools/call add" and span.kind == SPAN_KIND_SERVER
    ]
    assert [children[0].span_id] == [span.span_id for span in mcp_server_spans]
    if run.variant != "fastmcp":  # the mcp client's own span is the HTTP span's parent
        [client] = [span for span in run.spans if span.span_id == http.parent_span_id]
        assert "MCP send tools/call add" == client.name


# --- Sentry ------------------------------------------------------------------------------


def _exception_events(run: Run) -> list[dict[str, Any]]:
    return [event for event in run.events if event.get("exception")]


def test_a_raising_tool_reaches_sentry_once_with_its_traceback(run: Run) -> None:
    [event] = [
        event
        for event in _exception_events(run)
        if "the tool exploded" in str(event["exception"]["values"])
    ]
    frames = [
        frame["function"]
        for value in event["exception"]["values"]
        for frame in (value.get("stacktrace") or {}).get("frames", [])
    ]
    assert "boom" in frames
    assert "boom" == event["tags"]["gen_ai.tool.name"]
    assert "tools/call" == event["tags"]["mcp.method.name"]
    if run.variant == "mcp-legacy":
        assert 16 == len(event["tags"]["mcp.sid"])
    assert event["tags"]["request_id"]


def test_tool_errors_and_json_rpc_errors_are_no_sentry_events(run: Run) -> None:
    tools = {event.get("tags", {}).get("gen_ai.tool.name") for event in run.events}
    assert {"boom"} == tools - {None}
    assert [] == [e for e in run.events if "res://missing" in str(e.get("tags"))]


def test_sentry_events_are_scrubbed(run: Run) -> None:
    assert SECRET.split()[1] not in str(run.events)


# --- logs ---------------------------------------------------------------------------------


def test_log_lines_during_a_call_carry_the_mcp_fields(run: Run) -> None:
    [line] = [entry for entry in run.log_lines if entry["message"] == "chatty tool runs"]
    assert "tools/call" == line["mcp_method_name"]
    assert "chatty" == line["mcp_tool_name"]
    assert line["jsonrpc_request_id"]
    assert line["request_id"] and line["trace_id"]
    [http] = run.http_spans(**{"gen_ai.tool.name": "chatty"})
    assert http.trace_id == line["trace_id"]
    assert str(http.attributes["jsonrpc.request.id"]) == line["jsonrpc_request_id"]
    [structured] = [e for e in run.structlog_lines if e.get("event") == "chatty tool runs"]
    assert ("tools/call", "chatty") == (structured["mcp_method_name"], structured["mcp_tool_name"])
    assert line["request_id"] == structured["request_id"]
    if run.variant == "mcp-legacy":
        assert line["mcp_session_id"] == http.attributes["mcp.session.id"]


def test_session_ids_never_leave_the_process(run: Run) -> None:
    # A session id is a credential: telemetry carries its digest only.
    for span in run.http_spans():
        value = span.attributes.get("mcp.session.id")
        if value is not None:
            assert 16 == len(value)


def test_session_digest_is_stable() -> None:
    assert session_digest("abc") == session_digest("abc") != session_digest("abd")
