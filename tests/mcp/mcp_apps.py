"""Hand-written MCP-shaped ASGI apps for the unit tests: they answer what they are told."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

Message = dict[str, Any]
Answer = Callable[[bytes], Sequence[Message]]


def json_answer(payload: Any, *, status: int = 200, session: bytes | None = None) -> Answer:
    def answer(body: bytes) -> Sequence[Message]:
        headers = [(b"content-type", b"application/json")]
        if session is not None:
            headers.append((b"mcp-session-id", session))
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        return [
            {"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": data},
        ]

    return answer


def sse_answer(*events: bytes, session: bytes | None = None, status: int = 200) -> Answer:
    def answer(body: bytes) -> Sequence[Message]:
        headers = [(b"content-type", b"text/event-stream")]
        if session is not None:
            headers.append((b"mcp-session-id", session))
        messages: list[Message] = [
            {"type": "http.response.start", "status": status, "headers": headers}
        ]
        messages += [
            {"type": "http.response.body", "body": event, "more_body": True} for event in events
        ]
        messages.append({"type": "http.response.body", "body": b"", "more_body": False})
        return messages

    return answer


def event(payload: Any) -> bytes:
    return b"event: message\r\ndata: " + json.dumps(payload).encode() + b"\r\n\r\n"


def accepted(body: bytes) -> Sequence[Message]:
    return [
        {"type": "http.response.start", "status": 202, "headers": []},
        {"type": "http.response.body", "body": b""},
    ]


def mcp_app(answer: Answer, *, read_body: bool = True) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks: list[bytes] = []
        if read_body:
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
        for message in answer(b"".join(chunks)):
            await send(message)

    return app
