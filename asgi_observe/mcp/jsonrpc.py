"""JSON-RPC 2.0 messages of MCP, read from bytes; pure and total (never raises on input).

https://www.jsonrpc.org/specification and the MCP base protocol
(https://modelcontextprotocol.io/specification/2025-11-25/basic). Only the facts
observability needs are kept; the parsed document itself is dropped at once.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ERROR",
    "INVALID",
    "MAX_BATCH_MESSAGES",
    "MAX_LISTED_NAMES",
    "MAX_TEXT_LENGTH",
    "NOTIFICATION",
    "REQUEST",
    "RESULT",
    "RpcMessage",
    "id_token",
    "parse_messages",
    "quick_outcome",
    "quick_request",
]

REQUEST = "request"
NOTIFICATION = "notification"
RESULT = "result"
ERROR = "error"
INVALID = "invalid"

# A batch (protocol versions before 2025-06-18) is read up to this many messages; the
# rest are served but not looked at, so a 10,000-message batch costs no more than 100.
MAX_BATCH_MESSAGES = 100
# Names read from one tools/list or prompts/list answer.
MAX_LISTED_NAMES = 1000
# Ids, names, URIs and versions longer than this are cut (they end up in spans and logs).
MAX_TEXT_LENGTH = 256

_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_Id = str | int | float


class RpcMessage:
    """One JSON-RPC message: what it is, its id, and what MCP observability reads of it."""

    __slots__ = (
        "error_code",
        "id",
        "is_error",
        "kind",
        "listed_prompts",
        "listed_tools",
        "meta_traceparent",
        "meta_tracestate",
        "method",
        "name",
        "protocol_version",
        "uri",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.id: _Id | None = None
        self.method: str | None = None
        self.name: str | None = None  # tools/call and prompts/get: params.name
        self.uri: str | None = None  # resources/*: params.uri
        self.protocol_version: str | None = None
        self.meta_traceparent: str | None = None
        self.meta_tracestate: str | None = None
        self.is_error = False  # a result with isError: true
        self.error_code: int | None = None
        self.listed_tools: list[str] | None = None
        self.listed_prompts: list[str] | None = None

    def __repr__(self) -> str:
        return f"RpcMessage({self.kind!r}, id={self.id!r}, method={self.method!r})"


def parse_messages(data: bytes) -> list[RpcMessage]:
    """The messages of one body or SSE ``data`` field: one, a batch, or ``[INVALID]``.

    Malformed JSON, invalid UTF-8, nesting deep enough to exhaust the recursion limit,
    and JSON that is not JSON-RPC all give one INVALID message.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError, TypeError):  # UnicodeDecodeError is a ValueError
        return [RpcMessage(INVALID)]
    if isinstance(document, list):
        if not document:
            return [RpcMessage(INVALID)]
        return [_message(item) for item in document[:MAX_BATCH_MESSAGES]]
    return [_message(document)]


# A result written the usual way: "jsonrpc" (which a parse requires), the id, "result".
_LEADING_RESULT = re.compile(
    rb'\A\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d{1,19}|"[^"\\]*")\s*,\s*"result"\s*:'
)
_LEADING_ID = re.compile(
    rb'\A\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d{1,19}|"[^"\\]*")\s*,'
)


def quick_outcome(data: bytes, expected_id: bytes | None, tool_call: bool = True) -> str | None:
    """The outcome of a lone answer without parsing it: "" (success), "tool_error", or None.

    The answer must start as a result whose id is written as `expected_id` (the id's
    token as the request wrote it, see `quick_request` and `id_token`; None: any id;
    b"": an id no token can stand for). None when only a full parse can tell: an error
    answer, a request or notification, a batch, another key order, escapes that could
    spell a key, or (for a `tool_call`) an ``isError`` key that is missing, not plainly
    true or false, or present more than once. A key cannot be matched inside a string
    value, where its quotes are escaped.
    """
    if expected_id and data.startswith(_COMPACT_HEAD + expected_id + _COMPACT_RESULT):
        end = len(expected_id) + _COMPACT_LENGTH  # as the SDKs write it: no regex needed
    else:
        leading = _LEADING_RESULT.match(data)
        if leading is None or (expected_id is not None and leading.group(1) != expected_id):
            return None
        end = leading.end()
    if not tool_call:
        return ""
    if data.find(b"\\") >= 0 and b"\\u" in data:  # one byte first: found by memchr
        return None
    at = data.find(b'"isError"', end)
    if at < 0 or data.find(b'"isError"', at + 9) >= 0:
        return None
    if data.startswith(b'"isError":false', at):
        return ""
    rest = data[at + 9 : at + 40].lstrip()
    if rest[:1] != b":":
        return None
    value = rest[1:].lstrip()
    if value.startswith(b"true"):
        return "tool_error"
    return "" if value.startswith(b"false") else None


_COMPACT_HEAD = b'{"jsonrpc":"2.0","id":'
_COMPACT_RESULT = b',"result":'
_COMPACT_LENGTH = len(_COMPACT_HEAD) + len(_COMPACT_RESULT)
_META_VALUE = rb'\s*:\s*"([^"\\]{0,256})"'
_TRACEPARENT = re.compile(rb'"traceparent"' + _META_VALUE)
_TRACESTATE = re.compile(rb'"tracestate"' + _META_VALUE)


