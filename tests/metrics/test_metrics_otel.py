"""MetricsMiddleware through the OpenTelemetry meter: instruments, attributes, cap, exemplars."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_driver import Recorder, call, http_scope, plain_app
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from otel_reset import fresh  # noqa: F401
from prometheus_client import CollectorRegistry

from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.metrics.backend import resolve_backend
from asgi_observe.metrics.families import DURATION_BUCKETS
from asgi_observe.metrics.middleware import MetricsMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware

DURATION = "http.server.request.duration"


class Meter:
    """An SDK meter provider whose points are read in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def counts(self, name: str = DURATION) -> dict[tuple[tuple[str, Any], ...], int]:
        return {tuple(sorted(point.attributes.items())): point.count for point in self.points(name)}


@pytest.fixture
def meter() -> Iterator[Meter]:
    meter = Meter()
    yield meter
    meter.provider.shutdown()


def routed(app: Any, route: str | None = "/items/{id}") -> Any:
    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if route is not None:
            scope[ROUTE_KEY] = route
        await app(scope, receive, send)

    return wrapper


def failing(exc: BaseException) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise exc

    return app


def attrs(
    method: str = "GET",
    route: str = "/items/{id}",
    status: int = 200,
    error: str | None = None,
    scheme: str = "http",
    version: str = "1.1",
) -> tuple[tuple[str, Any], ...]:
    """The sorted attribute items of one series."""
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
        "url.scheme": scheme,
        "network.protocol.version": version,
    }
    if error is not None:
        attributes["error.type"] = error
    return tuple(sorted(attributes.items()))


# --- which backend --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "active", "exposition", "expected"),
    [
        ("prometheus", True, False, (True, False)),
        ("otel", False, False, (False, True)),
        ("otlp", False, False, (False, True)),
        ("both", False, False, (True, True)),
        ("auto", False, False, (True, False)),
        ("auto", True, False, (False, True)),
        ("auto", True, True, (True, True)),
        ("auto", False, True, (True, False)),
        (None, True, False, (False, True)),
    ],
)
def test_the_backend_choice_records_each_request_once_per_reader(
    meter: Meter, backend: str | None, active: bool, exposition: bool, expected: tuple[bool, bool]
) -> None:
    from opentelemetry.metrics import NoOpMeterProvider

    provider = meter.provider if active else NoOpMeterProvider()
    assert expected == resolve_backend(backend, meter_provider=provider, exposition=exposition)


def test_the_variable_chooses_the_backend_and_a_bad_value_is_refused(
    monkeypatch: pytest.MonkeyPatch, meter: Meter
) -> None:
    monkeypatch.setenv("ASGI_OBSERVE_METRICS_BACKEND", "OTLP")
    assert (False, True) == resolve_backend(None, meter_provider=meter.provider)
    monkeypatch.setenv("ASGI_OBSERVE_METRICS_BACKEND", "statsd")
    with pytest.raises(ValueError, match="ASGI_OBSERVE_METRICS_BACKEND='statsd'"):
        resolve_backend(None)
    with pytest.raises(ValueError, match="backend='x'"):
        MetricsMiddleware(plain_app(), backend="x")


def test_auto_without_a_meter_provider_records_with_prometheus_only() -> None:
    app = MetricsMiddleware(plain_app(), registry=CollectorRegistry())
    assert ("prometheus",) == app.backends


# --- what the meter gets --------------------------------------------------------------


async def test_a_request_is_one_duration_point_with_the_stable_http_attributes(
    meter: Meter,
) -> None:
    app = MetricsMiddleware(routed(plain_app(201)), backend="otel", meter_provider=meter.provider)
    await call(app, http_scope("/items/1", method="POST", scheme="https", http_version="2"))

    [point] = meter.points(DURATION)
    expected = attrs("POST", status=201, scheme="https", version="2")
    assert expected == tuple(sorted(point.attributes.items()))
    assert 1 == point.count
    assert list(DURATION_BUCKETS) == list(point.explicit_bounds)


async def test_unmatched_routes_other_methods_and_errors_are_labelled_like_prometheus(
    meter: Meter,
) -> None:
    app_unmatched = MetricsMiddleware(
        routed(plain_app(404), route=None), backend="otel", meter_provider=meter.provider
    )
    await call(app_unmatched, http_scope("/nope", method="BREW"))
    app_error = MetricsMiddleware(
        routed(failing(KeyError("x"))), backend="otel", meter_provider=meter.provider
    )
    with pytest.raises(KeyError):
        await call(app_error, http_scope("/items/1"))
    app_503 = MetricsMiddleware(
        routed(plain_app(503)), backend="otel", meter_provider=meter.provider
    )
    await call(app_503, http_scope("/items/1"))

    assert {
        attrs("_OTHER", "_unmatched", 404): 1,
        attrs(status=500, error="KeyError"): 1,
        attrs(status=503, error="503"): 1,
    } == meter.counts()


async def test_active_requests_count_the_requests_in_flight(meter: Meter) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await release.wait()
        await plain_app()(scope, receive, send)

    app = MetricsMiddleware(slow, backend="otel", meter_provider=meter.provider)
    task = asyncio.ensure_future(call(app, http_scope("/", method="PUT")))
    await started.wait()
    [during] = meter.points("http.server.active_requests")
    release.set()
    await task
    [after] = meter.points("http.server.active_requests")

    assert ({"http.request.method": "PUT", "url.scheme": "http"}, 1, 0) == (
        dict(during.attributes),
        during.value,
        after.value,
    )


