"""One request's Sentry event processor: what an event gets, built only when one exists.

No sentry-sdk import here: the processor works on the plain dicts sentry-sdk passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from asgi_observe._core.record import RequestRecord, RouteResolver
from asgi_observe._core.span_ids import span_ids
from asgi_observe._core.types import Scope
from asgi_observe.errors.sentry_policy import (
    SCRUBBER_HINT_KEY,
    ErrorPolicy,
    is_automatic,
    mark_reported,
    scrub_last,
)
from asgi_observe.scrub.scrubber import SECRETS_HINT_KEY, Scrubber
from asgi_observe.scrub.secrets import SecretSet
from asgi_observe.scrub.urls import redact_userinfo
from asgi_observe.scrub.values import MAX_BODY_BYTES

# The session digest is tagged `mcp.sid`: the default scrubber filters every key naming a
# "session" (and that value wherever else it appears), and this value is a digest, not
# the credential (docs/frameworks/mcp.md).
_MCP_TAGS = {
    "mcp.method.name": "mcp.method.name",
    "gen_ai.tool.name": "gen_ai.tool.name",
    "gen_ai.prompt.name": "gen_ai.prompt.name",
    "mcp.session.id": "mcp.sid",
}


def _is_sdk_tool_log(event: Any) -> bool:
    # fastmcp logs a tool's isError answer at ERROR, without a traceback, and sentry-sdk's
    # logging integration makes that an event: isError answers are not events by default
    # (issue 15; McpMiddleware's sentry_tool_errors sends one event of ours instead).
    if not isinstance(event, dict) or event.get("exception"):
        return False
    logger = event.get("logger")
    return isinstance(logger, str) and logger.startswith(("fastmcp.", "mcp."))


class RequestEvents:
    """Added to the request's isolation scope: runs for every event captured inside it.

    Keeps references to the received body chunks (up to `MAX_BODY_BYTES`); everything
    else, the request's secret values included, is computed when an event is processed.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_get_client",
        "_policy",
        "_resolve_route",
        "_secrets",
        "record",
        "reported",
        "scope",
        "scrubber",
    )

    def __init__(
        self,
        scope: Scope,
        record: RequestRecord,
        scrubber: Scrubber,
        policy: ErrorPolicy,
        resolve_route: RouteResolver,
        get_client: Callable[[], Any],
    ) -> None:
        self.scope = scope
        self.record = record
        self.reported = False  # an exception event went out for this request
        self.scrubber = scrubber
        self._policy = policy
        self._resolve_route = resolve_route
        self._get_client = get_client
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._secrets: SecretSet | None = None

    def keep_body(self, chunk: Any) -> None:
        if chunk and self._body_size < MAX_BODY_BYTES:
            if self._body is None:
                self._body = []
            self._body.append(chunk)
            self._body_size += len(chunk)

    def secrets(self) -> SecretSet:
        """The secret values of this request's headers, cookies, query and body, and
        those learned from its events (`sentry_policy.learn`)."""
        if self._secrets is None:
            scope = self.scope
            body = b"".join(self._body)[:MAX_BODY_BYTES] if self._body else b""
            self._secrets = self.scrubber.request_secret_set(
                scope.get("headers") or (), scope.get("query_string") or b"", body
            )
        return self._secrets

    def __call__(self, event: Any, hint: Any) -> Any:
        """The event processor."""
        if not isinstance(hint, dict):
            return event
        # Scrubbing is arranged first: whatever fails below, the event leaves scrubbed.
        hint[SCRUBBER_HINT_KEY] = self.scrubber
        scrub_last(self._get_client())
        hint[SECRETS_HINT_KEY] = self.secrets()
        exc_info = hint.get("exc_info")
        exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
        if exc is None and self.record.mcp is not None and _is_sdk_tool_log(event):
            return None
        if isinstance(exc, BaseException):
            if is_automatic(event) and self._policy.is_expected(exc):
                return None
            mark_reported(exc)
            self.reported = True
        if isinstance(event, dict) and event.get("type") != "transaction":
            with contextlib.suppress(Exception):  # enrichment is best effort
                self._enrich(event)
        return event

    def _enrich(self, event: dict[str, Any]) -> None:
        record, scope = self.record, self.scope
        # Before the app returned, the route is read without caching it in the record,
        # so the layers that resolve it at the final response event still do.
        route = record.route if record.route_resolved else self._resolve_route(scope)
        tags = event.get("tags")
        if not isinstance(tags, dict):
            tags = event["tags"] = {}
        if record.request_id is not None:
            tags["request_id"] = record.request_id
        if record.mcp is not None:  # an MCP endpoint (issue 15): the tool and the session
            for key, value in record.mcp.span_attributes().items():
                if key in _MCP_TAGS:
                    tags.setdefault(_MCP_TAGS[key], value)
            extra = event.get("extra")
            if isinstance(extra, dict):  # a log record's copy, tagged above as mcp.sid
                extra.pop("mcp_session_id", None)
        if route:
            tags["http.route"] = route
            if not event.get("transaction"):
                event["transaction"] = route
                event["transaction_info"] = {"source": "route"}
        request = event.get("request")
        if not isinstance(request, dict):
            request = event["request"] = {}
        for key, value in request_data(scope, self.scrubber).items():
            request.setdefault(key, value)
        set_trace_context(event, record.span)


def request_data(scope: Scope, scrubber: Scrubber) -> dict[str, Any]:
    """Sentry's ``request`` interface from the ASGI scope, already scrubbed."""
    headers: dict[str, str] = {}
    host = None
    for raw_name, raw_value in scope.get("headers") or ():
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name == "host":
            host = value
        if scrubber.is_sensitive(name):
            value = scrubber.replacement
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] else server[0] if server else ""
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    # An absolute-form request target puts a whole URL, userinfo too, in the path.
    path = redact_userinfo(scope.get("path", ""), scrubber.replacement)
    data: dict[str, Any] = {"url": f"{scheme}://{host}{path}", "headers": headers}
    method = scope.get("method")
    if method:
        data["method"] = method
    query = scope.get("query_string")
    if query:
        data["query_string"] = scrubber.redact_query(query)
    return data


def set_trace_context(event: dict[str, Any], span: trace.Span | None) -> None:
    """Point the event's trace context at the request's OpenTelemetry span."""
    if span is None:
        span = trace.get_current_span()
    trace_id, span_id = span_ids(span)
    if trace_id is None:
        return
    contexts = event.get("contexts")
    if not isinstance(contexts, dict):
        contexts = event["contexts"] = {}
    current = contexts.get("trace")
    trace_context: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    trace_context["trace_id"] = trace_id
    trace_context["span_id"] = span_id
    parent = getattr(span, "parent", None)
    if isinstance(parent, trace.SpanContext) and parent.is_valid:
        trace_context["parent_span_id"] = format(parent.span_id, "016x")
    else:
        trace_context.pop("parent_span_id", None)
    sampling = trace_context.get("dynamic_sampling_context")
    if isinstance(sampling, dict):  # sent as the envelope's trace header: keep it consistent
        trace_context["dynamic_sampling_context"] = {**sampling, "trace_id": trace_id}
    contexts["trace"] = trace_context
