"""TracingMiddleware driven by hand-built ASGI messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgi_driver import Recorder, call, http_scope, plain_app, websocket_scope
from opentelemetry import baggage, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from asgi_observe.propagation import w3c_propagator
from asgi_observe.tracing.middleware import (
    CLIENT_DISCONNECTED,
    INCOMPLETE_RESPONSE,
    TracingMiddleware,
)

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced(app: Any, span_capture: Any, **options: Any) -> TracingMiddleware:
    return TracingMiddleware(
        app, tracer_provider=span_capture.provider, propagator=w3c_propagator(), **options
    )


async def test_one_server_span_with_stable_attributes(span_capture: Any) -> None:
    scope = http_scope(
        "/items/42",
        query_string=b"q=shoes&access_token=hunter2",
        headers=[(b"host", b"shop.example:8443"), (b"user-agent", b"curl/8.5")],
        scheme="https",
        http_version="2",
    )
    recorder = await call(traced(plain_app(), span_capture), scope)

    assert 200 == recorder.status
    (span,) = span_capture.spans
    assert SpanKind.SERVER == span.kind
    assert "GET" == span.name
    assert {
        "http.request.method": "GET",
        "url.scheme": "https",
        "url.path": "/items/42",
        "url.query": "q=shoes&access_token=REDACTED",
        "server.address": "shop.example",
        "server.port": 8443,
        "client.address": "127.0.0.1",
        "client.port": 54321,
        "network.protocol.version": "2",
        "user_agent.original": "curl/8.5",
        "http.response.status_code": 200,
    } == dict(span.attributes)
    assert StatusCode.UNSET == span.status.status_code


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        (b"example.com", "http", ("example.com", 80)),
        (b"example.com", "https", ("example.com", 443)),
        (b"[::1]:8080", "http", ("::1", 8080)),
        (b"[::1]", "https", ("::1", 443)),
        (b"example.com:99999", "http", ("127.0.0.1", 8000)),  # malformed: socket address
        (b"[::1", "http", ("127.0.0.1", 8000)),
        (b"", "http", ("127.0.0.1", 8000)),
        (b"h" * 100_000, "http", ("127.0.0.1", 8000)),  # longer than any host name
    ],
)
async def test_server_address_from_host_header(
    span_capture: Any, host: bytes, scheme: str, expected: tuple[str, int]
) -> None:
    scope = http_scope("/", headers=[(b"host", host)], scheme=scheme)
    await call(traced(plain_app(), span_capture), scope)
    (span,) = span_capture.spans
    assert expected == (span.attributes["server.address"], span.attributes["server.port"])


async def test_inbound_traceparent_is_continued(span_capture: Any) -> None:
    scope = http_scope(headers=[(b"traceparent", TRACEPARENT)])
    await call(traced(plain_app(), span_capture), scope)
    (span,) = span_capture.spans
    assert TRACE_ID == span.context.trace_id
    assert PARENT_ID == span.parent.span_id
    assert span.parent.is_remote


@pytest.mark.parametrize(
    "headers",
    [
        [(b"traceparent", TRACEPARENT), (b"traceparent", TRACEPARENT)],
        [(b"traceparent", TRACEPARENT + b"," + TRACEPARENT)],
        [(b"traceparent", TRACEPARENT.upper())],
        [(b"traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
        [(b"traceparent", b"\x00\xff" * 50_000)],
    ],
    ids=["two-lines", "comma-joined", "uppercase", "zero-trace-id", "100kB-binary"],
)
async def test_invalid_traceparent_restarts_the_trace(span_capture: Any, headers: Any) -> None:
    scope = http_scope(headers=[*headers, (b"tracestate", b"vendor=kept-only-if-valid")])
    await call(traced(plain_app(), span_capture), scope)
    (span,) = span_capture.spans
    assert span.parent is None
    assert TRACE_ID != span.context.trace_id
    assert 0 == len(span.context.trace_state)


async def test_span_and_baggage_are_current_inside_the_app(span_capture: Any) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["span"] = trace.get_current_span()
        seen["baggage"] = baggage.get_all()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        seen["outbound"] = carrier
        await plain_app()(scope, receive, send)

    headers = [
        (b"traceparent", TRACEPARENT),
        (b"tracestate", b"congo=t61rcWkgMzE,1rojo@dd=00f067aa0ba902b7"),
        (b"baggage", b"user=alice;prop=1"),
        (b"baggage", b"tier=gold%2Bplus"),
    ]
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(w3c_propagator())
    try:
        await call(traced(app, span_capture), http_scope(headers=headers))
    finally:
        propagate.set_global_textmap(previous)

    (span,) = span_capture.spans
    assert span.context.span_id == seen["span"].get_span_context().span_id
    assert {"user": "alice", "tier": "gold+plus"} == dict(seen["baggage"])
    expected_parent = f"00-{TRACE_ID:032x}-{span.context.span_id:016x}-01"
    assert expected_parent == seen["outbound"]["traceparent"]
    assert "congo=t61rcWkgMzE,1rojo@dd=00f067aa0ba902b7" == seen["outbound"]["tracestate"]
    assert "user=alice;prop=1,tier=gold+plus" == seen["outbound"]["baggage"]


@pytest.mark.parametrize(
    "names",
    [
        (b"TraceParent", b"TraceState", b"Baggage"),
        (b"TRACEPARENT", b"TRACESTATE", b"BAGGAGE"),
        (b"traceParent", b"tracestate", b"bAGGAGE"),
    ],
    ids=["capitalised", "upper", "mixed"],
)
@pytest.mark.parametrize("own_propagator", [True, False], ids=["ours", "otel-reference"])
async def test_mixed_case_header_names_are_read(
    span_capture: Any, names: tuple[bytes, bytes, bytes], own_propagator: bool
) -> None:
    """The ASGI spec asks servers to lower-case names but does not require it."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["baggage"] = dict(baggage.get_all())
        await plain_app()(scope, receive, send)

    propagator = (
        w3c_propagator()
        if own_propagator
        else CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    traceparent, tracestate, baggage_name = names
    headers = [
        (traceparent, TRACEPARENT),
        (tracestate, b"congo=t61rcWkgMzE"),
        (baggage_name, b"user=alice"),
        (b"User-Agent", b"probe/1.0"),
        (b"Host", b"example.com:8080"),
    ]
    middleware = TracingMiddleware(
        app, tracer_provider=span_capture.provider, propagator=propagator
    )
    await call(middleware, http_scope(headers=headers))
    (span,) = span_capture.spans
    assert (TRACE_ID, PARENT_ID) == (span.context.trace_id, span.parent.span_id)
    assert "t61rcWkgMzE" == span.context.trace_state.get("congo")
    assert {"user": "alice"} == seen["baggage"]
    assert ("probe/1.0", "example.com", 8080) == (
        span.attributes["user_agent.original"],
        span.attributes["server.address"],
        span.attributes["server.port"],
    )


async def test_invented_header_names_cannot_grow_the_name_cache(span_capture: Any) -> None:
    from asgi_observe.tracing import attributes

    invented = [(f"X-Made-Up-{i}".encode(), b"v") for i in range(2000)]
    long_names = [(b"X" * 5000 + str(i).encode(), b"v") for i in range(10)]
    scope = http_scope(headers=[*invented, *long_names, (b"TraceParent", TRACEPARENT)])
    await call(traced(plain_app(), span_capture), scope)
    (span,) = span_capture.spans
    assert TRACE_ID == span.context.trace_id
    assert len(attributes._slots) <= attributes._MAX_CACHED_NAMES
    assert all(len(name) <= attributes._MAX_CACHED_NAME_LENGTH for name in attributes._slots)


async def test_context_is_restored_after_the_request(span_capture: Any) -> None:
    before = trace.get_current_span()
    await call(traced(plain_app(), span_capture), http_scope(headers=[(b"baggage", b"a=b")]))
    assert before is trace.get_current_span()
    assert {} == dict(baggage.get_all())


async def test_span_ends_at_final_body_not_when_app_returns(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        await asyncio.sleep(0.2)  # background work after the response

    await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert (span.end_time - span.start_time) < 150_000_000


async def test_span_ends_at_final_trailers_when_trailers_announced(span_capture: Any) -> None:
    ended_before_trailers: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        ended_before_trailers.append(bool(span_capture.spans))
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})

    await call(traced(app, span_capture), http_scope())
    assert [False] == ended_before_trailers
    assert 1 == len(span_capture.spans)


