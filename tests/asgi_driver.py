"""Drive an ASGI app by hand: build scopes, feed messages, collect what it sends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Message = dict[str, Any]


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    scheme: str = "http",
    http_version: str = "1.1",
    client: tuple[str, int] | None = ("127.0.0.1", 54321),
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
    **extra: Any,
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": list(headers),
        "client": client,
        "server": server,
    }
    scope.update(extra)
    return scope


def websocket_scope(path: str = "/ws", *, headers: Iterable[tuple[bytes, bytes]] = ()) -> dict:
    scope = http_scope(path, headers=headers, scheme="ws")
    scope["type"] = "websocket"
    del scope["method"]
    scope["subprotocols"] = []
    return scope


class Recorder:
    """A receive/send pair: feeds `incoming` messages, records what the app sends."""

    def __init__(self, incoming: Iterable[Message] = ()) -> None:
        self.incoming = list(incoming) or [
            {"type": "http.request", "body": b"", "more_body": False}
        ]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return None

    def header(self, name: bytes) -> list[bytes]:
        for message in self.sent:
            if message["type"] in ("http.response.start", "websocket.accept"):
                return [value for key, value in message.get("headers", []) if key.lower() == name]
        return []


async def call(app: Any, scope: dict[str, Any], recorder: Recorder | None = None) -> Recorder:
    recorder = recorder or Recorder()
    await app(scope, recorder.receive, recorder.send)
    return recorder


def plain_app(status: int = 200, body: bytes = b"ok") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app
