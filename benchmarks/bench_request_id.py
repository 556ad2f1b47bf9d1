"""RequestIdMiddleware against the bare app and asgi-correlation-id; the log record factory.

Run: `.venv/bin/python -m pytest benchmarks/bench_request_id.py --benchmark-enable`
(request rows report times per batch of `harness.BATCH` requests; log rows per record).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_correlation_id import CorrelationIdMiddleware
from harness import http_scope, raw_app, run
from opentelemetry.sdk.trace import TracerProvider

from asgi_observe.logs.correlation import (
    install_log_record_factory,
    request_id_var,
    uninstall_log_record_factory,
)
from asgi_observe.logs.request_id import RequestIdMiddleware

# A UUID4 in hex: accepted by both our validator and asgi-correlation-id's.
INCOMING = (b"x-request-id", b"3f2504e04f8941d39a0c0305e82c3301")
WITH_ID = http_scope(headers=[INCOMING])
WITHOUT_ID = http_scope()

GROUPS = {
    "incoming id": WITH_ID,
    "generated id": WITHOUT_ID,
}


def correlation_id_without_sentry(app: Any) -> CorrelationIdMiddleware:
    # sentry-sdk is installed here, so asgi-correlation-id tags Sentry's scope on every
    # request by default; this row shows it as installed without sentry-sdk.
    middleware = CorrelationIdMiddleware(app)
    middleware.sentry_extension = lambda correlation_id: None
    return middleware


APPS = {
    "bare app": lambda app: app,
    "asgi_observe RequestIdMiddleware": lambda app: RequestIdMiddleware(app),
    "asgi_observe RequestIdMiddleware + access log": lambda app: RequestIdMiddleware(
        app, access_log=True
    ),
    "asgi-correlation-id": lambda app: CorrelationIdMiddleware(app),
    "asgi-correlation-id (no sentry tag)": correlation_id_without_sentry,
}


@pytest.fixture
def quiet_access_log() -> Iterator[None]:
    # The access log record is built and handled, then dropped by a NullHandler: this
    # measures our cost, not a handler's I/O.
    access = logging.getLogger("asgi_observe.access")
    handler = logging.NullHandler()
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    yield
    access.removeHandler(handler)
    access.propagate = True
    access.setLevel(logging.NOTSET)


def _request_rows(group: str) -> list[Any]:
    return [
        pytest.param(
            name, GROUPS[group], id=name, marks=pytest.mark.benchmark(group=f"request id: {group}")
        )
        for name in APPS
    ]


@pytest.mark.parametrize(("name", "scope"), _request_rows("incoming id"))
def bench_incoming_id(benchmark: Any, quiet_access_log: None, name: str, scope: Any) -> None:
    run(benchmark, APPS[name](raw_app), scope)


@pytest.mark.parametrize(("name", "scope"), _request_rows("generated id"))
def bench_generated_id(benchmark: Any, quiet_access_log: None, name: str, scope: Any) -> None:
    run(benchmark, APPS[name](raw_app), scope)


# --- the log record factory -----------------------------------------------------------

RECORD_ARGS = ("bench", logging.INFO, __file__, 1, "hello %s", ("world",), None)
LOG_GROUP = "logging: create one LogRecord"


@pytest.fixture
def our_factory() -> Iterator[Any]:
    original = logging.getLogRecordFactory()
    install_log_record_factory()
    yield logging.getLogRecordFactory()
    uninstall_log_record_factory()
    logging.setLogRecordFactory(original)


@pytest.mark.benchmark(group=LOG_GROUP)
def bench_stdlib_record(benchmark: Any) -> None:
    benchmark(logging.LogRecord, *RECORD_ARGS)


@pytest.mark.benchmark(group=LOG_GROUP)
def bench_factory_outside_a_request(benchmark: Any, our_factory: Any) -> None:
    record = benchmark(our_factory, *RECORD_ARGS)
    assert record.request_id is None


@pytest.mark.benchmark(group=LOG_GROUP)
def bench_factory_inside_a_request_with_span(benchmark: Any, our_factory: Any) -> None:
    provider = TracerProvider()
    token = request_id_var.set("3f2504e04f8941d39a0c0305e82c3301")
    try:
        with provider.get_tracer("bench").start_as_current_span("request"):
            record = benchmark(our_factory, *RECORD_ARGS)
    finally:
        request_id_var.reset(token)
        provider.shutdown()
    assert record.trace_id is not None