async def test_pathsend_is_a_final_event(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})
        await asyncio.sleep(0.2)

    await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert (span.end_time - span.start_time) < 150_000_000


@pytest.mark.parametrize(
    ("status", "code", "error_type"),
    [(200, StatusCode.UNSET, None), (404, StatusCode.UNSET, None), (503, StatusCode.ERROR, "503")],
)
async def test_status_error_only_for_5xx(
    span_capture: Any, status: int, code: StatusCode, error_type: str | None
) -> None:
    await call(traced(plain_app(status), span_capture), http_scope())
    (span,) = span_capture.spans
    assert status == span.attributes["http.response.status_code"]
    assert code == span.status.status_code
    assert error_type == span.attributes.get("error.type")


class PaymentDeclined(Exception):
    pass


async def test_exception_is_recorded_and_reraised_unchanged(span_capture: Any) -> None:
    error = PaymentDeclined("card 4242 declined")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    with pytest.raises(PaymentDeclined) as raised:
        await call(traced(app, span_capture), http_scope())
    assert error is raised.value
    (span,) = span_capture.spans
    assert StatusCode.ERROR == span.status.status_code
    assert f"{__name__}.PaymentDeclined" == span.attributes["error.type"]
    assert 500 == span.attributes["http.response.status_code"]  # what the server answers
    assert ["exception"] == [event.name for event in span.events]


