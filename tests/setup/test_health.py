"""health_app(): /live, /ready with passing, failing, raising and hanging checks, /startup."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from asgi_driver import Recorder, call, http_scope, websocket_scope
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_observe import Check, health_app
from asgi_observe.setup.health import HealthApp


async def get(app: Any, path: str, method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path)


async def ok() -> None:
    return None


async def returns_false() -> bool:
    return False


async def raises() -> None:
    raise ConnectionError("connect to postgresql://app:hunter2@db:5432/app failed")


async def hangs() -> None:
    await asyncio.sleep(3600)


async def test_live_is_200_while_serving() -> None:
    response = await get(health_app(), "/live")

    assert (200, {"status": "alive"}) == (response.status_code, response.json())
    assert "application/json" == response.headers["content-type"]
    assert "no-store" == response.headers["cache-control"]


async def test_ready_with_no_checks_is_healthy() -> None:
    response = await get(health_app(), "/ready")

    assert (200, {"status": "healthy", "checks": {}}) == (response.status_code, response.json())


async def test_ready_reports_each_check() -> None:
    async def with_message() -> str:
        return "3 replicas"

    response = await get(health_app({"db": ok, "cache": with_message}), "/ready")

    body = response.json()
    assert 200 == response.status_code
    assert "healthy" == body["status"]
    assert {"db", "cache"} == set(body["checks"])
    cache = body["checks"]["cache"]
    assert ("pass", True, "3 replicas") == (cache["status"], cache["critical"], cache["message"])
    assert isinstance(cache["latency_ms"], float)
    assert cache["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (returns_false, None),
        (raises, "ConnectionError: connect to postgresql://***@db:5432/app failed"),
    ],
)
async def test_a_failing_critical_check_makes_ready_503(check: Any, message: str | None) -> None:
    response = await get(health_app({"db": check, "other": ok}), "/ready")

    body = response.json()
    assert (503, "unhealthy") == (response.status_code, body["status"])
    assert ("fail", message) == (body["checks"]["db"]["status"], body["checks"]["db"]["message"])
    assert "pass" == body["checks"]["other"]["status"]


async def test_a_hanging_check_times_out_and_fails() -> None:
    app = health_app({"slow": hangs}, timeout=0.1)

    start = time.monotonic()
    response = await get(app, "/ready")
    elapsed = time.monotonic() - start

    check = response.json()["checks"]["slow"]
    assert (503, "fail", "timed out after 0.1 s") == (
        response.status_code,
        check["status"],
        check["message"],
    )
    assert 90 <= check["latency_ms"] < 1000
    assert elapsed < 1.0


async def test_a_check_that_ignores_cancellation_does_not_hold_the_probe() -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await released.wait()  # refuses to stop until the test lets it

    start = time.monotonic()
    response = await get(health_app({"stubborn": stubborn}, timeout=0.05), "/ready")
    elapsed = time.monotonic() - start
    released.set()
    await asyncio.sleep(0.01)

    assert 503 == response.status_code
    assert elapsed < 1.0


async def test_only_non_critical_failures_are_degraded_and_200() -> None:
    checks = [Check("db", ok), Check("search", raises, critical=False)]

    response = await get(health_app(checks), "/ready")

    body = response.json()
    assert (200, "degraded") == (response.status_code, body["status"])
    search = body["checks"]["search"]
    assert (False, "fail") == (search["critical"], search["status"])


async def test_checks_run_concurrently_each_with_its_own_timeout() -> None:
    async def slow_ok() -> None:
        await asyncio.sleep(0.2)

    checks = [
        Check("a", slow_ok),
        Check("b", slow_ok),
        Check("c", slow_ok),
        Check("quick", hangs, timeout=0.05, critical=False),
    ]

    start = time.monotonic()
    response = await get(health_app(checks, timeout=1.0), "/ready")
    elapsed = time.monotonic() - start

    body = response.json()
    assert "degraded" == body["status"]
    assert "timed out after 0.05 s" == body["checks"]["quick"]["message"]
    assert elapsed < 0.5


async def test_concurrent_probes_do_not_share_results() -> None:
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"call {calls}"

    app = health_app({"n": counted})
    responses = await asyncio.gather(*(get(app, "/ready") for _ in range(5)))

    assert 5 == calls
    assert {200} == {response.status_code for response in responses}


async def test_startup_is_503_until_marked_started() -> None:
    app = health_app()
    before = await get(app, "/startup")
    app.mark_started()
    after = await get(app, "/startup")

    assert (503, {"status": "starting"}) == (before.status_code, before.json())
    assert (200, {"status": "started"}) == (after.status_code, after.json())


async def test_served_alone_it_answers_lifespan_itself() -> None:
    app = health_app()
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)

    assert [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}] == sent
    assert app.started


async def test_mounted_in_starlette_paths_are_relative_to_the_mount() -> None:
    app = Starlette(routes=[Mount("/health", app=health_app({"db": ok}))])

    responses = [await get(app, f"/health/{probe}") for probe in ("live", "ready", "startup")]

    assert [200, 200, 503] == [response.status_code for response in responses]


async def test_root_path_and_trailing_slash() -> None:
    scope = http_scope("/api/health/ready/", root_path="/api/health")

    recorder = await call(health_app(), scope)

    assert 200 == recorder.status


async def test_unknown_path_is_404_and_other_methods_405() -> None:
    app = health_app()

    missing = await get(app, "/nope")
    post = await get(app, "/ready", method="POST")

    assert 404 == missing.status_code
    assert (405, "GET, HEAD") == (post.status_code, post.headers["allow"])


async def test_head_has_headers_but_no_body() -> None:
    response = await get(health_app(), "/live", method="HEAD")

    assert (200, b"") == (response.status_code, response.content)
    assert int(response.headers["content-length"]) > 0


async def test_websockets_are_closed() -> None:
    recorder = Recorder([{"type": "websocket.connect"}])

    await call(health_app(), websocket_scope("/live"), recorder)

    assert [{"type": "websocket.close", "code": 1000}] == recorder.sent


async def test_long_messages_are_truncated() -> None:
    async def verbose() -> None:
        raise ValueError("x" * 1000)

    response = await get(health_app({"v": verbose}), "/ready")

    message = response.json()["checks"]["v"]["message"]
    assert 200 == len(message)
    assert message.endswith("...")


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: health_app(timeout=0), ValueError),
        (lambda: health_app(timeout=float("nan")), ValueError),
        (lambda: health_app([Check("a", ok), Check("a", ok)]), ValueError),
        (lambda: Check("", ok), ValueError),
        (lambda: Check("x", "not callable"), TypeError),  # type: ignore[arg-type]
        (lambda: Check("x", ok, timeout=-1), ValueError),
    ],
)
def test_bad_configuration_fails_when_built(build: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


def test_health_app_returns_a_health_app() -> None:
    assert isinstance(health_app(), HealthApp)
