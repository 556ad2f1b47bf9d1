"""The viewer's stores and feeds, one at a time."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER
from asgi_observe.viewer.capture import end_serving_viewer, serving_viewer
from asgi_observe.viewer.errors import ErrorStore, default_fingerprint
from asgi_observe.viewer.logs import LogStore, install_log_handler
from asgi_observe.viewer.traces import TraceStore, ViewerSpanProcessor, attach_span_processor


def test_the_oldest_trace_goes_first_and_spans_past_the_cap_are_counted() -> None:
    store = TraceStore(max_traces=2, max_spans=3)
    provider = TracerProvider()
    attach_span_processor(provider, store)
    tracer = provider.get_tracer("t")
    ids = []
    for _ in range(3):
        with tracer.start_as_current_span("root") as root:
            ids.append(format(root.get_span_context().trace_id, "032x"))
            for _ in range(4):
                with tracer.start_as_current_span("child"):
                    pass

    summaries = store.summaries()

    assert [ids[2], ids[1]] == [summary["trace_id"] for summary in summaries]
    assert (3, 2) == (summaries[0]["spans"], summaries[0]["dropped_spans"])
    assert 1 == store.evicted


def test_one_processor_per_provider_whatever_the_number_of_viewers() -> None:
    provider = TracerProvider()
    stores = [TraceStore(max_traces=5, max_spans=5) for _ in range(3)]
    for store in stores:
        assert attach_span_processor(provider, store)
    with provider.get_tracer("t").start_as_current_span("x"):
        pass

    processors = provider._active_span_processor._span_processors
    assert 1 == sum(isinstance(p, ViewerSpanProcessor) for p in processors)
    assert [1, 1, 1] == [len(store) for store in stores]
    assert not attach_span_processor(object(), stores[0])  # not an SDK provider


def test_a_failing_store_never_breaks_the_exporters(caplog: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    store = TraceStore(max_traces=5, max_spans=5)
    attach_span_processor(provider, store)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def broken(*args: Any) -> None:
        raise RuntimeError("store broke")

    store.add = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, "asgi_observe.viewer"):
        for _ in range(3):
            with provider.get_tracer("t").start_as_current_span("x"):
                pass

    assert 3 == len(exporter.get_finished_spans())
    assert 1 == len([r for r in caplog.records if r.name == "asgi_observe.viewer"])


def test_records_logged_while_the_viewer_serves_itself_are_not_kept() -> None:
    store = LogStore(max_logs=10, scrubber=DEFAULT_SCRUBBER)
    from asgi_observe.viewer.capture import current_request_secrets

    install_log_handler(store, current_request_secrets)
    logger = logging.getLogger("viewer.test.access")
    logger.setLevel(logging.INFO)

    token = serving_viewer()
    try:
        logger.info('127.0.0.1 - "GET /_observe/api/traces HTTP/1.1" 200')
    finally:
        end_serving_viewer(token)
    logger.info('127.0.0.1 - "GET /items/1 HTTP/1.1" 200')

    assert ['127.0.0.1 - "GET /items/1 HTTP/1.1" 200'] == [
        entry["message"] for entry in store.query() if entry["logger"] == "viewer.test.access"
    ]


def test_a_log_record_is_capped_and_scrubbed_by_name() -> None:
    store = LogStore(max_logs=2, scrubber=DEFAULT_SCRUBBER)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("y" * 10_000,), None)
    record.password = "hunter2-long"  # an extra field with a sensitive name
    for _ in range(3):
        store.add(record, frozenset())

    [entry, *_] = store.query()
    assert 2 == len(store)
    assert len(entry["message"]) <= 4097
    assert "[Filtered]" == entry["extra"]["password"]


def test_a_broken_fingerprint_falls_back_to_the_default() -> None:
    def broken(event: Any) -> str:
        raise KeyError("nope")

    store = ErrorStore(max_errors=5, max_groups=5, fingerprint=broken)
    event = {"exception": {"values": [{"type": "ValueError"}]}, "tags": {"http.route": "/a"}}
    store.add(dict(event))
    store.add(dict(event))

    [group] = store.groups()
    assert (2, ["ValueError", "/a"]) == (group["count"], group["fingerprint"])
    assert ("ValueError", "/a") == tuple(default_fingerprint(event))


def test_groups_are_bounded_least_recently_seen_first() -> None:
    store = ErrorStore(max_errors=3, max_groups=2, fingerprint=lambda e: e["key"])
    for key in ("a", "b", "a", "c"):
        store.add({"key": key, "timestamp": 0.0})

    assert [["c"], ["a"]] == [group["fingerprint"] for group in store.groups()]
    assert 3 == len(store)


def test_a_store_that_is_gone_is_no_longer_fed() -> None:
    import gc

    provider = TracerProvider()
    kept = TraceStore(max_traces=5, max_spans=5)
    attach_span_processor(provider, kept)
    attach_span_processor(provider, TraceStore(max_traces=5, max_spans=5))  # dropped at once
    gc.collect()
    with provider.get_tracer("t").start_as_current_span("x"):
        pass

    [processor] = [
        p
        for p in provider._active_span_processor._span_processors
        if isinstance(p, ViewerSpanProcessor)
    ]
    assert [kept] == processor.stores
    assert 1 == len(kept)
