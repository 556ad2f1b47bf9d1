"""A raw ASGI app for the viewer's tests: a normal route, a slow one, an error, a 404."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgi_observe import traced
from asgi_observe.frameworks.routes import ROUTE_KEY

SECRET = "s3cr3t-token-value"
logger = logging.getLogger("viewer_test_app")
logger.setLevel(logging.INFO)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/items/"):
        scope[ROUTE_KEY] = "/items/{item_id}"
        logger.info("looked up item %s", path.rsplit("/", 1)[-1])
        await _respond(send, 200, b"item")
    elif path == "/slow":
        scope[ROUTE_KEY] = "/slow"
        async with traced("load_user"):
            with traced("db.query", {"db.query.text": "SELECT 1"}):
                await asyncio.sleep(0.01)
        with traced("render"):
            await asyncio.sleep(0.005)
        await _respond(send, 200, b"slow")
    elif path == "/boom":
        scope[ROUTE_KEY] = "/boom"
        logger.warning("about to fail, token=%s", SECRET)
        raise RuntimeError(f"payment failed for token {SECRET}")
    else:
        await _respond(send, 404, b"nope")


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
