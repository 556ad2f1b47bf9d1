"""observe() around Django's own ASGI handler: routes, errors, threads, Sentry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import django_site
import httpx
import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry
from sentry_receiver import Receiver, sentry_client, wait_for

from asgi_observe import observe
from asgi_observe.errors.sentry import MECHANISM
from asgi_observe.frameworks.django import is_django_handler, register_django_route_hook

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def handler() -> Any:
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def observed(span_capture: Any, **options: Any) -> Any:
    return observe(
        handler(),
        configure=False,
        tracer_provider=span_capture.provider,
        registry=CollectorRegistry(),
        **options,
    )


async def get(app: Any, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "status", "route"),
    [
        ("GET", "/", 200, "/"),
        ("GET", "/items/3", 200, "/items/{item_id}"),
        # Http404 raised by a matched view keeps the view's template.
        ("GET", "/items/0", 404, "/items/{item_id}"),
        # include() prefixes with converters, a sync view run in a thread.
        (
            "GET",
            "/api/v1/users/7/orders/abc-1",
            200,
            "/api/{version}/users/{user_id}/orders/{order}",
        ),
        # re_path: anchors dropped, named groups {name}, unnamed groups by position.
        ("GET", "/api/v1/archive/2024/05/", 200, "/api/{version}/archive/{year}/{month}/"),
        ("GET", "/api/v1/files/read-me.txt", 200, "/api/{version}/files/{0}.txt"),
        ("GET", "/legacy/archive/2023/01/", 200, "/legacy/archive/{year}/{month}/"),
        ("GET", "/legacy/users/1/orders/x", 200, "/legacy/users/{user_id}/orders/{order}"),
        ("GET", "/nope", 404, None),
        ("GET", "/items/not-a-number", 404, None),
        # Django's views answer 405 after the URL resolved: the template is kept.
        ("GET", "/only-post", 405, "/only-post"),
        ("GET", "/boom", 500, "/boom"),
        ("GET", "/sync-boom", 500, "/sync-boom"),
    ],
)
async def test_span_and_metrics_carry_the_route_django_resolved(
    method: str, path: str, status: int, route: str | None, span_capture: Any
) -> None:
    registry = CollectorRegistry()
    app = observe(
        handler(), configure=False, tracer_provider=span_capture.provider, registry=registry
    )
    response = await get(app, path, method)
    assert status == response.status_code
    [span] = span_capture.spans
    assert (f"{method} {route}" if route else method) == span.name
    assert route == span.attributes.get("http.route")
    label = route or "_unmatched"
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {
            "http_request_method": method,
            "http_route": label,
            "http_response_status_code": str(status),
        },
    )
    assert 1.0 == count


@pytest.mark.parametrize(
    ("path", "message"),
    [("/boom", "django async view broke"), ("/sync-boom", "django sync view broke")],
)
async def test_the_exception_django_answers_with_500_reaches_the_span(
    path: str, message: str, span_capture: Any
) -> None:
    response = await get(observed(span_capture), path)
    assert 500 == response.status_code
    [span] = span_capture.spans
    assert "ERROR" == span.status.status_code.name
    assert "RuntimeError" == span.attributes["error.type"]
    [event] = [e for e in span.events if e.name == "exception"]
    assert message == event.attributes["exception.message"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("options", "mechanisms"),
    [
        # Only the shared record can hand the exception over: Django swallowed it.
        ({"default_integrations": False}, {MECHANISM}),
        # With sentry-sdk's logging integration, Django's "Internal Server Error" log
        # line may report it first (when that logger reaches the integration); Sentry's
        # dedupe then drops the second copy. One event either way.
        ({}, {"logging", MECHANISM}),
    ],
    ids=["record", "logging-integration"],
)
async def test_the_exception_reaches_sentry_once_with_the_request_facts(
    options: dict[str, Any], mechanisms: set[str], receiver: Receiver, span_capture: Any
) -> None:
    with sentry_client(receiver.dsn, auto_enabling_integrations=False, **options):
        app = observed(span_capture, sentry=True)
        response = await get(app, "/sync-boom", traceparent=TRACEPARENT, **{"x-request-id": "dj-1"})
        sentry_sdk.flush(timeout=5)
        wait_for(lambda: bool(receiver.events))
    assert 500 == response.status_code
    [event] = receiver.events
    exception = event["exception"]["values"][-1]
    assert "RuntimeError" == exception["type"]
    assert exception["mechanism"]["type"] in mechanisms
    assert ("dj-1", "/sync-boom") == (event["tags"]["request_id"], event["tags"]["http.route"])
    assert TRACE_ID == event["contexts"]["trace"]["trace_id"]


async def test_a_django_404_is_not_reported(receiver: Receiver, span_capture: Any) -> None:
    with sentry_client(receiver.dsn, auto_enabling_integrations=False):
        response = await get(observed(span_capture, sentry=True), "/items/0")
        sentry_sdk.flush(timeout=5)
    assert (404, []) == (response.status_code, receiver.events)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_log_records_of_sync_views_in_threads_carry_the_ids(span_capture: Any) -> None:
    records = Records()
    logger = logging.getLogger("tests.django_site")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        response = await get(
            observed(span_capture),
            "/api/v1/users/7/orders/abc",
            traceparent=TRACEPARENT,
            **{"x-request-id": "thread-1"},
        )
    finally:
        logger.removeHandler(records)
    assert 200 == response.status_code
    [record] = records.records
    [span] = span_capture.spans
    assert ("thread-1", TRACE_ID, format(span.context.span_id, "016x")) == (
        record.request_id,  # type: ignore[attr-defined]
        record.trace_id,  # type: ignore[attr-defined]
        record.span_id,  # type: ignore[attr-defined]
    )


async def test_the_route_hook_is_registered_once_per_handler(span_capture: Any) -> None:
    django_handler = handler()
    observe(
        django_handler,
        configure=False,
        tracer_provider=span_capture.provider,
        registry=CollectorRegistry(),
    )
    wrapped = django_handler.resolve_request
    assert register_django_route_hook(django_handler)
    assert wrapped is django_handler.resolve_request
    app = observe(
        django_handler,
        configure=False,
        tracer_provider=span_capture.provider,
        registry=CollectorRegistry(),
    )
    assert 200 == (await get(app, "/items/1")).status_code
    assert "/items/{item_id}" == span_capture.spans[-1].attributes["http.route"]


def test_is_django_handler() -> None:
    assert (True, False) == (is_django_handler(handler()), is_django_handler(django_site))


def test_a_handler_without_resolve_request_is_left_alone(caplog: Any) -> None:
    class NotQuite:
        pass

    with caplog.at_level(logging.WARNING, "asgi_observe.frameworks"):
        assert not register_django_route_hook(NotQuite())
    assert "resolve_request" in caplog.text
