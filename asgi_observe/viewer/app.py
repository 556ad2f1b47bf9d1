"""The viewer's ASGI app: one HTML page with its CSS and script, and a read-only JSON API.

Mounted by `observe()` in front of every observability layer, so its own requests are
never traced, measured or logged into the viewer. Every request passes the
`ClientPolicy` first.
"""

from __future__ import annotations

import json
import logging
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from asgi_observe._core.types import Receive, Scope, Send
from asgi_observe.viewer.capture import end_serving_viewer, serving_viewer

if TYPE_CHECKING:
    from asgi_observe.viewer.viewer import Viewer

__all__ = ["ViewerApp"]

_STATIC = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/viewer.css": ("viewer.css", b"text/css; charset=utf-8"),
    "/viewer.js": ("viewer.js", b"text/javascript; charset=utf-8"),
}
# Nothing loads from anywhere but this app; nothing may frame it.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
_MAX_LIMIT = 1000
_log = logging.getLogger("asgi_observe.viewer")


class ViewerApp:
    """Serves the page at ``<mount>/`` and the API at ``<mount>/api/...`` (GET and HEAD)."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self._static: dict[str, bytes] = {}
        self._faulted = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        token = serving_viewer()  # log records made while answering are not kept
        try:
            await self._serve(scope, send)
        finally:
            end_serving_viewer(token)

    async def _serve(self, scope: Scope, send: Send) -> None:
        refusal = self.viewer.access.refusal(scope)
        if refusal is not None:
            await _respond(send, 403, b"asgi_observe viewer refused: " + refusal.encode() + b"\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        root = scope.get("root_path", "")
        path = scope["path"]
        local = path[len(root) :] if root and path.startswith(root) else path
        if local == "":
            await _respond(send, 308, b"", [(b"location", (root + "/").encode("latin-1"))])
            return
        static = _STATIC.get(local)
        if static is not None:
            content = self._file(static[0])
            headers = [(b"content-type", static[1])]
            await _respond(send, 200, content, headers, head=scope["method"] == "HEAD")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            body = self._api(local, query)
            encoded = None if body is None else json.dumps(body, default=str).encode()
        except Exception:  # a fault in the viewer must not take the server's error path
            # Once with the traceback: the page polls every two seconds.
            log = _log.debug if self._faulted else _log.exception
            self._faulted = True
            log("asgi_observe's viewer could not answer %s", local, exc_info=True)
            await _respond(send, 500, b'{"error": "viewer fault, see the logs"}', _JSON)
            return
        if encoded is None:
            await _respond(send, 404, b'{"error": "not found"}', _JSON)
            return
        await _respond(send, 200, encoded, _JSON, head=scope["method"] == "HEAD")

    def _file(self, name: str) -> bytes:
        content = self._static.get(name)
        if content is None:
            content = self._static[name] = (
                files("asgi_observe.viewer").joinpath("static").joinpath(name).read_bytes()
            )
        return content

    def _api(self, local: str, query: dict[str, str]) -> Any:
        viewer = self.viewer
        limit = _limit(query.get("limit"))
        if local == "/api/status":
            return viewer.status()
        if local == "/api/traces":
            return {"traces": viewer.trace_list(query.get("q", ""), limit)}
        if local.startswith("/api/traces/"):
            return viewer.trace(local[len("/api/traces/") :])
        if local == "/api/red":
            return {"red": viewer.red(), "mcp": viewer.mcp_red()}
        if local == "/api/errors":
            return {"groups": viewer.errors.groups(), "recent": viewer.errors.recent(limit)}
        if local.startswith("/api/errors/"):
            return viewer.errors.event(local[len("/api/errors/") :])
        if local == "/api/logs":
            return {
                "logs": viewer.logs.query(
                    request_id=query.get("request_id", ""),
                    trace_id=query.get("trace_id", ""),
                    level=query.get("level", ""),
                    limit=limit,
                )
            }
        return None


_JSON = [(b"content-type", b"application/json")]


def _limit(text: str | None) -> int:
    try:
        value = int(text) if text else 100
    except ValueError:
        value = 100
    return min(max(value, 1), _MAX_LIMIT)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    all_headers = [
        *(headers or [(b"content-type", b"text/plain; charset=utf-8")]),
        (b"content-length", b"%d" % len(body)),
        *_SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
