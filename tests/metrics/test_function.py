"""measured(): calls by outcome, errors by type and duration, for functions and blocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from asgi_observe import measured
from asgi_observe.metrics.function import Measured


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def calls(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"{name}_calls_total", labels) or 0.0


def errors(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"{name}_errors_total", labels) or 0.0


def durations(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"{name}_duration_seconds_count", labels) or 0.0


class Declined(Exception):
    pass


def test_a_sync_function_counts_calls_by_outcome_and_errors_by_type(
    registry: CollectorRegistry,
) -> None:
    @measured("charge", labels=["channel"], backend="prometheus", registry=registry)
    def charge(amount: int, channel: str = "web") -> int:
        if amount < 0:
            raise Declined("negative")
        return amount

    assert 5 == charge(5)
    charge(6, channel="app")
    charge(7, "app")
    with pytest.raises(Declined):
        charge(-1)

    assert 1.0 == calls(registry, "charge", channel="web", outcome="success")
    assert 2.0 == calls(registry, "charge", channel="app", outcome="success")
    assert 1.0 == calls(registry, "charge", channel="web", outcome="error")
    assert 1.0 == errors(registry, "charge", channel="web", error_type="test_function.Declined")
    assert 1.0 == durations(registry, "charge", channel="web", outcome="error")
    assert "charge" == charge.__name__


async def test_an_async_function_and_its_cancellation(registry: CollectorRegistry) -> None:
    started = asyncio.Event()

    @measured("fetch", backend="prometheus", registry=registry)
    async def fetch(wait: bool) -> str:
        if wait:
            started.set()
            await asyncio.sleep(10)
        return "ok"

    assert "ok" == await fetch(False)
    task = asyncio.ensure_future(fetch(True))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert 1.0 == calls(registry, "fetch", outcome="success")
    assert 1.0 == calls(registry, "fetch", outcome="cancelled")
    assert 0.0 == calls(registry, "fetch", outcome="error")


async def test_an_async_generator_is_one_call_from_first_item_to_the_end(
    registry: CollectorRegistry,
) -> None:
    @measured("stream", labels=["kind"], backend="prometheus", registry=registry)
    async def stream(kind: str, fail: bool = False) -> AsyncIterator[int]:
        for index in range(3):
            yield index
        if fail:
            raise ValueError("broken stream")

    assert [0, 1, 2] == [item async for item in stream("a")]
    with pytest.raises(ValueError):
        async for _ in stream("b", fail=True):
            pass
    generator = stream("c")
    assert 0 == await generator.__anext__()
    await generator.aclose()  # the consumer stopped early: not an error

    assert 1.0 == calls(registry, "stream", kind="a", outcome="success")
    assert 1.0 == calls(registry, "stream", kind="b", outcome="error")
    assert 1.0 == calls(registry, "stream", kind="c", outcome="success")
    assert 1.0 == errors(registry, "stream", kind="b", error_type="ValueError")


def test_a_sync_generator_is_measured_too(registry: CollectorRegistry) -> None:
    @measured("numbers", backend="prometheus", registry=registry)
    def numbers() -> Iterator[int]:
        yield from range(3)

    assert [0, 1, 2] == list(numbers())
    assert 1.0 == calls(registry, "numbers", outcome="success")


async def test_as_a_context_manager_with_and_without_labels(registry: CollectorRegistry) -> None:
    tool = measured("tool_call", labels=["tool"], backend="prometheus", registry=registry)
    step = measured("step", backend="prometheus", registry=registry)

    with tool.labels(tool="search"):
        pass
    async with tool.labels(tool="search"):
        pass
    with pytest.raises(KeyError), step, step:  # nested entries of one instance
        raise KeyError("x")

    assert 2.0 == calls(registry, "tool_call", tool="search", outcome="success")
    assert 2.0 == calls(registry, "step", outcome="error")
    assert 2.0 == errors(registry, "step", error_type="KeyError")


def test_label_values_are_bounded_like_route_labels(registry: CollectorRegistry) -> None:
    @measured("lookup", labels=["user"], backend="prometheus", registry=registry, max_label_sets=3)
    def lookup(user: object) -> None:
        pass

    for index in range(10):
        lookup(f"user-{index}")
    lookup("x" * 1000)

    assert 7.0 + 1.0 == calls(registry, "lookup", user="_overflow", outcome="success")
    assert 1.0 == calls(registry, "lookup", user="user-0", outcome="success")


@pytest.mark.parametrize(
    ("name", "labels", "error"),
    [
        ("9lives", (), "name"),
        ("has-dash", (), "name"),
        ("", (), "name"),
        ("ok", ("outcome",), "reserved"),
        ("ok", ("error_type",), "reserved"),
        ("ok", ("a b",), "not a valid label"),
        ("ok", ("a", "a"), "repeat"),
    ],
)
def test_names_and_labels_are_checked_once_at_decoration(
    registry: CollectorRegistry, name: str, labels: tuple[str, ...], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        measured(name, labels=labels, registry=registry)


def test_a_label_that_is_no_parameter_fails_at_decoration(registry: CollectorRegistry) -> None:
    op = measured("op", labels=["channel"], backend="prometheus", registry=registry)
    with pytest.raises(ValueError, match="'channel' is not a parameter of"):

        @op
        def no_channel(amount: int) -> None:
            pass

    with pytest.raises(ValueError, match="expected labels"):
        op.labels(other="x")
    with pytest.raises(TypeError, match=r"labels: enter \.labels"), op:
        pass
    with pytest.raises(TypeError, match="not one string"):
        measured("op2", labels="channel", registry=registry)  # type: ignore[arg-type]


def test_the_meter_gets_calls_errors_and_duration() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    @measured("process_order", labels=["channel"], backend="otel", meter_provider=provider)
    def process_order(channel: str) -> None:
        if channel == "fax":
            raise NotImplementedError

    process_order("web")
    with pytest.raises(NotImplementedError):
        process_order("fax")

    points: dict[str, list[Any]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(p.attributes), getattr(p, "value", None) or p.count)
                    for p in metric.data.data_points
                ]
    provider.shutdown()
    assert sorted(
        [
            ({"channel": "web", "outcome": "success"}, 1),
            ({"channel": "fax", "outcome": "error"}, 1),
        ],
        key=str,
    ) == sorted(points["process_order.calls"], key=str)
    assert [({"channel": "fax", "error.type": "NotImplementedError"}, 1)] == points[
        "process_order.errors"
    ]
    assert 2 == sum(count for _, count in points["process_order.duration"])


def test_with_span_the_call_is_traced_by_traced(span_capture: Any) -> None:
    from opentelemetry import trace

    from asgi_observe.tracing import spans

    registry = CollectorRegistry()

    @measured("checkout", span=True, backend="prometheus", registry=registry)
    def checkout() -> str:
        return format(trace.get_current_span().get_span_context().span_id, "016x")

    original = spans._tracer
    spans._tracer = lambda: span_capture.provider.get_tracer("t")  # type: ignore[assignment]
    try:
        inner_span_id = checkout()
        with measured("pay", span="pay card", backend="prometheus", registry=registry):
            pass
    finally:
        spans._tracer = original  # type: ignore[assignment]

    assert [("checkout", inner_span_id), ("pay card", None)] == [
        (s.name, format(s.context.span_id, "016x") if s.name == "checkout" else None)
        for s in span_capture.spans
    ]
    assert 1.0 == calls(registry, "checkout", outcome="success")


def test_measured_is_the_public_decorator() -> None:
    assert isinstance(measured("plain", registry=CollectorRegistry()), Measured)
