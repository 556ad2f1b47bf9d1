"""Error notifications from real Starlette, FastAPI, Litestar and Quart apps under observe().

Litestar and Quart answer the 500 themselves and swallow the exception; their error hooks
hand it to the request record, so they must notify exactly like Starlette, which re-raises.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_receiver import ChatReceiver, chat_receiver
from notify_helpers import clean_globals, notifier_for
from sentry_receiver import Receiver, sentry_client
from test_sentry_frameworks import BODY, FRAMEWORKS, HEADERS, PLANTED, QUERY, TRACE_ID

from asgi_observe import observe


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


async def call(app: Any, method: str, path: str) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, path, headers=HEADERS, json=BODY)
        return response.status_code


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
async def test_one_scrubbed_message_per_unhandled_exception(
    framework: str, receiver: ChatReceiver, span_capture: Any
) -> None:
    factory, route, _ = FRAMEWORKS[framework]
    notifier = notifier_for(receiver, webhook=True)
    app = observe(
        factory(), notify=notifier, configure=False, metrics=False,
        tracer_provider=span_capture.provider,
    )  # fmt: skip
    statuses = [await call(app, "POST", "/items/42" + QUERY), await call(app, "GET", "/nf")]
    assert notifier.force_flush(5000)

    assert [500, 404] == statuses
    [hook] = receiver.bodies("/hook")
    assert ("RuntimeError", "refused [Filtered] for bob") == (hook["title"], hook["message"])
    assert {
        "method": "POST",
        "route": route,
        "status": 500,
        "request_id": "req-fw-1",
        "trace_id": TRACE_ID,
        "trace_url": f"https://tempo.example/trace/{TRACE_ID}",
    } == hook["request"]
    assert "fail" == hook["frames"][-1]["function"]
    [telegram] = receiver.bodies("/sendMessage")
    assert f"POST {html.escape(route, quote=False)} → 500" in telegram["text"]
    assert 3 == len(receiver.posted)
    raw = b"".join(p.raw for p in receiver.posted).decode()
    assert [] == [secret for secret in PLANTED if secret in raw]


@pytest.mark.parametrize("framework", ["starlette", "litestar", "quart"])
async def test_sentry_and_notifications_see_the_same_one_error(
    framework: str, receiver: ChatReceiver, span_capture: Any
) -> None:
    factory, route, _ = FRAMEWORKS[framework]
    sentry = Receiver().start()
    try:
        with sentry_client(sentry.dsn):
            notifier = notifier_for(receiver, webhook=True)
            app = observe(
                factory(), notify=notifier, sentry=True, configure=False, metrics=False,
                tracer_provider=span_capture.provider,
            )  # fmt: skip
            assert 500 == await call(app, "POST", "/items/42" + QUERY)
            import sentry_sdk

            sentry_sdk.flush(timeout=5)
            assert notifier.force_flush(5000)
        [event] = sentry.events
    finally:
        sentry.stop()
    [hook] = receiver.bodies("/hook")
    assert (event["exception"]["values"][-1]["type"], route) == (
        hook["title"],
        hook["request"]["route"],
    )