async def test_exception_mid_stream_is_an_error(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise PaymentDeclined("upstream went away")

    with pytest.raises(PaymentDeclined):
        await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert StatusCode.ERROR == span.status.status_code
    assert (200, f"{__name__}.PaymentDeclined") == (
        span.attributes["http.response.status_code"],
        span.attributes["error.type"],
    )


async def test_5xx_span_ends_at_the_response_but_waits_for_the_exception(
    span_capture: Any,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500})
        await send({"type": "http.response.body", "body": b"error"})
        await asyncio.sleep(0.2)
        raise PaymentDeclined("raised after the error page, as Starlette does")

    with pytest.raises(PaymentDeclined):
        await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert f"{__name__}.PaymentDeclined" == span.attributes["error.type"]
    assert (span.end_time - span.start_time) < 150_000_000


async def test_unknown_method_is_reported_as_other(span_capture: Any) -> None:
    await call(traced(plain_app(), span_capture), http_scope(method="FOOBAR"))
    (span,) = span_capture.spans
    assert "HTTP" == span.name
    assert "_OTHER" == span.attributes["http.request.method"]
    assert "FOOBAR" == span.attributes["http.request.method_original"]


async def test_known_methods_option(span_capture: Any) -> None:
    app = traced(plain_app(), span_capture, known_methods=["get", "PURGE"])
    await call(app, http_scope(method="PURGE"))
    await call(app, http_scope(method="POST"))
    assert ["PURGE", "_OTHER"] == [s.attributes["http.request.method"] for s in span_capture.spans]


async def test_client_disconnect_before_response(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert CLIENT_DISCONNECTED == span.attributes["error.type"]


async def test_app_returning_without_response(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    await call(traced(app, span_capture), http_scope())
    (span,) = span_capture.spans
    assert INCOMPLETE_RESPONSE == span.attributes["error.type"]


async def test_websocket_gets_one_span_for_the_connection(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "websocket.connect" == (await receive())["type"]
        await send({"type": "websocket.accept"})
        for _ in range(3):
            message = await receive()
            await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 1000})

    incoming = [{"type": "websocket.connect"}] + [
        {"type": "websocket.receive", "text": str(n)} for n in range(3)
    ]
    recorder = Recorder(incoming)
    await call(traced(app, span_capture), websocket_scope(), recorder)
    assert 5 == len(recorder.sent)
    (span,) = span_capture.spans
    assert 101 == span.attributes["http.response.status_code"]
    assert "ws" == span.attributes["url.scheme"]


async def test_lifespan_passes_through_untouched(span_capture: Any) -> None:
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append((scope, receive, send))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    recorder = Recorder()
    await traced(app, span_capture)(scope, recorder.receive, recorder.send)
    assert [(scope, recorder.receive, recorder.send)] == received
    assert () == tuple(span_capture.spans)


async def test_excluded_paths_exact_and_prefix(span_capture: Any) -> None:
    app = traced(
        plain_app(), span_capture, exclude_paths=["/metrics"], exclude_prefixes=["/health"]
    )
    for path in ["/metrics", "/health/live", "/healthz", "/metrics/x", "/"]:
        await call(app, http_scope(path))
    assert ["/metrics/x", "/"] == [s.attributes["url.path"] for s in span_capture.spans]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"exclude_paths": "/metrics"}, TypeError),
        ({"exclude_paths": ["metrics"]}, ValueError),
        ({"exclude_prefixes": "/x"}, TypeError),
        ({"known_methods": "GET"}, TypeError),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        TracingMiddleware(plain_app(), **options)


