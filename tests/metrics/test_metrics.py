"""MetricsMiddleware driven by raw ASGI apps: names, labels, timing, sizes, cap, exemplars."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgi_driver import Recorder, call, http_scope, plain_app, websocket_scope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from asgi_observe._core.record import RECORD_KEY, RequestRecord, ensure_record
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.metrics import families as _metric_families
from asgi_observe.metrics.families import EXEMPLAR_INTERVAL_S, families_for
from asgi_observe.metrics.middleware import MetricsMiddleware

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


def labels(method: str = "GET", route: str = "/r", status: str = "200") -> dict[str, str]:
    return {"http_request_method": method, "http_route": route, "http_response_status_code": status}


def count(registry: CollectorRegistry, name: str = DURATION, **kw: str) -> float | None:
    return registry.get_sample_value(name + "_count", labels(**kw))


def total(registry: CollectorRegistry, name: str = DURATION, **kw: str) -> float | None:
    return registry.get_sample_value(name + "_sum", labels(**kw))


def routed(app: Any, route: str = "/r") -> Any:
    """A raw app that publishes its route like the Quart hook does."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = route
        await app(scope, receive, send)

    return wrapper


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def test_counts_a_request_under_method_route_and_status(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(routed(plain_app(201)), registry=registry)
    await call(app, http_scope("/r", method="POST"))
    assert 1.0 == count(registry, method="POST", status="201")
    assert 0.0 == registry.get_sample_value(ACTIVE, {"http_request_method": "POST"})


async def test_no_route_shares_the_unmatched_label(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(plain_app(404), registry=registry)
    for path in ("/a", "/b", "/c"):
        await call(app, http_scope(path))
    assert 3.0 == count(registry, route="_unmatched", status="404")


async def test_namespace_prefixes_every_name(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(routed(plain_app()), registry=registry, namespace="shop")
    await call(app, http_scope())
    assert 1.0 == count(registry, "shop_" + DURATION)
    assert 0.0 == registry.get_sample_value("shop_" + ACTIVE, {"http_request_method": "GET"})


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("GET", "GET"),
        ("QUERY", "QUERY"),
        ("BREW", "_OTHER"),
        ("get", "_OTHER"),
        ("X" * 500, "_OTHER"),
    ],
)
async def test_unknown_methods_are_normalised(
    registry: CollectorRegistry, method: str, expected: str
) -> None:
    app = MetricsMiddleware(routed(plain_app()), registry=registry)
    await call(app, http_scope(method=method))
    assert 1.0 == count(registry, method=expected)


async def test_known_methods_option(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(routed(plain_app()), registry=registry, known_methods=["GET", "BREW"])
    await call(app, http_scope(method="BREW"))
    await call(app, http_scope(method="PUT"))
    assert (1.0, 1.0) == (count(registry, method="BREW"), count(registry, method="_OTHER"))


@pytest.mark.parametrize("status", [100, 204, 299, 418, 503, 599])
async def test_statuses_are_kept_exact(registry: CollectorRegistry, status: int) -> None:
    app = MetricsMiddleware(routed(plain_app(status)), registry=registry)
    await call(app, http_scope())
    assert 1.0 == count(registry, status=str(status))


async def test_exception_before_the_response_counts_as_500(registry: CollectorRegistry) -> None:
    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    app = MetricsMiddleware(routed(boom), registry=registry)
    with pytest.raises(RuntimeError, match="boom"):
        await call(app, http_scope())
    assert 1.0 == count(registry, status="500")
    assert 0.0 == registry.get_sample_value(ACTIVE, {"http_request_method": "GET"})


async def test_exception_mid_stream_counts_as_500(registry: CollectorRegistry) -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        raise RuntimeError("half")

    app = MetricsMiddleware(routed(half), registry=registry)
    with pytest.raises(RuntimeError):
        await call(app, http_scope())
    assert (None, 1.0) == (count(registry, status="200"), count(registry, status="500"))


async def test_exception_after_the_response_keeps_the_sent_status(
    registry: CollectorRegistry,
) -> None:
    async def background_fails(scope: Any, receive: Any, send: Any) -> None:
        await plain_app(200)(scope, receive, send)
        raise RuntimeError("background task")

    app = MetricsMiddleware(routed(background_fails), registry=registry)
    with pytest.raises(RuntimeError):
        await call(app, http_scope())
    assert (1.0, None) == (count(registry, status="200"), count(registry, status="500"))


async def test_returning_without_a_response_counts_as_500(registry: CollectorRegistry) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    await call(MetricsMiddleware(routed(silent), registry=registry), http_scope())
    assert 1.0 == count(registry, status="500")


async def test_returning_mid_stream_keeps_the_started_status(registry: CollectorRegistry) -> None:
    async def truncated(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})

    await call(MetricsMiddleware(routed(truncated), registry=registry), http_scope())
    assert 1.0 == count(registry, status="200")


async def test_duration_stops_at_the_final_response_event(registry: CollectorRegistry) -> None:
    """Work after the last body chunk (a background task) is not in the duration."""

    async def then_sleep(scope: Any, receive: Any, send: Any) -> None:
        await plain_app()(scope, receive, send)
        await asyncio.sleep(0.3)

    await call(MetricsMiddleware(routed(then_sleep), registry=registry), http_scope())
    assert (total(registry) or 1.0) < 0.2


async def test_duration_covers_a_streamed_body(registry: CollectorRegistry) -> None:
    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    await call(MetricsMiddleware(routed(stream), registry=registry), http_scope())
    assert (total(registry) or 0.0) >= 0.2


async def test_duration_is_the_shared_record_duration(registry: CollectorRegistry) -> None:
    """The histogram observes the very clock reading every other layer reports."""
    records: list[RequestRecord] = []

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        scope, record = ensure_record(scope)
        records.append(record)
        await inner(scope, receive, send)

    inner = MetricsMiddleware(routed(plain_app()), registry=registry)
    await call(outer, http_scope())
    assert records[0].duration_s == total(registry)


async def test_in_flight_until_the_response_ends(registry: CollectorRegistry) -> None:
    seen: list[float | None] = []

    def active() -> float | None:
        return registry.get_sample_value(ACTIVE, {"http_request_method": "GET"})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(active())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        seen.append(active())
        await send({"type": "http.response.body", "body": b""})
        seen.append(active())  # background work after the response: no longer in flight

    await call(MetricsMiddleware(routed(app), registry=registry), http_scope())
    assert [1.0, 1.0, 0.0] == seen


async def test_body_sizes_are_what_flowed(registry: CollectorRegistry) -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        received = 0
        while True:
            message = await receive()
            received += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 7, "more_body": True})
        await send({"type": "http.response.body", "body": b"y" * received})

    app = MetricsMiddleware(routed(echo), registry=registry, record_body_sizes=True)
    incoming = [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"defgh", "more_body": False},
    ]
    await call(app, http_scope(method="POST"), Recorder(incoming))
    request = total(registry, "http_server_request_body_size_bytes", method="POST")
    response = total(registry, "http_server_response_body_size_bytes", method="POST")
    assert (8.0, 15.0) == (request, response)