async def test_body_sizes_are_recorded_when_asked(meter: Meter) -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await plain_app(body=b"12345")(scope, receive, send)

    app = MetricsMiddleware(
        routed(echo), backend="otel", meter_provider=meter.provider, record_body_sizes=True
    )
    incoming = [{"type": "http.request", "body": b"abc", "more_body": False}]
    await call(app, http_scope("/items/1", method="POST"), Recorder(incoming))

    [request] = meter.points("http.server.request.body.size")
    [response] = meter.points("http.server.response.body.size")
    assert (3, 5) == (request.sum, response.sum)


async def test_past_the_cap_new_attribute_sets_count_under_the_overflow_set(meter: Meter) -> None:
    app = MetricsMiddleware(
        plain_app(), backend="otel", meter_provider=meter.provider, max_label_sets=2
    )
    for index in range(5):
        await call(app, http_scope("/", **{ROUTE_KEY: f"/r{index}"}))

    counts = meter.counts()
    assert 3 == len(counts)
    assert 3 == counts[(("otel.metric.overflow", True),)]
    assert 5 == sum(counts.values())


async def test_two_middlewares_on_one_provider_share_the_instruments(meter: Meter) -> None:
    first = MetricsMiddleware(routed(plain_app()), backend="otel", meter_provider=meter.provider)
    second = MetricsMiddleware(routed(plain_app()), backend="otel", meter_provider=meter.provider)
    await call(first, http_scope("/items/1"))
    await call(second, http_scope("/items/2"))
    assert {attrs(): 2} == meter.counts()
    with pytest.raises(ValueError, match="other buckets"):
        MetricsMiddleware(plain_app(), backend="otel", meter_provider=meter.provider, buckets=[1])


# --- the same counts as Prometheus ----------------------------------------------------


async def test_the_meter_counts_the_same_requests_as_prometheus_for_a_known_mix(
    meter: Meter,
) -> None:
    registry = CollectorRegistry()
    mix = [("GET", "/items/{id}", 200)] * 7 + [("POST", "/items", 201)] * 3
    mix += [("GET", None, 404)] * 4 + [("DELETE", "/items/{id}", 500)] * 2

    for method, route, status in mix:
        app = MetricsMiddleware(
            routed(plain_app(status), route=route),
            backend="both",
            registry=registry,
            meter_provider=meter.provider,
        )
        await call(app, http_scope("/x", method=method))

    prometheus = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "http_server_request_duration_seconds_count":
                labels = sample.labels
                key = (labels["http_request_method"], labels["http_route"])
                prometheus[(*key, int(labels["http_response_status_code"]))] = int(sample.value)
    otel = {
        (
            dict(key)["http.request.method"],
            dict(key)["http.route"],
            dict(key)["http.response.status_code"],
        ): count
        for key, count in meter.counts().items()
    }
    assert {
        ("GET", "/items/{id}", 200): 7,
        ("POST", "/items", 201): 3,
        ("GET", "_unmatched", 404): 4,
        ("DELETE", "/items/{id}", 500): 2,
    } == prometheus
    assert prometheus == otel


# --- exemplars ------------------------------------------------------------------------


@pytest.mark.parametrize("sampled", [True, False])
async def test_exemplars_link_sampled_requests_to_their_trace(meter: Meter, sampled: bool) -> None:
    tracer_provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF)
    app = TracingMiddleware(
        MetricsMiddleware(routed(plain_app()), backend="otel", meter_provider=meter.provider),
        tracer_provider=tracer_provider,
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = (b"traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())
    await call(app, http_scope("/items/1", headers=[header]))

    [point] = meter.points(DURATION)
    exemplar_traces = [format(e.trace_id, "032x") for e in point.exemplars]
    assert ([trace_id] if sampled else []) == exemplar_traces


# --- observe() and measured() with the global meter provider -------------------------


@pytest.mark.usefixtures("fresh")
@pytest.mark.parametrize("metrics_path", [None, "/metrics"])
async def test_observe_records_through_the_global_meter_and_keeps_a_served_exposition(
    meter: Meter, metrics_path: str | None
) -> None:
    from opentelemetry import metrics

    from asgi_observe import observe

    metrics.set_meter_provider(meter.provider)
    registry = CollectorRegistry()
    app = observe(
        routed(plain_app()), configure=False, registry=registry, metrics_path=metrics_path
    )
    await call(app, http_scope("/items/1"))

    labels = {"http_request_method": "GET", "http_route": "/items/{id}"}
    labels["http_response_status_code"] = "200"
    prometheus = registry.get_sample_value("http_server_request_duration_seconds_count", labels)
    assert {attrs(): 1} == meter.counts()
    assert (1.0 if metrics_path else None) == prometheus


@pytest.mark.usefixtures("fresh")
@pytest.mark.parametrize("active", [True, False])
def test_measured_chooses_its_backend_at_the_first_call(meter: Meter, active: bool) -> None:
    from opentelemetry import metrics

    from asgi_observe import measured

    registry = CollectorRegistry()
    job = measured("nightly_job", registry=registry)  # decorated before configure()
    if active:
        metrics.set_meter_provider(meter.provider)
    with job:
        pass

    prometheus = registry.get_sample_value("nightly_job_calls_total", {"outcome": "success"})
    assert (None if active else 1.0) == prometheus
    assert ([1] if active else []) == [p.value for p in meter.points("nightly_job.calls")]