async def test_route_template_names_the_span(span_capture: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["path_template"] = "/users/{user_id}"  # what Litestar publishes
        await plain_app()(scope, receive, send)

    await call(traced(app, span_capture), http_scope("/users/7"))
    (span,) = span_capture.spans
    assert "GET /users/{user_id}" == span.name
    assert "/users/{user_id}" == span.attributes["http.route"]


async def test_route_resolver_option_and_its_failure(span_capture: Any) -> None:
    def broken(scope: Any) -> str:
        raise RuntimeError("resolver bug")

    await call(traced(plain_app(), span_capture, route_resolver=lambda s: "/fixed"), http_scope())
    recorder = await call(traced(plain_app(), span_capture, route_resolver=broken), http_scope())
    assert 200 == recorder.status
    assert ["GET /fixed", "GET"] == [span.name for span in span_capture.spans]


async def test_interleaved_requests_keep_their_own_context(span_capture: Any) -> None:
    mismatches: list[int] = []

    def app_for(expected: int) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            for _ in range(5):
                await asyncio.sleep(0)
                if trace.get_current_span().get_span_context().trace_id != expected:
                    mismatches.append(expected)
            await plain_app()(scope, receive, send)

        return app

    async def one(n: int) -> None:
        trace_id = n + 1
        header = f"00-{trace_id:032x}-{n + 1:016x}-01".encode()
        await call(
            traced(app_for(trace_id), span_capture), http_scope(headers=[(b"traceparent", header)])
        )

    await asyncio.gather(*(one(n) for n in range(300)))
    assert [] == mismatches
    spans = span_capture.spans
    assert 300 == len(spans)
    assert all(span.context.trace_id == span.parent.span_id for span in spans)


async def test_hostile_headers_are_served_quickly(span_capture: Any) -> None:
    headers = [
        (b"traceparent", TRACEPARENT),
        (b"tracestate", b",".join(b"k%d=v" % n for n in range(10_000))),
        (b"baggage", b"k=" + b"\x00\xfe" * 50_000),
        (b"user-agent", b"\xff\xfe\x00"),
        (b"host", b"\x00\xff"),
    ]
    started = time.perf_counter()
    recorder = await call(traced(plain_app(), span_capture), http_scope(headers=headers))
    elapsed = time.perf_counter() - started
    assert 200 == recorder.status
    assert elapsed < 0.5
    (span,) = span_capture.spans
    assert TRACE_ID == span.context.trace_id
    assert 0 == len(span.context.trace_state)  # over 32 members: discarded


async def test_works_with_the_default_noop_provider() -> None:
    recorder = await call(TracingMiddleware(plain_app()), http_scope())
    assert 200 == recorder.status


class BrokenProcessor:
    """A span processor that fails where it is told to."""

    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.on == "start":
            raise RuntimeError("processor broke on start")

    def on_end(self, span: Any) -> None:
        if self.on == "end":
            raise RuntimeError("processor broke on end")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.parametrize("on", ["start", "end"])
async def test_a_failing_span_processor_never_changes_the_response(
    on: str, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    import asgi_observe.tracing.middleware as tracing_module

    provider = TracerProvider()
    provider.add_span_processor(BrokenProcessor(on))  # type: ignore[arg-type]
    app = TracingMiddleware(plain_app(body=b"served"), tracer_provider=provider)
    tracing_module._fault_reported = False
    with caplog.at_level("DEBUG", logger="asgi_observe.tracing"):
        first = await call(app, http_scope())
        second = await call(app, http_scope())

    assert [200, 200] == [first.status, second.status]
    assert [b"served", b"served"] == [r.sent[-1]["body"] for r in (first, second)]
    # Only our logger: a sentry-sdk transport another test left retrying logs here too.
    ours = [r.levelname for r in caplog.records if r.name == "asgi_observe.tracing"]
    assert ["ERROR", "DEBUG"] == ours
