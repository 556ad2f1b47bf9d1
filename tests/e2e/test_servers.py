"""What differs between servers: the shutdown flush under uvicorn, hypercorn, granian and
daphne, and Django's own essentials under each of them.

The request-level essentials (trace continuation, request ids, route templates, metrics,
error spans, logs) run for every server in test_examples.py.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    LOOPBACK,
    REPO_ROOT,
    Collector,
    ExportedSpan,
    Process,
    app_env,
    asgi_server_argv,
    clean_env,
    free_port,
    http_ready,
    running,
    wait_until,
)

pytestmark = pytest.mark.e2e

SERVERS = ["uvicorn", "hypercorn", "granian", "daphne"]
SPAN_KIND_SERVER = 2
WAIT_S = 15.0

SIGTERM_APP = """\
from asgi_observe import observe


async def last(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"bye"})


app = observe(last, metrics_path="/metrics")
"""


def server_span(collector: Collector, trace_id: str) -> ExportedSpan:
    def probe() -> ExportedSpan | None:
        for span in collector.recorder.snapshot():  # metric points arrive there too
            if (
                isinstance(span, ExportedSpan)
                and span.trace_id == trace_id
                and span.kind == SPAN_KIND_SERVER
            ):
                return span
        return None

    return wait_until(probe, timeout=WAIT_S, what=f"the SERVER span of trace {trace_id}")


def new_trace() -> tuple[str, str, str]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


@pytest.mark.parametrize("server", SERVERS)
def test_the_last_span_arrives_when_the_server_is_stopped_with_sigterm(
    server: str, tmp_path: Path, otlp_receiver: Collector
) -> None:
    """uvicorn, hypercorn and granian send lifespan shutdown, and LifespanMiddleware
    flushes; daphne sends no lifespan at all, and the SDK's exit handler flushes."""
    (tmp_path / "sigterm_app.py").write_text(SIGTERM_APP)
    port = free_port()
    service = f"sigterm-{server}-{secrets.token_hex(3)}"
    env = clean_env(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
            "OTEL_METRICS_EXPORTER": "none",
            # Nothing is exported on a timer: only the shutdown flush can deliver it.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "PYTHONPATH": str(tmp_path),
        }
    )
    trace_id, parent_id, header = new_trace()
    with running(
        asgi_server_argv(server, "sigterm_app:app", port),
        log_path=tmp_path / "server.log",
        env=env,
        cwd=tmp_path,
        ready=http_ready("/metrics", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    ) as process:
        response = httpx.get(process.base_url + "/last", headers={"traceparent": header}, timeout=5)
        time.sleep(0.2)
        early = otlp_receiver.recorder.snapshot()
        assert [] == [s for s in early if isinstance(s, ExportedSpan) and s.trace_id == trace_id]
        process.popen.send_signal(signal.SIGTERM)
        process.popen.wait(timeout=20)

    assert 200 == response.status_code
    span = server_span(otlp_receiver, trace_id)
    assert (service, parent_id) == (span.service_name, span.parent_span_id)


# --- Django under every server ----------------------------------------------------------


@pytest.fixture(scope="module", params=["uvicorn", "granian", "daphne"])
def django_served(
    request: pytest.FixtureRequest,
    otlp_receiver: Collector,
    echo_server: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Process, str]]:
    server = request.param
    port = free_port()
    service = f"django-{server}-{secrets.token_hex(3)}"
    env = app_env(otlp_receiver, echo_server, OTEL_SERVICE_NAME=service)
    log_path = tmp_path_factory.mktemp(f"django-{server}") / "server.log"
    with running(
        asgi_server_argv(server, "examples.django_app:app", port),
        log_path=log_path,
        env=env,
        cwd=REPO_ROOT,
        base_url=f"http://{LOOPBACK}:{port}",
        ready=http_ready("/health/live", status=200),
    ) as process:
        yield process, service


@pytest.mark.parametrize(
    ("path", "status", "route"),
    [
        ("/api/v1/users/7/orders/abc", 200, "/api/v1/users/{user_id}/orders/{order}"),
        ("/api/v1/archive/2024/", 200, "/api/v1/archive/{year}/"),
        ("/items/0", 404, "/items/{item_id}"),
        ("/sync-boom", 500, "/sync-boom"),
    ],
)
def test_django_routes_and_errors_in_spans_and_metrics(
    django_served: tuple[Process, str],
    otlp_receiver: Collector,
    path: str,
    status: int,
    route: str,
) -> None:
    process, service = django_served
    trace_id, parent_id, header = new_trace()
    response = httpx.get(process.base_url + path, headers={"traceparent": header}, timeout=10)
    assert status == response.status_code
    assert response.headers.get("x-request-id")
    span = server_span(otlp_receiver, trace_id)
    assert (service, parent_id, f"GET {route}") == (
        span.service_name,
        span.parent_span_id,
        span.name,
    )
    assert route == span.attributes["http.route"]
    if status == 500:
        assert ("RuntimeError", 2) == (span.attributes.get("error.type"), span.status_code)
        assert "exception" in span.events
    metrics = httpx.get(process.base_url + "/metrics", timeout=10).text
    assert f'http_response_status_code="{status}",http_route="{route}"' in metrics


def test_django_sync_view_log_lines_carry_the_request_ids(
    django_served: tuple[Process, str], otlp_receiver: Collector
) -> None:
    process, _service = django_served
    trace_id, _parent_id, header = new_trace()
    request_id = f"dj-{secrets.token_hex(6)}"
    response = httpx.get(
        process.base_url + "/api/v1/users/3/orders/x",
        headers={"traceparent": header, "x-request-id": request_id},
        timeout=10,
    )
    assert (200, request_id) == (response.status_code, response.headers["x-request-id"])
    span = server_span(otlp_receiver, trace_id)

    def line() -> dict[str, object] | None:
        for entry in process.json_lines():
            if entry.get("message") == "loading order" and entry.get("request_id") == request_id:
                return entry
        return None

    entry = wait_until(line, timeout=WAIT_S, what="the sync view's log line")
    assert (trace_id, span.span_id) == (entry["trace_id"], entry["span_id"])
