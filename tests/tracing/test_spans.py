"""traced(): spans around sync/async functions, generators and blocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from otel_reset import fresh_globals

from asgi_observe import traced
from asgi_observe.tracing.spans import Traced


@pytest.fixture
def spans(span_capture: Any) -> Iterator[Any]:
    """The global tracer provider records into `span_capture` for the test."""
    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        yield span_capture


def current_name() -> str | None:
    return getattr(trace.get_current_span(), "name", None)


def by_name(spans: Any) -> dict[str, Any]:
    return {span.name: span for span in spans.spans}


def test_sync_function_gets_a_child_span_named_after_it(spans: Any) -> None:
    @traced
    def load(user: int) -> str:
        return f"user {user} in {current_name()}"

    with trace.get_tracer("t").start_as_current_span("request"):
        result = load(7)

    name = "test_sync_function_gets_a_child_span_named_after_it.<locals>.load"
    assert f"user 7 in {name}" == result
    recorded = by_name(spans)
    assert recorded["request"].context.span_id == recorded[name].parent.span_id
    assert "load" == load.__name__


async def test_async_function_with_name_and_attributes(spans: Any) -> None:
    @traced("db.query", {"db.system": "postgresql", "rows": 3})
    async def query() -> str | None:
        await asyncio.sleep(0)
        return current_name()

    assert "db.query" == await query()
    [span] = spans.spans
    assert {"db.system": "postgresql", "rows": 3} == dict(span.attributes)
    assert StatusCode.UNSET == span.status.status_code


@pytest.mark.parametrize("is_async", [False, True])
async def test_exceptions_are_recorded_and_raised(spans: Any, is_async: bool) -> None:
    if is_async:

        @traced("fails")
        async def fails() -> None:
            raise KeyError("missing")

        with pytest.raises(KeyError):
            await fails()
    else:

        @traced("fails")
        def fails() -> None:
            raise KeyError("missing")

        with pytest.raises(KeyError):
            fails()

    [span] = spans.spans
    assert StatusCode.ERROR == span.status.status_code
    assert ["exception"] == [event.name for event in span.events]
    assert "KeyError" == span.events[0].attributes["exception.type"]


def test_context_manager_yields_the_current_span(spans: Any) -> None:
    with traced("block", {"k": "v"}) as span:
        assert span is trace.get_current_span()
        span.set_attribute("extra", 1)

    [recorded] = spans.spans
    assert ("block", {"k": "v", "extra": 1}) == (recorded.name, dict(recorded.attributes))
    assert not trace.get_current_span().get_span_context().is_valid


def test_context_manager_records_exceptions(spans: Any) -> None:
    with pytest.raises(RuntimeError), traced("block"):
        raise RuntimeError("boom")

    [recorded] = spans.spans
    assert StatusCode.ERROR == recorded.status.status_code


async def test_async_context_manager(spans: Any) -> None:
    async with traced("async block") as span:
        await asyncio.sleep(0)
        assert span is trace.get_current_span()

    assert ["async block"] == [s.name for s in spans.spans]


def test_one_instance_can_be_entered_nested(spans: Any) -> None:
    block = traced("again")
    with block as outer, block as inner:
        assert inner is trace.get_current_span()
        assert outer is not inner
    assert outer is not trace.get_current_span()

    assert 2 == len(spans.spans)
    first, second = spans.spans  # the inner one ends first
    assert second.context.span_id == first.parent.span_id


async def test_one_instance_can_be_entered_from_concurrent_tasks(spans: Any) -> None:
    block = traced("shared")

    async def use(delay: float) -> bool:
        with block as span:
            await asyncio.sleep(delay)
            return span is trace.get_current_span()

    results = await asyncio.gather(use(0.02), use(0.01), use(0))

    assert [True, True, True] == results
    assert 3 == len(spans.spans)
    assert all(span.parent is None for span in spans.spans)


def test_context_manager_needs_a_name() -> None:
    with pytest.raises(TypeError, match="name"), traced():
        pass


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        Traced(42, None)  # type: ignore[arg-type]


def test_generator_span_is_current_only_inside_the_body(spans: Any) -> None:
    @traced("rows")
    def rows() -> Iterator[str | None]:
        yield current_name()
        yield current_name()

    seen_outside = []
    for item in rows():
        seen_outside.append(current_name())
        assert "rows" == item

    assert [None, None] == seen_outside
    assert ["rows"] == [span.name for span in spans.spans]


def test_generator_return_value_and_send_pass_through(spans: Any) -> None:
    @traced("echo")
    def echo() -> Any:
        received = yield "ready"
        return f"got {received}"

    generator = echo()
    assert "ready" == next(generator)
    with pytest.raises(StopIteration) as stop:
        generator.send("ping")

    assert "got ping" == stop.value.value


def test_generator_closed_early_ends_its_span(spans: Any) -> None:
    closed = []

    @traced("endless")
    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    generator = endless()
    assert [0, 1] == [next(generator), next(generator)]
    generator.close()

    assert [True] == closed
    assert ["endless"] == [span.name for span in spans.spans]
    assert StatusCode.UNSET == spans.spans[0].status.status_code


async def test_async_generator_span_is_current_only_inside_the_body(spans: Any) -> None:
    @traced("stream")
    async def stream() -> AsyncIterator[str | None]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield current_name()

    items, outside = [], []
    async for item in stream():
        items.append(item)
        outside.append(current_name())

    assert (["stream", "stream"], [None, None]) == (items, outside)
    assert ["stream"] == [span.name for span in spans.spans]


async def test_async_generator_errors_are_recorded(spans: Any) -> None:
    @traced("broken stream")
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise ValueError("mid-stream")

    with pytest.raises(ValueError, match="mid-stream"):
        async for _ in broken():
            pass

    [span] = spans.spans
    assert StatusCode.ERROR == span.status.status_code
    assert "ValueError: mid-stream" == span.status.description


async def test_async_generator_closed_early_ends_its_span(spans: Any) -> None:
    @traced("partial")
    async def numbers() -> AsyncIterator[int]:
        for n in range(100):
            yield n

    generator = numbers()
    assert 0 == await generator.__anext__()
    await generator.aclose()  # type: ignore[attr-defined]

    assert ["partial"] == [span.name for span in spans.spans]


def test_without_a_provider_nothing_breaks() -> None:
    """With no SDK installed the spans are non-recording and the function still runs."""
    with fresh_globals():

        @traced
        def add(a: int, b: int) -> int:
            return a + b

        assert 3 == add(1, 2)
