"""One HTTP request to an MCP endpoint: the JSON-RPC messages in and out, matched by id.

The exchange only reads the bytes the middleware passes by. The request body, and an
``application/json`` answer, are kept until complete only while they are under
``max_bytes``; an event stream is read event by event, never kept whole. What is past
the cap is still served and measured, with its details ``_unknown``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from asgi_observe._core.mcp_facts import McpFacts
from asgi_observe._core.record import RequestRecord
from asgi_observe._core.types import Message, Scope
from asgi_observe.mcp.families import McpFamilies
from asgi_observe.mcp.jsonrpc import (
    ERROR,
    INVALID,
    NOTIFICATION,
    REQUEST,
    RESULT,
    RpcMessage,
    id_token,
    parse_messages,
    quick_outcome,
    quick_request,
)
from asgi_observe.mcp.names import INVALID as INVALID_LABEL
from asgi_observe.mcp.names import KNOWN_METHODS, OTHER, UNKNOWN, method_label
from asgi_observe.mcp.sessions import DELETED, NOT_FOUND
from asgi_observe.mcp.sse import SseReader

__all__ = [
    "INCOMPLETE",
    "TOOL_ERROR",
    "Exchange",
    "ExchangeSettings",
    "McpSpans",
    "report_fault",
    "session_digest",
]

TOOL_ERROR = "tool_error"
# A request the server never answered in this HTTP exchange (the client went away, or
# the app failed before answering).
INCOMPLETE = "incomplete_response"

_perf = time.perf_counter
_log = logging.getLogger("asgi_observe.mcp")

_SESSION_ID = b"mcp-session-id"
_METHOD = b"mcp-method"
_NAME = b"mcp-name"
_PROTOCOL_VERSION = b"mcp-protocol-version"
_MCP_HEADERS = frozenset({_SESSION_ID, _METHOD, _NAME, _PROTOCOL_VERSION})
_CONTENT_TYPE = b"content-type"
_MAX_HEADER_TEXT = 256
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

    __slots__ = ("key", "method", "name", "span", "started", "token", "uri")

    def __init__(
        self, key: Any, token: bytes | None, method: str | None, name: str | None, uri: str | None
    ) -> None:
        self.key = key
        self.token = token  # its id as written, for quick_outcome (None: any id)
        self.method = method
        self.name = name
        self.uri = uri
        self.started = _perf()
        self.span: Any = None

    @property
    def id(self) -> str | None:
        return None if self.key is _HEADER_ID else str(self.key)

    @property
    def tool(self) -> str | None:
        return self.name if self.method == "tools/call" else None

    @property
    def prompt(self) -> str | None:
        return self.name if self.method == "prompts/get" else None


class ExchangeSettings:
    """What every exchange of one McpMiddleware shares, built once with the layer."""

    __slots__ = ("families", "max_bytes", "on_error", "spans")

    def __init__(
        self,
        families: McpFamilies,
        max_bytes: int,
        spans: McpSpans | None,
        on_error: Callable[[McpFacts, str, str | None], None] | None,
    ) -> None:
        self.families = families
        self.max_bytes = max_bytes
        self.spans = spans
        self.on_error = on_error


class Exchange:
    """The state of one MCP HTTP request; every method is total and cheap per message.

    The middleware passes it each ``http.request`` message (`request_body`), each message
    sent (`sent`), and calls `finish` at the end. While `reading` is False (after one of
    our own faults) nothing more is read: the exchange is served unmeasured.
    """

    # The common tools/call (one request, one JSON answer, each in one chunk) runs
    # straight through `request_body`, `sent` and `_done`: per request, every Python
    # call here is a few percent of the goal of docs/performance.md's MCP section.
    __slots__ = (
        "_body",
        "_body_size",
        "_header_method",
        "_header_name",
        "_invalid",
        "_json",
        "_json_size",
        "_live",
        "_notifications",
        "_null_error",
        "_on_parent",
        "_pending",
        "_session",
        "_settings",
        "_sse",
        "_status",
        "facts",
        "http_method",
        "reading",
    )

    def __init__(self, settings: ExchangeSettings, record: RequestRecord, scope: Scope) -> None:
        facts = self.facts = record.mcp = McpFacts()
        facts.server_span = record.span
        self._settings = settings
        self.http_method = scope["method"]
        self.reading = True
        self._on_parent = record.span_parent_hook  # a deferred HTTP span's start
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
        session_id = method = name = None
        try:
            # One pass, no dict: most headers are not MCP's, and the last of repeated
            # names wins, as for any header here.
            for header, value in scope["headers"]:
                if header in _MCP_HEADERS:
                    text = value.decode("latin-1")[:_MAX_HEADER_TEXT]
                    if header == _METHOD:
                        method = text
                    elif header == _NAME:
                        name = text
                    elif header == _SESSION_ID:
                        session_id = text
                    else:
                        facts.protocol_version = text
        except (TypeError, ValueError, AttributeError):
            # Malformed pairs or values that are not bytes: the app answers, and the
            # request is read from its body alone.
            session_id = method = name = None
            facts.protocol_version = None
        self._session = session_id
        self._header_method = method
        self._header_name = name
        sessions = settings.families.session_table
        sessions.sweep()
        self._live = False
        if session_id is not None:
            facts.session_id = session_digest(session_id)
            self._live = sessions.request_started(session_id)
        if method is not None:
            # 2026-07-28 requests name their method (and tool) in headers: known already,
            # even when the body turns out too large to read.
            facts.method = method
            if method == "tools/call":
                facts.tool_name = name
            elif method == "prompts/get":
                facts.prompt_name = name

    def fault(self) -> None:
        """Our own code failed: stop reading this exchange (the response is unchanged)."""
        self.reading = False
        report_fault()

    # --- the request ----------------------------------------------------------------

    def request_body(self, message: Message) -> None:
        body = self._body
        if body is None:
            return
        chunk = message.get("body", b"")
        size = self._body_size = self._body_size + len(chunk)
        if size > self._settings.max_bytes:
            self._body = None  # over the cap: served, measured, not read
            self._parent(None, None)
            self._client_messages(None)
            return
        if message.get("more_body", False):
            if chunk:
                body.append(chunk)
            return
        self._body = None
        data = b"".join((*body, chunk)) if body else chunk
        if self.http_method != "POST":
            self._parent(None, None)
            return
        method = self._header_method
        if method is not None:
            quick = quick_request(data)
            if quick is not None:
                # The headers named the method (and tool), the body gave the id and
                # _meta without a parse: the facts of `_first`, without it.
                message_id, token, traceparent, tracestate = quick
                name = self._header_name
                uri = None
                if method.startswith("resources/"):
                    name, uri = None, name
                facts = self.facts
                facts.resource_uri = uri
                facts.request_id = str(message_id)
                facts.meta_traceparent = traceparent
                self._parent(traceparent, tracestate)
                self._track(message_id, token, method, name, uri)
                return
        messages = parse_messages(data) if data else []
        for message_read in messages:
            if message_read.kind == REQUEST or message_read.kind == NOTIFICATION:
                self._first(message_read)  # before the HTTP span starts: it takes the facts
                break
        first = messages[0] if messages else None
        if first is None:
            self._parent(None, None)
        else:
            self._parent(first.meta_traceparent, first.meta_tracestate)
        self._client_messages(messages)

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
            self._track(_HEADER_ID, None, facts.method, name, None)
            return
        for message in messages:
            kind = message.kind
            if kind == REQUEST:
                if message.id not in self._pending:
                    token = None if message.id is None else id_token(message.id)
                    self._track(message.id, token, message.method, message.name, message.uri)
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

    def _track(
        self, key: Any, token: bytes | None, method: str | None, name: str | None, uri: str | None
    ) -> None:
        pending = self._pending[key] = _Pending(key, token, method, name, uri)
        spans = self._settings.spans
        if spans is not None:
            pending.span = spans.start(pending, self.facts.server_span)

    # --- the response ---------------------------------------------------------------

    def sent(self, message: Message) -> None:
        """A message the app sends: the answer's start, or a part of its body."""
        if message["type"] == "http.response.body":
            parts = self._json
            if parts is not None:
                chunk = message.get("body", b"")
                if not parts and not message.get("more_body", False):
                    # The whole answer in one message, as the SDKs send JSON.
                    self._json = None
                    if chunk and len(chunk) <= self._settings.max_bytes:
                        self._server_data(chunk)
                    return
                self._json_part(parts, chunk, message.get("more_body", False))
            elif self._sse is not None:
                for data in self._sse.feed(message.get("body", b"")):
                    if data is not None:
                        self._server_data(data)
        elif message["type"] == "http.response.start":
            self._response_start(message)

    def _response_start(self, message: Message) -> None:
        self._status = message["status"]
        content_type = b""
        session_id = None
        for name, value in message.get("headers") or ():
            if not name.islower():  # sent in capitals: ASGI asks for lowercase, not all do
                name = name.lower()
            if name == _CONTENT_TYPE:
                content_type = value.lower()
            elif name == _SESSION_ID:
                session_id = value.decode("latin-1")[:_MAX_HEADER_TEXT]
        if session_id is not None:
            if self.facts.session_id is None:
                self.facts.session_id = session_digest(session_id)
            self._settings.families.session_table.issued(session_id)
        if content_type.startswith(b"text/event-stream"):
            self._sse = SseReader(self._settings.max_bytes)
        elif content_type.startswith(b"application/json"):
            self._json = []

    def _json_part(self, parts: list[bytes], chunk: bytes, more: bool) -> None:
        self._json_size += len(chunk)
        if self._json_size > self._settings.max_bytes:
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
            [waiting] = pending.values()
            method = waiting.method
            if method not in _READ_ANSWERS:
                outcome = quick_outcome(data, waiting.token, method == "tools/call")
                if outcome is not None:
                    pending.clear()
                    self._done(waiting, outcome, waiting.key)
                    return
        self._server_messages(parse_messages(data))

    def _server_messages(self, messages: list[RpcMessage]) -> None:
        families = self._settings.families
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
        settings = self._settings
        families = settings.families
        method = pending.method
        tool = prompt = ""
        if method == "tools/call":
            tool = families.tools.label(pending.name)
        elif method == "prompts/get":
            prompt = families.prompts.label(pending.name)
        families.observe(
            method if method in KNOWN_METHODS else UNKNOWN if method is None else OTHER,
            tool,
            prompt,
            error_type,
            _perf() - pending.started,
        )
        if not error_type:
            if pending.span is not None and settings.spans is not None:
                settings.spans.end(pending.span, error_type)
            return
        facts = self.facts
        if facts.error_type is None and (
            facts.request_id is None or facts.request_id == str(message_id)
        ):
            facts.error_type = error_type  # the first request's outcome is the span's
        if pending.span is not None and settings.spans is not None:
            settings.spans.end(pending.span, error_type)
        if settings.on_error is not None:
            name = pending.name if method == "tools/call" or method == "prompts/get" else None
            settings.on_error(facts, error_type, name or None)

    # --- the end --------------------------------------------------------------------

    def finish(self, record: RequestRecord) -> None:
        """The HTTP exchange is over: what was not answered, notifications, bad input.

        Never raises: a fault of ours is logged (once) and the rest is left unmeasured.
        """
        if self._live:
            try:
                self._settings.families.session_table.request_ended(self._session or "")
            except Exception:
                report_fault()
        if not self.reading:
            return
        try:
            self._finish(record)
        except Exception:
            report_fault()

    def _finish(self, record: RequestRecord) -> None:
        families = self._settings.families
        status = self._status
        if self._body is not None and self.http_method == "POST":
            # Answered before its body was read (the SDKs' 406 and 415): one message of
            # what the headers said, timed over the whole request.
            self._body = None
            self._client_messages(None)
            for pending in self._pending.values():
                pending.started = _perf() - record.duration_s
        if not (self._pending or self._notifications or self._invalid or self._session):
            return
        failed = self._null_error or (str(status) if status is not None and status >= 400 else "")
        for pending in list(self._pending.values()):
            self._done(pending, failed or INCOMPLETE, None)
        self._pending.clear()
        for method in self._notifications:
            families.observe(method_label(method), "", "", failed, record.duration_s)
        if self._invalid:
            if self.facts.method is None and self.facts.error_type is None:
                self.facts.error_type = failed or INVALID_LABEL
            for _ in range(self._invalid):
                families.observe(INVALID_LABEL, "", "", failed, record.duration_s)
        session = self._session
        if session is not None and status is not None:
            if status == 404:
                families.session_table.end(session, NOT_FOUND)
            elif self.http_method == "DELETE" and 200 <= status < 300:
                families.session_table.end(session, DELETED)


_fault_reported = False


def report_fault() -> None:
    """Log our own failure to read an exchange: once at ERROR, then at DEBUG."""
    global _fault_reported
    if _fault_reported:
        _log.debug("asgi_observe could not read an MCP exchange", exc_info=True)
        return
    _fault_reported = True
    _log.exception(
        "asgi_observe could not read an MCP exchange; it is served unmeasured "
        "(further failures are logged at DEBUG)"
    )
