"""The demo app `asgi-observe demo` serves: raw ASGI, so it needs nothing but a server.

Routes with parameters, an error, a slow request with child spans, a streaming response
and log lines, and the route template published in the scope (`routes.ROUTE_KEY`) the way
any raw ASGI app can, so spans and metrics are labelled ``/items/{item_id}`` rather than
``/items/42``. `warm_up` sends the demo a few requests of each kind, so the viewer has
something to show at first look.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgi_observe._core.types import Receive, Scope, Send
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.tracing.spans import traced

__all__ = ["WARM_UP_PATHS", "app", "warm_up"]

# A normal request, a slow one with child spans, a 404 and an error.
WARM_UP_PATHS = ("/", "/slow", "/no-such-page", "/error")

_logger = logging.getLogger("asgi_observe.demo")
Handler = Callable[[Scope, Receive, Send, dict[str, str]], Awaitable[None]]
_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def _route(method: str, template: str) -> Callable[[Handler], Handler]:
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, pattern, template, handler))
        return handler

    return register


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo ASGI app. Since 0.1.0."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _logger.info("demo app started")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    for method, pattern, template, handler in _ROUTES:
        match = pattern.match(scope["path"])
        if match is not None:
            scope[ROUTE_KEY] = template  # read by every layer after the app ran
            if scope["method"] != method:
                await _json(send, 405, {"error": "method not allowed"})
            else:
                await handler(scope, receive, send, match.groupdict())
            return
    await _json(send, 404, {"error": "not found", "path": scope["path"]})


@_route("GET", "/")
async def index(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    await _json(
        send, 200, {"routes": [f"{method} {template}" for method, _, template, _ in _ROUTES]}
    )


@_route("GET", "/items/{item_id}")
async def item(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    found = await _load_item(params["item_id"])
    _logger.info("looked up item", extra={"item_id": params["item_id"], "found": found})
    if not found:
        await _json(send, 404, {"error": "no such item", "item_id": params["item_id"]})
        return
    await _json(send, 200, {"item_id": params["item_id"], "name": f"item {params['item_id']}"})


@traced("demo.load_item")
async def _load_item(item_id: str) -> bool:
    await asyncio.sleep(0.005)  # stands in for a database query
    return item_id.isdigit()


@_route("GET", "/users/{user_id}/orders/{order_id}")
async def order(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    await _json(send, 200, params)


@_route("GET", "/error")
async def error(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    _logger.warning("about to fail on purpose")
    raise RuntimeError("the demo's error route failed on purpose")


@_route("GET", "/slow")
async def slow(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    profile = await _fetch_profile("42")
    with traced("demo.render", {"demo.template": "profile.html"}):
        await asyncio.sleep(0.02)
    _logger.info("rendered a slow page", extra={"user_id": profile["user_id"]})
    await _json(send, 200, profile)


@traced("demo.fetch_profile")
async def _fetch_profile(user_id: str) -> dict[str, str]:
    await _query("SELECT name FROM users WHERE id = ?")
    await _query("SELECT * FROM orders WHERE user_id = ?")
    return {"user_id": user_id, "name": "Ada"}


async def _query(statement: str) -> None:
    with traced("demo.db_query", {"db.query.text": statement}):
        await asyncio.sleep(0.04)  # stands in for a slow database


@_route("GET", "/stream")
async def stream(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for chunk in range(5):
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"chunk %d\n" % chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    _logger.info("streamed 5 chunks")


@_route("POST", "/echo")
async def echo(scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await _json(send, 200, {"received_bytes": len(body)})


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def warm_up(host: str, port: int, paths: tuple[str, ...] = WARM_UP_PATHS) -> list[int]:
    """GET each path from the demo server at (`host`, `port`); return the statuses.

    A minimal HTTP/1.1 client, so the demo needs nothing but uvicorn. Since 0.2.0.
    """
    statuses = []
    for path in paths:
        reader, writer = await asyncio.open_connection(host, port)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout=10)
            parts = status_line.split()
            statuses.append(int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0)
            await asyncio.wait_for(reader.read(), timeout=10)
        finally:
            writer.close()
    return statuses
