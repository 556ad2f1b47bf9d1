"""MCP metrics through the OpenTelemetry meter: the conventions' names, attributes and caps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgi_driver import Recorder, http_scope
from mcp_apps import event, json_answer, mcp_app, sse_answer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otel_reset import fresh  # noqa: F401
from prometheus_client import CollectorRegistry
from test_middleware import POST_HEADERS, call_body, result, tools_list

from asgi_observe import observe
from asgi_observe.mcp import McpMiddleware
from asgi_observe.mcp.families import DURATION_BUCKETS

OPERATION = "mcp.server.operation.duration"
SESSION = "mcp.server.session.duration"
ACTIVE = "asgi_observe.mcp.server.active_sessions"


class Meter:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def metric(self, name: str) -> Any:
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        return metric
        return None

    def counts(self, name: str = OPERATION) -> dict[tuple[tuple[str, Any], ...], int]:
        metric = self.metric(name)
        points = metric.data.data_points if metric is not None else []
        return {tuple(sorted(p.attributes.items())): p.count for p in points}

    def active(self) -> list[float]:
        metric = self.metric(ACTIVE)
        return [p.value for p in metric.data.data_points] if metric is not None else []


@pytest.fixture
def meter() -> Iterator[Meter]:
    meter = Meter()
    yield meter
    meter.provider.shutdown()


async def post(layer: Any, body: bytes, *, method: str = "POST", headers: Any = ()) -> Recorder:
    recorder = Recorder([{"type": "http.request", "body": body}])
    scope = http_scope("/mcp", method=method, headers=[*POST_HEADERS, *headers])
    await layer(scope, recorder.receive, recorder.send)
    return recorder


def layer(app: Any, meter: Meter, backend: str, **options: Any) -> McpMiddleware:
    return McpMiddleware(
        app,
        paths=["/mcp"],
        registry=CollectorRegistry(),
        backend=backend,
        meter_provider=meter.provider,
        **options,
    )


async def test_each_outcome_is_a_point_with_the_conventions_attributes(meter: Meter) -> None:
    mcp = layer(mcp_app(json_answer(tools_list("add"))), meter, "otel")
    await post(mcp, call_body("tools/list", None))
    for answer in (result(1, isError=False), result(1, isError=True)):
        mcp.app = mcp_app(json_answer(answer))
        await post(mcp, call_body())
    mcp.app = mcp_app(json_answer({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602}}))
    await post(mcp, call_body("resources/read", None, uri="res://x"))
    assert {
        (("mcp.method.name", "tools/list"),): 1,
        (("gen_ai.tool.name", "add"), ("mcp.method.name", "tools/call")): 1,
        (
            ("error.type", "tool_error"),
            ("gen_ai.tool.name", "add"),
            ("mcp.method.name", "tools/call"),
        ): 1,
        (("error.type", "-32602"), ("mcp.method.name", "resources/read")): 1,
    } == meter.counts()
    metric = meter.metric(OPERATION)
    assert "s" == metric.unit
    assert DURATION_BUCKETS == tuple(metric.data.data_points[0].explicit_bounds)


async def test_made_up_names_are_unknown_and_the_cap_overflows(meter: Meter) -> None:
    mcp = layer(mcp_app(json_answer(result(1))), meter, "otel", names=["add"], max_label_sets=2)
    for name in ("add", "made-up-1", "made-up-2", "made-up-3"):
        await post(mcp, call_body(name=name))
    await post(mcp, call_body("prompts/get", "x"))
    assert {
        (("gen_ai.tool.name", "add"), ("mcp.method.name", "tools/call")): 1,
        (("gen_ai.tool.name", "_unknown"), ("mcp.method.name", "tools/call")): 3,
        (("otel.metric.overflow", True),): 1,
    } == meter.counts()


async def test_sessions_are_counted_and_timed_by_how_they_ended(meter: Meter) -> None:
    mcp = layer(
        mcp_app(sse_answer(event(result(1, protocolVersion="2025-11-25")), session=b"s-1")),
        meter,
        "otel",
    )
    await post(mcp, call_body("initialize", None, protocolVersion="2025-11-25"))
    assert [1] == meter.active()
    mcp.app = mcp_app(json_answer(b"", status=200))
    await post(mcp, b"", method="DELETE", headers=[(b"mcp-session-id", b"s-1")])
    assert [0] == meter.active()
    assert {(("asgi_observe.mcp.session.end_reason", "deleted"),): 1} == meter.counts(SESSION)


async def test_both_backends_record_every_call_once(meter: Meter) -> None:
    registry = CollectorRegistry()
    mcp = McpMiddleware(
        mcp_app(json_answer(result(1, isError=True))),
        paths=["/mcp"],
        registry=registry,
        names=["add"],
        backend="both",
        meter_provider=meter.provider,
    )
    for _ in range(3):
        await post(mcp, call_body())
    labels = {
        "mcp_method_name": "tools/call",
        "gen_ai_tool_name": "add",
        "gen_ai_prompt_name": "",
        "error_type": "tool_error",
    }
    prometheus = registry.get_sample_value("mcp_server_operation_duration_seconds_count", labels)
    assert 3.0 == prometheus
    assert [3] == list(meter.counts().values())


async def test_otel_alone_leaves_the_registry_empty(meter: Meter) -> None:
    registry = CollectorRegistry()
    mcp = McpMiddleware(
        mcp_app(json_answer(result(1))),
        paths=["/mcp"],
        registry=registry,
        backend="otel",
        meter_provider=meter.provider,
    )
    await post(mcp, call_body())
    assert [] == [m.name for m in registry.collect() if m.name.startswith("mcp_")]
    assert 1 == sum(meter.counts().values())


def test_a_bad_backend_or_meter_provider_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend"):
        McpMiddleware(mcp_app(json_answer(result(1))), paths=["/mcp"], backend="statsd")
    with pytest.raises(TypeError, match="MeterProvider"):
        McpMiddleware(mcp_app(json_answer(result(1))), paths=["/mcp"], meter_provider=object())


@pytest.mark.usefixtures("fresh")
async def test_observe_records_mcp_where_it_records_http(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import metrics

    meter = Meter()
    metrics.set_meter_provider(meter.provider)
    registry = CollectorRegistry()
    app = observe(
        mcp_app(json_answer(result(1))),
        configure=False,
        registry=registry,
        mcp_paths=["/mcp"],
        metrics_backend="otel",
    )
    await post(app, call_body())
    assert [] == [m.name for m in registry.collect() if m.name.startswith("mcp_")]
    assert 1 == sum(meter.counts().values())
    assert 1 == sum(meter.counts("http.server.request.duration").values())
    meter.provider.shutdown()