def quick_request(data: bytes) -> tuple[str | int, bytes, str | None, str | None] | None:
    """``(id, id token, _meta traceparent, _meta tracestate)`` of a lone request, unparsed.

    For 2026-07-28 requests, whose method and name the ``Mcp-Method``/``Mcp-Name``
    headers already give; the id token is the id as written (``3``, ``"a"``), for
    `quick_outcome`. None when only a full parse can tell: no leading id, or a
    ``traceparent`` (or ``tracestate``) that is not plainly the one in
    ``params._meta`` (after ``"_meta"``, after the arguments, and the only one).
    """
    leading = _LEADING_ID.match(data)
    if leading is None:
        return None
    token = leading.group(1)
    # Cut like a parsed id, so the answer's id (read either way) still matches.
    message_id: str | int = (
        token[1:-1][:MAX_TEXT_LENGTH].decode("latin-1") if token[:1] == b'"' else int(token)
    )
    at = data.find(b'"traceparent"')
    if at < 0:
        return message_id, token, None, None
    meta = data.rfind(b'"_meta"', 0, at)
    if (
        meta < 0
        or data.find(b'"traceparent"', at + 13) >= 0
        or data.find(b'"arguments"', meta, at) >= 0
    ):
        return None
    traceparent = _TRACEPARENT.match(data, at)
    if traceparent is None:
        return None
    tracestate = None
    key = data.find(b'"tracestate"')
    if key >= 0:
        # Read only when plainly the one in params._meta, as for the traceparent.
        if (
            key < meta
            or data.find(b'"tracestate"', key + 12) >= 0
            or data.find(b'"arguments"', meta, key) >= 0
        ):
            return None
        state = _TRACESTATE.match(data, key)
        if state is None:
            return None
        tracestate = state.group(1).decode("latin-1")
    return message_id, token, traceparent.group(1).decode("latin-1"), tracestate


def id_token(value: str | int | float) -> bytes:
    """How `quick_outcome` sees a parsed id written plainly; b"" if it never can."""
    if isinstance(value, str):
        if '"' in value or "\\" in value or len(value) >= MAX_TEXT_LENGTH:
            return b""  # escaped, or possibly cut from a longer id
        return b'"' + value.encode() + b'"'
    return str(value).encode() if isinstance(value, int) else b""


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT_LENGTH] if isinstance(value, str) else None


def _message(item: Any) -> RpcMessage:
    if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
        return RpcMessage(INVALID)
    has_id = "id" in item
    message_id = item.get("id")
    # Strings and numbers only (null only on error answers); true/false are not numbers.
    if has_id and (
        isinstance(message_id, bool)
        or (message_id is not None and not isinstance(message_id, (str, int, float)))
    ):
        return RpcMessage(INVALID)
    method = item.get("method")
    if method is not None:
        if not isinstance(method, str):
            return RpcMessage(INVALID)
        if has_id and message_id is None:
            return RpcMessage(INVALID)
        message = RpcMessage(REQUEST if has_id else NOTIFICATION)
        message.method = method[:MAX_TEXT_LENGTH]
        _read_params(message, item.get("params"))
    elif "result" in item and has_id and message_id is not None:
        message = RpcMessage(RESULT)
        _read_result(message, item["result"])
    elif "error" in item and has_id:
        message = RpcMessage(ERROR)
        error = item["error"]
        code = error.get("code") if isinstance(error, dict) else None
        message.error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    else:
        return RpcMessage(INVALID)
    message.id = message_id[:MAX_TEXT_LENGTH] if isinstance(message_id, str) else message_id
    return message


def _read_params(message: RpcMessage, params: Any) -> None:
    if not isinstance(params, dict):
        return
    message.name = _text(params.get("name"))
    message.uri = _text(params.get("uri"))
    meta = params.get("_meta")
    if isinstance(meta, dict):
        message.meta_traceparent = _text(meta.get("traceparent"))
        message.meta_tracestate = _text(meta.get("tracestate"))
        message.protocol_version = _text(meta.get(_META_VERSION))
    if message.protocol_version is None and message.method == "initialize":
        message.protocol_version = _text(params.get("protocolVersion"))


def _read_result(message: RpcMessage, result: Any) -> None:
    if not isinstance(result, dict):
        return
    message.is_error = result.get("isError") is True
    message.protocol_version = _text(result.get("protocolVersion"))  # initialize's answer
    tools = result.get("tools")
    if isinstance(tools, list):
        message.listed_tools = _names(tools)
    prompts = result.get("prompts")
    if isinstance(prompts, list):
        message.listed_prompts = _names(prompts)


def _names(entries: list[Any]) -> list[str]:
    names = []
    for entry in entries[:MAX_LISTED_NAMES]:
        if isinstance(entry, dict):
            name = entry.get("name")
            if isinstance(name, str) and len(name) <= MAX_TEXT_LENGTH:
                names.append(name)
    return names
