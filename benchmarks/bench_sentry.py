"""The happy path through SentryMiddleware against the bare app and sentry-sdk's ASGI middleware.

Run: `.venv/bin/python -m pytest benchmarks/bench_sentry.py --benchmark-enable`
(reported times are per batch of `harness.BATCH` requests).

A real sentry-sdk client is active (a DSN, a transport that drops envelopes, no
integrations that would patch the apps), so each row pays what a deployment pays per
request that does not fail: for us the forks of the current and isolation scopes (as
sentry-sdk's own integrations make them) and one event processor;
nothing is built for the event until an exception is captured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from harness import http_scope, raw_app, run
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.transport import Transport

from asgi_observe.errors.sentry import SentryMiddleware

GROUP = "sentry: one request that does not fail"
BODY_GROUP = "sentry: one request that reads its body"
SCOPE = http_scope(method="POST", headers=[(b"content-type", b"application/json")])


class DroppingTransport(Transport):
    def capture_envelope(self, envelope: Any) -> None:
        return None


@pytest.fixture(scope="module", autouse=True)
def client() -> Iterator[Any]:
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=DroppingTransport,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    client = sentry_sdk.get_client()
    # sentry-sdk logs a hint to use its Starlette integration when Starlette is installed.
    logging.getLogger("sentry_sdk.errors").setLevel(logging.ERROR)
    yield client
    client.close(timeout=1)
    sentry_sdk.get_global_scope().set_client(None)


async def body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the request body once, then answers like `raw_app`."""
    await receive()
    await raw_app(scope, receive, send)


@pytest.mark.benchmark(group=GROUP)
def bench_bare_app(benchmark: Any) -> None:
    run(benchmark, raw_app, SCOPE)


@pytest.mark.benchmark(group=GROUP)
def bench_asgi_observe_sentry(benchmark: Any) -> None:
    run(benchmark, SentryMiddleware(raw_app), SCOPE)


@pytest.mark.benchmark(group=GROUP)
def bench_asgi_observe_sentry_with_5xx_capture(benchmark: Any) -> None:
    run(benchmark, SentryMiddleware(raw_app, capture_5xx_responses=True), SCOPE)


@pytest.mark.benchmark(group=GROUP)
def bench_sentry_sdk_asgi_middleware(benchmark: Any) -> None:
    run(benchmark, SentryAsgiMiddleware(raw_app), SCOPE)


@pytest.mark.benchmark(group=BODY_GROUP)
def bench_bare_app_reading_body(benchmark: Any) -> None:
    run(benchmark, body_app, SCOPE)


@pytest.mark.benchmark(group=BODY_GROUP)
def bench_asgi_observe_sentry_reading_body(benchmark: Any) -> None:
    run(benchmark, SentryMiddleware(body_app), SCOPE)


@pytest.mark.benchmark(group=BODY_GROUP)
def bench_sentry_sdk_asgi_middleware_reading_body(benchmark: Any) -> None:
    run(benchmark, SentryAsgiMiddleware(body_app), SCOPE)
