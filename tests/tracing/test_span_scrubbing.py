"""What our layer puts on a span is scrubbed like a Sentry event (issue 13): the exception
event and the status description carried the raw exception message, secrets included."""

from __future__ import annotations

from typing import Any

import pytest
from asgi_driver import call, http_scope

from asgi_observe.tracing.middleware import TracingMiddleware

TOKEN = "-".join(["span", "bearer", "token", "31"])  # spelled nowhere in this file
DB_PASSWORD = "-".join(["span", "db", "pass", "32"])
API_KEY = "-".join(["span", "query", "key", "33"])


def raising(message: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError(message)

    return app


def exported_text(span: Any) -> str:
    parts = [str(span.status.description), *map(str, span.attributes.values())]
    for event in span.events:
        parts.extend(map(str, event.attributes.values()))
    return "\n".join(parts)


async def test_exception_event_and_status_are_scrubbed(span_capture: Any) -> None:
    message = (
        f"upstream refused {TOKEN} for key {API_KEY}; "
        f"db at postgres://app:{DB_PASSWORD}@db:5432/x; password='hunter22'"
    )
    app = TracingMiddleware(raising(message), tracer_provider=span_capture.provider)
    scope = http_scope(
        "/x", headers=[(b"authorization", f"Bearer {TOKEN}".encode())],
        query_string=f"api_key={API_KEY}".encode(),
    )  # fmt: skip
    with pytest.raises(RuntimeError):
        await call(app, scope)
    (span,) = span_capture.spans
    text = exported_text(span)
    for secret in (TOKEN, DB_PASSWORD, API_KEY, "hunter22"):
        assert secret not in text
    (event,) = span.events
    assert "exception" == event.name
    assert "RuntimeError" == event.attributes["exception.type"]
    assert event.attributes["exception.message"].startswith("upstream refused [Filtered] for key")
    assert "postgres://[Filtered]@db:5432/x" in event.attributes["exception.message"]
    assert "Traceback (most recent call last)" in event.attributes["exception.stacktrace"]
    assert span.status.description.startswith("RuntimeError: upstream refused [Filtered]")


async def test_userinfo_in_an_absolute_form_target_is_not_a_span_attribute(
    span_capture: Any,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    layered = TracingMiddleware(app, tracer_provider=span_capture.provider)
    await call(layered, http_scope(f"http://proxy:{DB_PASSWORD}@upstream/x"))
    (span,) = span_capture.spans
    assert "http://REDACTED@upstream/x" == span.attributes["url.path"]
