"""The shutdown flush: notifications and spans together, within one bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from chat_receiver import ChatReceiver, chat_receiver
from notify_helpers import clean_globals, notifier_for
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from asgi_observe import observe
from asgi_observe.errors.notify import report_error
from asgi_observe.setup.flush import flush_together
from asgi_observe.setup.lifespan import LifespanMiddleware


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


class StuckExporter(SpanExporter):
    """A collector that never answers: export blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


async def run_lifespan(app: Any) -> tuple[list[str], float]:
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> Any:
        return next(events)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    start = time.monotonic()
    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent, time.monotonic() - start


async def test_observe_flushes_pending_notifications_at_shutdown(receiver: ChatReceiver) -> None:
    receiver.delay = 0.2
    notifier = notifier_for(receiver, only="telegram")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "lifespan" == scope["type"]
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        for exc in (ValueError("a"), KeyError("b"), TypeError("c")):
            report_error(exc)  # observe() made this notifier the default
        await send({"type": "lifespan.shutdown.complete"})

    sent, _ = await run_lifespan(observe(app, notify=notifier, configure=False, metrics=False))
    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == sent
    assert 3 == len(receiver.posted)


async def test_spans_and_notifications_share_one_flush_bound(receiver: ChatReceiver) -> None:
    """A stuck collector and a destination that never answers: shutdown still completes
    within the lifespan's flush timeout, not the sum of both."""
    receiver.hang()
    exporter = StuckExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.get_tracer("t").start_span("pending").end()
    notifier = notifier_for(receiver, only="slack", timeout=10.0)
    report_error(ValueError("never delivered"), notifier=notifier)
    app = LifespanMiddleware(
        lambda scope, receive, send: _no_lifespan(),
        tracer_provider=provider,
        flush_also=[notifier],
        flush_timeout=1.0,
    )
    try:
        sent, took = await run_lifespan(app)
    finally:
        exporter.release.set()
        notifier.close(0)
    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == sent
    assert 0.9 < took < 1.8


async def _no_lifespan() -> None:
    raise RuntimeError("no lifespan support")


def test_flush_together_runs_both_at_once_and_reports_either_failure() -> None:
    class Flushable:
        def __init__(self, result: bool, pause: float) -> None:
            self.result, self.pause, self.got = result, pause, -1

        def force_flush(self, timeout_millis: int) -> bool:
            self.got = timeout_millis
            time.sleep(self.pause)
            return self.result

    def base(timeout: float) -> bool:
        time.sleep(0.3)
        return True

    start = time.monotonic()
    ok_one = Flushable(True, 0.3)
    assert flush_together(base, [ok_one], 2.0)
    assert time.monotonic() - start < 0.55  # in parallel, not 0.6 s
    assert 2000 == ok_one.got
    assert not flush_together(base, [Flushable(False, 0)], 2.0)
    assert not flush_together(lambda timeout: False, [Flushable(True, 0)], 2.0)


async def test_close_flushes_then_stops_sending(receiver: ChatReceiver) -> None:
    notifier = notifier_for(receiver, only="telegram")
    assert report_error(ValueError("before close"), notifier=notifier)
    assert notifier.close(5.0)
    assert False is report_error(KeyError("after close"), notifier=notifier)
    assert 1 == len(receiver.posted)
    assert 1 == notifier.stats()["telegram chat -1001234567890"]["dropped"]
