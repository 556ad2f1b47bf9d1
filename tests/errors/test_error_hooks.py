"""Framework error hooks: Litestar and Quart hand a handled exception to the record."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_driver import plain_app
from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from opentelemetry.trace import StatusCode
from quart import Quart

from asgi_observe.errors.hooks import register_error_hooks
from asgi_observe.tracing.middleware import TracingMiddleware


def litestar_app() -> Litestar:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise ValueError("handled by Litestar as a 500")

    @get("/gone", sync_to_thread=False)
    def gone() -> None:
        raise NotFoundException("handled by Litestar as a 404")

    return Litestar(route_handlers=[boom, gone])


async def get_status(app: Any, path: str) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.get(path)).status_code


def test_only_litestar_and_quart_get_hooks_and_only_once() -> None:
    litestar, quart = litestar_app(), Quart(__name__)
    before = len(litestar.after_exception)
    assert [True, True, True, True, False] == [
        register_error_hooks(litestar),
        register_error_hooks(litestar),
        register_error_hooks(quart),
        register_error_hooks(quart),
        register_error_hooks(plain_app()),
    ]
    assert before + 1 == len(litestar.after_exception)


async def test_litestar_500_span_records_the_exception(span_capture: Any) -> None:
    app = litestar_app()
    register_error_hooks(app)
    status = await get_status(
        TracingMiddleware(app, tracer_provider=span_capture.provider), "/boom"
    )

    [span] = span_capture.spans
    assert (500, "ValueError", StatusCode.ERROR) == (
        status,
        span.attributes["error.type"],
        span.status.status_code,
    )


async def test_litestar_4xx_exception_is_not_an_error(span_capture: Any) -> None:
    app = litestar_app()
    register_error_hooks(app)
    status = await get_status(
        TracingMiddleware(app, tracer_provider=span_capture.provider), "/gone"
    )

    [span] = span_capture.spans
    assert (404, None, StatusCode.UNSET, []) == (
        status,
        span.attributes.get("error.type"),
        span.status.status_code,
        list(span.events),
    )


async def test_quart_500_span_records_the_exception(span_capture: Any) -> None:
    app = Quart(__name__)

    @app.get("/boom")
    async def boom() -> str:
        raise KeyError("handled by Quart as a 500")

    register_error_hooks(app)
    status = await get_status(
        TracingMiddleware(app, tracer_provider=span_capture.provider), "/boom"
    )

    [span] = span_capture.spans
    assert (500, "KeyError") == (status, span.attributes["error.type"])
