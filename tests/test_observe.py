"""observe(): the full stack, its order, its in-band endpoints and its exclusions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_driver import Recorder, http_scope, plain_app
from opentelemetry import propagate, trace
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from asgi_observe import observe
from asgi_observe.logs.correlation import uninstall_log_record_factory
from asgi_observe.propagation import w3c_propagator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def restore_globals() -> Iterator[None]:
    textmap = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(textmap)
    uninstall_log_record_factory()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_logs() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("tests.app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def starlette_app() -> Starlette:
    async def user(request: Any) -> JSONResponse:
        logging.getLogger("tests.app").info("looking up user")
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return JSONResponse(carrier)

    async def boom(request: Any) -> PlainTextResponse:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/users/{user_id}", user), Route("/boom", boom)])


def stack(app: Any, span_capture: Any, registry: CollectorRegistry, **options: Any) -> Any:
    return observe(
        app,
        configure=False,
        tracer_provider=span_capture.provider,
        registry=registry,
        sentry=False,
        **options,
    )


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=headers or {})


async def test_full_stack_correlates_span_metrics_logs_and_request_id(
    span_capture: Any, app_logs: Records
) -> None:
    registry = CollectorRegistry()
    app = stack(starlette_app(), span_capture, registry)
    response = await get(app, "/users/7", {"traceparent": TRACEPARENT, "x-request-id": "req-1"})

    assert 200 == response.status_code
    assert "req-1" == response.headers["x-request-id"]
    (span,) = span_capture.spans
    assert "GET /users/{user_id}" == span.name
    assert f"00-{TRACE_ID}-{span.context.span_id:016x}-01" == response.json()["traceparent"]
    (record,) = app_logs.records
    assert ("req-1", TRACE_ID, f"{span.context.span_id:016x}") == (
        record.request_id,  # type: ignore[attr-defined]
        record.trace_id,  # type: ignore[attr-defined]
        record.span_id,  # type: ignore[attr-defined]
    )
    labels = {"http_request_method": "GET", "http_route": "/users/{user_id}"}
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {**labels, "http_response_status_code": "200"},
    )
    assert 1.0 == count


async def test_observe_installs_the_w3c_propagator_globally(span_capture: Any) -> None:
    stack(plain_app(), span_capture, CollectorRegistry())
    assert w3c_propagator() is propagate.get_global_textmap()


async def test_exception_answers_500_with_the_request_id_and_reaches_the_server(
    span_capture: Any,
) -> None:
    class Boom(Exception):
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise Boom

    observed = stack(app, span_capture, CollectorRegistry())
    recorder = Recorder()
    with pytest.raises(Boom):
        await observed(
            http_scope(headers=[(b"x-request-id", b"abc")]), recorder.receive, recorder.send
        )
    assert 500 == recorder.status
    assert [b"abc"] == recorder.header(b"x-request-id")
    (span,) = span_capture.spans
    assert trace.StatusCode.ERROR == span.status.status_code


async def test_starlette_500_is_counted_and_carries_the_id(span_capture: Any) -> None:
    registry = CollectorRegistry()
    app = stack(starlette_app(), span_capture, registry)
    response = await get(app, "/boom")

    assert 500 == response.status_code
    assert 32 == len(response.headers["x-request-id"])
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": "/boom", "http_response_status_code": "500"},
    )
    assert 1.0 == count


async def test_metrics_path_is_served_in_band_and_not_observed(span_capture: Any) -> None:
    registry = CollectorRegistry()
    app = stack(starlette_app(), span_capture, registry, metrics_path="/metrics")
    await get(app, "/users/1")
    response = await get(app, "/metrics")

    assert 200 == response.status_code
    assert 'http_route="/users/{user_id}"' in response.text
    assert "/metrics" not in response.text
    assert ["GET /users/{user_id}"] == [span.name for span in span_capture.spans]
    # Not observed, but answered with an id like every response.
    assert 32 == len(response.headers["x-request-id"])


async def test_health_probes_are_mounted_and_not_observed(span_capture: Any) -> None:
    app = stack(starlette_app(), span_capture, CollectorRegistry(), health_path="/health")
    response = await get(app, "/health/live", {"x-request-id": "probe-7"})
    ready = await get(app, "/health/ready")

    assert (200, "probe-7") == (response.status_code, response.headers["x-request-id"])
    assert 32 == len(ready.headers["x-request-id"])
    assert () == tuple(span_capture.spans)


async def test_the_request_id_header_name_applies_to_the_endpoints(span_capture: Any) -> None:
    app = stack(
        starlette_app(),
        span_capture,
        CollectorRegistry(),
        metrics_path="/metrics",
        request_id_header="X-Correlation-ID",
    )
    response = await get(app, "/metrics", {"x-correlation-id": "scrape-1"})
    assert ("scrape-1", None) == (
        response.headers.get("x-correlation-id"),
        response.headers.get("x-request-id"),
    )


async def test_excluded_paths_bypass_every_layer(span_capture: Any) -> None:
    registry = CollectorRegistry()
    app = stack(
        starlette_app(),
        span_capture,
        registry,
        exclude_paths=["/users/1"],
        exclude_prefixes=["/users/2"],
    )
    for path in ["/users/1", "/users/22", "/users/3"]:
        await get(app, path)

    assert ["/users/3"] == [span.attributes["url.path"] for span in span_capture.spans]
    # Excluded paths are served without any observability, request ids included.
    assert "x-request-id" not in (await get(app, "/users/1")).headers
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {
            "http_request_method": "GET",
            "http_route": "/users/{user_id}",
            "http_response_status_code": "200",
        },
    )
    assert 1.0 == count


async def test_quart_app_gets_its_route_hook(span_capture: Any) -> None:
    from quart import Quart

    quart = Quart(__name__)

    @quart.get("/orders/<int:order_id>")
    async def order(order_id: int) -> str:
        return "ok"

    app = stack(quart, span_capture, CollectorRegistry())
    response = await get(app, "/orders/5")

    assert 200 == response.status_code
    (span,) = span_capture.spans
    assert "GET /orders/{order_id}" == span.name


async def test_lifespan_reaches_the_app(span_capture: Any) -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "lifespan" == scope["type"]
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    observed = stack(app, span_capture, CollectorRegistry())
    recorder = Recorder([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await observed(
        {"type": "lifespan", "asgi": {"version": "3.0"}}, recorder.receive, recorder.send
    )

    assert ["lifespan.startup", "lifespan.shutdown"] == events
    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == [
        message["type"] for message in recorder.sent
    ]


def test_bad_otel_propagators_fails_in_observe_naming_the_variable() -> None:
    """Not at import: `opentelemetry.propagate` would fail there without naming it."""
    import os
    import subprocess
    import sys

    script = (
        "import asgi_observe\n"
        "try:\n"
        "    asgi_observe.observe(lambda scope, receive, send: None)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "OTEL_PROPAGATORS": "tracecontext,bogus"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert (0, True) == (result.returncode, result.stdout.startswith("OTEL_PROPAGATORS")), (
        result.stdout + result.stderr
    )


async def test_lifespan_shutdown_flushes_a_tracer_provider_given_to_observe() -> None:
    """Not the global provider: observe() still flushes it, so a graceful stop loses no span."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    # Far longer than the test: only the shutdown flush can export the span.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    try:
        app = observe(
            plain_app(),
            configure=False,
            tracer_provider=provider,
            registry=CollectorRegistry(),
            sentry=False,
        )
        recorder = Recorder()
        await app(http_scope("/"), recorder.receive, recorder.send)
        assert 0 == len(exporter.get_finished_spans())

        lifespan = Recorder([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan.receive, lifespan.send)

        assert "lifespan.shutdown.complete" == lifespan.sent[-1]["type"]
        assert ["GET"] == [span.name for span in exporter.get_finished_spans()]
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"exclude_paths": "/metrics"}, TypeError),
        ({"exclude_prefixes": ["health"]}, ValueError),
        ({"metrics_path": "metrics"}, ValueError),
        ({"health_path": ""}, ValueError),
    ],
)
def test_bad_options_fail_before_anything_is_installed(
    options: dict[str, Any], error: type[Exception]
) -> None:
    before = propagate.get_global_textmap()
    with pytest.raises(error):
        observe(plain_app(), configure=False, sentry=False, **options)
    assert before is propagate.get_global_textmap()


@pytest.mark.parametrize(
    ("root_path", "path"), [("/api", "/api/metrics"), ("/m", "/metrics"), ("", "/metrics")]
)
async def test_metrics_path_is_found_under_any_root_path(
    span_capture: Any, root_path: str, path: str
) -> None:
    """A root_path is stripped only at a segment boundary: "/m" is not the root of "/metrics"."""
    app = stack(plain_app(body=b"app"), span_capture, CollectorRegistry(), metrics_path="/metrics")
    recorder = Recorder()
    await app(http_scope(path, root_path=root_path), recorder.receive, recorder.send)

    body = b"".join(m["body"] for m in recorder.sent if m["type"] == "http.response.body")
    assert (200, True) == (recorder.status, body.startswith(b"# HELP"))
