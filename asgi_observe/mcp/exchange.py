"""One HTTP request to an MCP endpoint: the JSON-RPC messages in and out, matched by id.

The exchange only reads the bytes the middleware passes by. The request body, and an
``application/json`` answer, are kept until complete only while they are under
``max_bytes``; an event stream is read event by event, never kept whole. What is past
the cap is still served and measured, with its details ``_unknown``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from asgi_observe._core.mcp_facts import McpFacts
from asgi_observe.mcp.families import McpFamilies
from asgi_observe.mcp.jsonrpc import (
    ERROR,
    INVALID,
    NOTIFICATION,
    REQUEST,
    RESULT,
    RpcMessage,
    parse_messages,
    quick_outcome,
    quick_request,
)
from asgi_observe.mcp.names import INVALID as INVALID_LABEL
from asgi_observe.mcp.names import method_label
from asgi_observe.mcp.sessions import DELETED, NOT_FOUND
from asgi_observe.mcp.sse import SseReader

__all__ = ["INCOMPLETE", "TOOL_ERROR", "Exchange", "McpSpans", "session_digest"]

TOOL_ERROR = "tool_error"
# A request the server never answered in this HTTP exchange (the client went away, or
# the app failed before answering).
INCOMPLETE = "incomplete_response"

_perf = time.perf_counter
_HEADER_ID: Any = object()  # the request known from Mcp-Method/Mcp-Name headers only
# Answers read in full: their names and versions matter (the rest: outcome only).
_READ_ANSWERS = frozenset({"tools/list", "prompts/list", "initialize", None})


def session_digest(session_id: str) -> str:
    """What telemetry shows of a session id: a digest, since the id is a credential.

    A client presenting an ``Mcp-Session-Id`` continues that session, so the id itself
    never leaves the process; the first 16 hex digits of its SHA-256 still tell the
    sessions apart and join logs, spans and Sentry events of one session.
    """
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class McpSpans:
    """Where the exchange's optional MCP spans come from (see mcp/spans.py)."""

    def start(self, pending: _Pending, parent: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def end(self, span: Any, error_type: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _Pending:
    """A request waiting for its answer."""

    __slots__ = ("id", "method", "name", "prompt", "span", "started", "tool", "uri")

    def __init__(self, key: Any, method: str | None, name: str | None, uri: str | None) -> None:
        self.id = None if key is _HEADER_ID else str(key)
        self.method = method
        self.name = name
        self.uri = uri
        self.tool = name if method == "tools/call" else None
        self.prompt = name if method == "prompts/get" else None
        self.started = _perf()
        self.span: Any = None


class Exchange:
    """The state of one MCP HTTP request; every method is total and cheap per message."""

    __slots__ = (
        "_body",
        "_body_size",
        "_families",
        "_header_method",
        "_header_name",
        "_invalid",
        "_json",
        "_json_size",
        "_max",
        "_notifications",
        "_null_error",
        "_on_error",
        "_on_parent",
        "_pending",
        "_session",
        "_spans",
        "_sse",
        "_status",
        "facts",
        "http_method",
    )

    def __init__(
        self,
        facts: McpFacts,
        families: McpFamilies,
        *,
        http_method: str,
        max_bytes: int,
        session_id: str | None,
        header_method: str | None,
        header_name: str | None,
        spans: McpSpans | None,
        on_parent: Callable[[dict[str, str] | None], object] | None,
        on_error: Callable[[McpFacts, str, str | None], None] | None,
    ) -> None:
        self.facts = facts
        self.http_method = http_method
        self._families = families
        self._max = max_bytes
        self._spans = spans
        self._on_parent = on_parent  # a deferred HTTP span's start (tracing/middleware.py)
        self._on_error = on_error
        self._body: list[bytes] | None = []
        self._body_size = 0
        self._json: list[bytes] | None = None
        self._json_size = 0
        self._sse: SseReader | None = None
        self._pending: dict[Any, _Pending] = {}
        self._notifications: list[str | None] = []
        self._invalid = 0
        self._null_error: str | None = None  # the code of an error answer with id null
        self._status: int | None = None
        self._session = session_id
        self._header_method = header_method
        self._header_name = header_name
        if session_id is not None:
            facts.session_id = session_digest(session_id)
        if header_method is not None:
            # 2026-07-28 requests name their method (and tool) in headers: known already,
            # even when the body turns out too large to read.
            facts.method = header_method
            if header_method == "tools/call":
                facts.tool_name = header_name
            elif header_method == "prompts/get":
                facts.prompt_name = header_name

    # --- the request ----------------------------------------------------------------

    def request_body(self, chunk: bytes, more: bool) -> None:
        body = self._body
        if body is None:
            return
        self._body_size += len(chunk)
        if self._body_size > self._max:
            self._body = None  # over the cap: served, measured, not read
            self._parent(None, None)
            self._client_messages(None)
            return
        if chunk:
            body.append(chunk)
        if not more:
            self._body = None
            if self.http_method != "POST":
                self._parent(None, None)
                return
            data = body[0] if len(body) == 1 else b"".join(body)
            if self._header_method is not None:
                quick = quick_request(data)
                if quick is not None:
                    self._header_request(*quick)
                    return
            messages = parse_messages(data) if data else []
            for message in messages:
                if message.kind == REQUEST or message.kind == NOTIFICATION:
                    self._first(message)  # before the HTTP span starts: it takes the facts
                    break
            first = messages[0] if messages else None
            if first is None:
                self._parent(None, None)
            else:
                self._parent(first.meta_traceparent, first.meta_tracestate)
            self._client_messages(messages)

    def _header_request(
        self, message_id: str | int, traceparent: str | None, tracestate: str | None
    ) -> None:
        # The headers named the method (and tool), the body gave the id and _meta
        # without a parse: the facts of `_first`, for a request read by `quick_request`.
        method = self._header_method
        name = self._header_name
        uri = None
        if method is not None and method.startswith("resources/"):
            name, uri = None, name
        facts = self.facts
        facts.resource_uri = uri
        facts.request_id = str(message_id)
        facts.meta_traceparent = traceparent
        self._parent(traceparent, tracestate)
        self._track(message_id, method, name, uri)

    def _parent(self, traceparent: str | None, tracestate: str | None) -> None:
        # The HTTP span may wait for the trace context of the first message's _meta.
        on_parent = self._on_parent
        if on_parent is None:
            return
        self._on_parent = None
        if traceparent is None:
            on_parent(None)
            return
        carrier = {"traceparent": traceparent}
        if tracestate is not None:
            carrier["tracestate"] = tracestate
        on_parent(carrier)

    def _client_messages(self, messages: list[RpcMessage] | None) -> None:
        facts = self.facts
        if messages is None:  # too large to read
            name = facts.tool_name if facts.tool_name is not None else facts.prompt_name
            self._track(_HEADER_ID, facts.method, name, None)
            return
        for message in messages:
            kind = message.kind
            if kind == REQUEST:
                if message.id not in self._pending:
                    self._track(message.id, message.method, message.name, message.uri)
            elif kind == NOTIFICATION:
                self._notifications.append(message.method)
            elif kind == INVALID:
                self._invalid += 1
            # RESULT/ERROR: the client answering a server-to-client request; no operation.

    def _first(self, message: RpcMessage) -> None:
        facts = self.facts
        facts.method = message.method
        if message.method == "tools/call":
            facts.tool_name = message.name
        elif message.method == "prompts/get":
            facts.prompt_name = message.name
        facts.resource_uri = message.uri
        if message.id is not None:
            facts.request_id = str(message.id)
        if message.protocol_version is not None and facts.protocol_version is None:
            facts.protocol_version = message.protocol_version
        facts.meta_traceparent = message.meta_traceparent

    def _track(self, key: Any, method: str | None, name: str | None, uri: str | None) -> None:
        pending = self._pending[key] = _Pending(key, method, name, uri)
        if self._spans is not None:
            pending.span = self._spans.start(pending, self.facts.server_span)

    # --- the response ---------------------------------------------------------------

    def response_start(self, status: int, content_type: bytes, session_id: str | None) -> None:
        self._status = status
        if session_id is not None:
            if self.facts.session_id is None:
                self.facts.session_id = session_digest(session_id)
            self._families.session_table.issued(session_id)
        if content_type.startswith(b"text/event-stream"):
            self._sse = SseReader(self._max)
        elif content_type.startswith(b"application/json"):
            self._json = []

    def response_body(self, chunk: bytes, more: bool) -> None:
        sse = self._sse
        if sse is not None:
            for data in sse.feed(chunk):
                if data is not None:
                    self._server_data(data)
            return
        parts = self._json
        if parts is None:
            return
        self._json_size += len(chunk)
        if self._json_size > self._max:
            self._json = None
            return
        if chunk:
            parts.append(chunk)
        if not more:
            self._json = None
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if data:
                self._server_data(data)

    def _server_data(self, data: bytes) -> None:
        pending = self._pending
        if len(pending) == 1:
            # One request waiting and an answer that needs no names read: the outcome
            # is found without parsing (most tools/call answers).
            key, waiting = next(iter(pending.items()))
            if waiting.method not in _READ_ANSWERS:
                expected = None if key is _HEADER_ID else key
                outcome = quick_outcome(data, expected, waiting.method == "tools/call")
                if outcome is not None:
                    del pending[key]
                    self._done(waiting, outcome, key)
                    return
        self._server_messages(parse_messages(data))

    def _server_messages(self, messages: list[RpcMessage]) -> None:
        families = self._families
        for message in messages:
            kind = message.kind
            if kind != RESULT and kind != ERROR:
                continue  # server-to-client requests and notifications in a stream
            if kind == RESULT:
                if message.listed_tools:
                    families.tools.publish(message.listed_tools)
                if message.listed_prompts:
                    families.prompts.publish(message.listed_prompts)
                if message.protocol_version is not None:  # initialize's answer
                    self.facts.protocol_version = message.protocol_version
                error_type = TOOL_ERROR if message.is_error else ""
            else:
                error_type = str(message.error_code) if message.error_code is not None else "_OTHER"
                if message.id is None:
                    self._null_error = error_type
                    if self.facts.error_type is None:  # before the span ends
                        self.facts.error_type = error_type
                    continue
            pending = self._pending.pop(message.id, None)
            if pending is None and len(self._pending) == 1 and _HEADER_ID in self._pending:
                pending = self._pending.pop(_HEADER_ID)
            if pending is not None:
                self._done(pending, error_type, message.id)

    def _done(self, pending: _Pending, error_type: str, message_id: Any) -> None:
        families = self._families
        facts = self.facts
        families.observe(
            method_label(pending.method),
            families.tools.label(pending.tool),
            families.prompts.label(pending.prompt),
            error_type,
            _perf() - pending.started,
        )
        is_first = facts.request_id is None or facts.request_id == str(message_id)
        if error_type and is_first and facts.error_type is None:
            facts.error_type = error_type
        if pending.span is not None and self._spans is not None:
            self._spans.end(pending.span, error_type)
        if error_type and self._on_error is not None:
            self._on_error(facts, error_type, pending.tool or pending.prompt)

    # --- the end --------------------------------------------------------------------

    def finish(self, duration_s: Callable[[], float]) -> None:
        """The HTTP exchange is over: what was not answered, notifications, bad input.

        `duration_s` gives the HTTP request's duration (only read when needed).
        """
        families = self._families
        status = self._status
        if not (self._pending or self._notifications or self._invalid or self._session):
            return
        failed = self._null_error or (str(status) if status is not None and status >= 400 else "")
        for pending in list(self._pending.values()):
            self._done(pending, failed or INCOMPLETE, None)
        self._pending.clear()
        for method in self._notifications:
            families.observe(method_label(method), "", "", failed, duration_s())
        if self._invalid:
            if self.facts.method is None and self.facts.error_type is None:
                self.facts.error_type = failed or INVALID_LABEL
            for _ in range(self._invalid):
                families.observe(INVALID_LABEL, "", "", failed, duration_s())
        session = self._session
        if session is not None and status is not None:
            if status == 404:
                families.session_table.end(session, NOT_FOUND)
            elif self.http_method == "DELETE" and 200 <= status < 300:
                families.session_table.end(session, DELETED)
