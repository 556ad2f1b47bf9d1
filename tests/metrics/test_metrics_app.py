"""metrics_app: the exposition endpoint, mounted in frameworks or dispatched by path."""

from __future__ import annotations

import gzip
import logging
import os
from typing import Any

import httpx
import pytest
from asgi_driver import Recorder, call, http_scope, plain_app, websocket_scope
from litestar import Litestar, asgi
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from asgi_observe.metrics.app import metrics_app, serve_metrics_at

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs done.", registry=registry).inc(3)
    Counter("other", "Something else.", registry=registry).inc()
    return registry


async def get(app: Any, path: str = "/", method: str = "GET", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, headers=headers)


async def test_prometheus_text_by_default(registry: CollectorRegistry) -> None:
    response = await get(metrics_app(registry))
    assert 200 == response.status_code
    assert "text/plain; version=0.0.4; charset=utf-8" == response.headers["content-type"]
    assert "jobs_total 3.0" in response.text


async def test_openmetrics_when_the_scraper_asks(registry: CollectorRegistry) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = await get(metrics_app(registry), accept=accept)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_gzip_when_accepted(registry: CollectorRegistry) -> None:
    plain = await get(metrics_app(registry), **{"accept-encoding": "identity"})
    transport = httpx.ASGITransport(app=metrics_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        request = client.build_request("GET", "/", headers={"accept-encoding": "gzip"})
        response = await client.send(request, stream=True)
        raw = await response.aread()
    assert "gzip" == response.headers["content-encoding"]
    assert plain.content == raw
    assert int(response.headers["content-length"]) == len(gzip.compress(plain.content))


async def test_head_has_the_headers_of_get_without_a_body(registry: CollectorRegistry) -> None:
    full = await get(metrics_app(registry))
    head = await get(metrics_app(registry), method="HEAD")
    assert (200, b"") == (head.status_code, head.content)
    assert full.headers["content-length"] == head.headers["content-length"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "BREW"])
async def test_other_methods_get_405_with_allow(registry: CollectorRegistry, method: str) -> None:
    response = await get(metrics_app(registry), method=method)
    assert (405, "GET, HEAD") == (response.status_code, response.headers["allow"])


async def test_name_filter_restricts_the_output(registry: CollectorRegistry) -> None:
    response = await get(metrics_app(registry), "/?name[]=jobs_total")
    assert ("jobs_total" in response.text, "other_total" in response.text) == (True, False)


async def test_lifespan_is_answered() -> None:
    recorder = Recorder([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await call(metrics_app(CollectorRegistry()), {"type": "lifespan"}, recorder)
    expected = ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert expected == [m["type"] for m in recorder.sent]


async def test_websocket_is_closed() -> None:
    recorder = await call(metrics_app(CollectorRegistry()), websocket_scope())
    assert ["websocket.close"] == [m["type"] for m in recorder.sent]


class BrokenCollector:
    def collect(self) -> Any:
        raise OSError("disk gone")


async def test_collector_error_is_a_500_with_a_message(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    registry.register(BrokenCollector())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="asgi_observe.metrics"):
        response = await get(metrics_app(registry))
    assert (500, "Error collecting metrics: OSError\n") == (response.status_code, response.text)
    assert 1 == len(caplog.records)


async def test_multiprocess_mode_aggregates_a_fresh_registry_per_scrape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    response = await get(metrics_app())
    # No worker wrote values yet: only this process's own process_* and python_info.
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert 200 == response.status_code
    assert {"python_info", "process_resident_memory_bytes", "process_cpu_seconds"} <= names
    assert not {name for name in names if not name.startswith(("process_", "python_info"))}
    assert f'pid="{os.getpid()}"' in response.text
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert 500 == (await get(metrics_app())).status_code


async def test_an_explicit_registry_wins_over_multiprocess_mode(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert "jobs_total 3.0" in (await get(metrics_app(registry))).text


async def test_routed_and_mounted_in_starlette(registry: CollectorRegistry) -> None:
    """A Route serves /metrics exactly; a Mount serves what is below it."""
    app = Starlette(
        routes=[
            Route("/metrics", metrics_app(registry)),
            Mount("/internal", app=metrics_app(registry)),
        ]
    )
    assert "jobs_total 3.0" in (await get(app, "/metrics")).text
    assert "jobs_total 3.0" in (await get(app, "/internal/metrics")).text


async def test_mounted_in_litestar(registry: CollectorRegistry) -> None:
    exposition = metrics_app(registry)

    @asgi("/metrics", is_mount=True, copy_scope=True)
    async def metrics(scope: Any, receive: Any, send: Any) -> None:
        await exposition(scope, receive, send)

    assert "jobs_total 3.0" in (await get(Litestar(route_handlers=[metrics]), "/metrics")).text


async def test_dispatched_by_path_in_front_of_quart(registry: CollectorRegistry) -> None:
    quart_app = Quart(__name__)

    @quart_app.route("/")
    async def index() -> str:
        return "quart"

    app = serve_metrics_at(quart_app, "/metrics", registry)
    assert "jobs_total 3.0" in (await get(app, "/metrics")).text
    assert "quart" == (await get(app, "/")).text


async def test_dispatcher_honours_root_path(registry: CollectorRegistry) -> None:
    app = serve_metrics_at(plain_app(body=b"app"), "/metrics", registry)
    scope = http_scope("/api/metrics", root_path="/api")
    recorder = await call(app, scope)
    assert b"jobs_total 3.0" in recorder.sent[1]["body"]
    assert b"app" == (await call(app, http_scope("/metricsx"))).sent[1]["body"]


def test_dispatcher_path_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="must start"):
        serve_metrics_at(plain_app(), "metrics")


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=abc",
        "application/openmetrics-text; version=1.x.0",
        "text/plain; version=abc",
        "text/plain;version=0.0.4,application/openmetrics-text; version=",
    ],
)
async def test_a_malformed_accept_gets_the_default_format_and_no_error_log(
    registry: CollectorRegistry, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: bad client input is not a collector fault (no 500, no ERROR traceback,
    so no Sentry event per request through sentry-sdk's logging integration)."""
    with caplog.at_level(logging.DEBUG):
        response = await get(metrics_app(registry), accept=accept)
    assert 200 == response.status_code
    assert response.headers["content-type"] in (
        "text/plain; version=0.0.4; charset=utf-8",
        OPENMETRICS,
    )
    assert "jobs_total 3.0" in response.text
    assert [] == [r for r in caplog.records if r.levelno >= logging.WARNING]