async def test_body_sizes_are_off_by_default(registry: CollectorRegistry) -> None:
    await call(MetricsMiddleware(routed(plain_app()), registry=registry), http_scope())
    assert None is count(registry, "http_server_response_body_size_bytes")


def with_span(app: Any, flags: int, trace_id: int = TRACE_ID) -> Any:
    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        scope, record = ensure_record(scope)
        record.span = NonRecordingSpan(SpanContext(trace_id, 0x1234, False, TraceFlags(flags)))
        await app(scope, receive, send)

    return wrapper


async def test_sampled_span_adds_its_trace_id_as_exemplar(registry: CollectorRegistry) -> None:
    app = with_span(MetricsMiddleware(routed(plain_app()), registry=registry), 1)
    await call(app, http_scope())
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"}' in openmetrics(registry).decode()


@pytest.mark.parametrize(
    ("flags", "options"), [(0, {}), (1, {"exemplars": False})], ids=["not-sampled", "disabled"]
)
async def test_no_exemplar(registry: CollectorRegistry, flags: int, options: Any) -> None:
    app = with_span(MetricsMiddleware(routed(plain_app()), registry=registry, **options), flags)
    await call(app, http_scope())
    assert "trace_id" not in openmetrics(registry).decode()


def test_each_bucket_takes_one_exemplar_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets as prometheus-client counts them: a value equal to a bound is in its bucket."""
    now = [1000.0]
    monkeypatch.setattr(_metric_families, "_monotonic", lambda: now[0])
    families = families_for(
        CollectorRegistry(), "", buckets=(0.1, 1.0), body_sizes=False, max_label_sets=10
    )
    series = families.children(("GET", "/r", 200))
    values = (0.05, 0.1, 0.5, 1.0, 7.0, 9.0)
    assert [True, False, True, False, True, False] == [series.wants_exemplar(v) for v in values]
    now[0] += EXEMPLAR_INTERVAL_S
    assert [True, True, True] == [series.wants_exemplar(v) for v in (0.1, 1.0, 9.0)]


async def test_a_bucket_keeps_its_exemplar_until_the_interval_passed(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_metric_families, "_monotonic", lambda: now[0])
    metrics = MetricsMiddleware(routed(plain_app()), registry=registry)
    for trace_id in (0xA1, 0xB2):
        await call(with_span(metrics, 1, trace_id), http_scope())
    assert f'trace_id="{0xA1:032x}"' in openmetrics(registry).decode()
    now[0] += EXEMPLAR_INTERVAL_S
    await call(with_span(metrics, 1, 0xC3), http_scope())
    exposition = openmetrics(registry).decode()
    assert (False, True) == (f"{0xA1:032x}" in exposition, f"{0xC3:032x}" in exposition)
    assert 3.0 == count(registry)


async def test_no_exemplars_in_multiprocess_mode(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app = with_span(MetricsMiddleware(routed(plain_app()), registry=registry), 1)
    await call(app, http_scope())
    assert "trace_id" not in openmetrics(registry).decode()


async def test_label_sets_past_the_cap_go_to_one_overflow_set(registry: CollectorRegistry) -> None:
    async def by_path(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = scope["path"]  # a buggy resolver: every path is a route
        await plain_app()(scope, receive, send)

    app = MetricsMiddleware(by_path, registry=registry, max_label_sets=3)
    for i in range(50):
        await call(app, http_scope(f"/item/{i}"))
    series = {
        tuple(sorted(sample.labels.items()))
        for metric in registry.collect()
        if metric.name == DURATION
        for sample in metric.samples
        if sample.name.endswith("_count")
    }
    assert 4 == len(series)
    assert 47.0 == count(registry, method="_overflow", route="_overflow", status="_overflow")


async def test_label_children_are_bound_once(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(routed(plain_app()), registry=registry)
    families = app._families
    await call(app, http_scope())
    first = families.children(("GET", "/r", 200))
    await call(app, http_scope())
    assert first is families.children(("GET", "/r", 200))
    assert 2.0 == count(registry)


async def test_middlewares_sharing_a_registry_share_their_metrics(
    registry: CollectorRegistry,
) -> None:
    first = MetricsMiddleware(routed(plain_app()), registry=registry)
    second = MetricsMiddleware(routed(plain_app()), registry=registry)
    await call(first, http_scope())
    await call(second, http_scope())
    assert 2.0 == count(registry)
    MetricsMiddleware(plain_app(), registry=registry, namespace="other")


def test_same_registry_and_namespace_with_other_settings_is_refused(
    registry: CollectorRegistry,
) -> None:
    MetricsMiddleware(plain_app(), registry=registry)
    with pytest.raises(ValueError, match="already exist"):
        MetricsMiddleware(plain_app(), registry=registry, record_body_sizes=True)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"namespace": "1bad"}, ValueError),
        ({"namespace": "has-dash"}, ValueError),
        ({"max_label_sets": 0}, ValueError),
        ({"max_label_sets": True}, ValueError),
        ({"buckets": []}, ValueError),
        ({"buckets": [1.0, 0.5]}, ValueError),
        ({"buckets": [0, 1]}, ValueError),
        ({"registry": object()}, TypeError),
        ({"route_resolver": "/r"}, TypeError),
        ({"known_methods": "GET"}, TypeError),
    ],
)
def test_options_are_validated(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        MetricsMiddleware(plain_app(), registry=CollectorRegistry(), **options)


async def test_route_resolver_option(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(plain_app(), registry=registry, route_resolver=lambda s: "/custom")
    await call(app, http_scope("/anything"))
    assert 1.0 == count(registry, route="/custom")


async def test_failing_route_resolver_does_not_change_the_response(
    registry: CollectorRegistry,
) -> None:
    def broken(scope: Any) -> str:
        raise KeyError("nope")

    app = MetricsMiddleware(plain_app(), registry=registry, route_resolver=broken)
    assert 200 == (await call(app, http_scope())).status
    assert 1.0 == count(registry, route="_unmatched")


async def test_a_metrics_fault_is_logged_not_raised(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = MetricsMiddleware(routed(plain_app()), registry=registry)

    def broken(key: Any) -> Any:
        raise RuntimeError("registry trouble")

    monkeypatch.setattr(app._families, "children", broken)
    with caplog.at_level(logging.ERROR, logger="asgi_observe.metrics"):
        recorder = await call(app, http_scope())
    assert (200, 1) == (recorder.status, len(caplog.records))


async def test_route_found_by_an_outer_layer_is_reused(registry: CollectorRegistry) -> None:
    record = RequestRecord()
    record.route = "/from-outer"
    scope = http_scope()
    scope[RECORD_KEY] = record
    await call(MetricsMiddleware(plain_app(), registry=registry), scope)
    assert 1.0 == count(registry, route="/from-outer")


async def test_websocket_and_lifespan_pass_through(registry: CollectorRegistry) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = MetricsMiddleware(app, registry=registry)
    await call(middleware, websocket_scope())
    await call(middleware, {"type": "lifespan"})
    assert ["websocket", "lifespan"] == seen
    assert None is count(registry)


async def test_interleaved_requests_keep_their_own_labels_and_sizes(
    registry: CollectorRegistry,
) -> None:
    """Concurrent requests in one loop, finishing in reverse order, are not mixed up."""
    gates = [asyncio.Event() for _ in range(6)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        index = int(scope["path"].rsplit("/", 1)[1])
        scope[ROUTE_KEY] = f"/route{index % 3}"
        await receive()
        await send({"type": "http.response.start", "status": 200 + index, "headers": []})
        await gates[index].wait()
        await send({"type": "http.response.body", "body": b"z" * (index * 10)})

    middleware = MetricsMiddleware(app, registry=registry, record_body_sizes=True)
    tasks = [
        asyncio.create_task(
            call(
                middleware,
                http_scope(f"/r/{i}", method="POST"),
                Recorder([{"type": "http.request", "body": b"q" * i}]),
            )
        )
        for i in range(6)
    ]
    await asyncio.sleep(0.01)
    assert 6.0 == registry.get_sample_value(ACTIVE, {"http_request_method": "POST"})
    for gate in reversed(gates):
        gate.set()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    for i in range(6):
        kw = {"method": "POST", "route": f"/route{i % 3}", "status": str(200 + i)}
        assert 1.0 == count(registry, **kw)
        assert float(i) == total(registry, "http_server_request_body_size_bytes", **kw)
        assert float(i * 10) == total(registry, "http_server_response_body_size_bytes", **kw)
    assert 0.0 == registry.get_sample_value(ACTIVE, {"http_request_method": "POST"})
