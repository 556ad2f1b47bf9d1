"""What MCP awareness learned about one request, shared by every pillar.

`asgi_observe.mcp` fills an `McpFacts` while the JSON-RPC messages pass; tracing, logs
and errors only read it, from ``RequestRecord.mcp`` or, inside tasks the app spawned,
from `current_mcp`. It lives in `_core` so that readers need nothing from `mcp/`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["McpFacts", "current_mcp", "is_answered_error"]


class McpFacts:
    """The first JSON-RPC request of an HTTP request and its outcome (None: not known)."""

    __slots__ = (
        "error_type",
        "meta_traceparent",
        "method",
        "prompt_name",
        "protocol_version",
        "request_id",
        "resource_uri",
        "server_span",
        "session_id",
        "tool_name",
    )

    def __init__(self) -> None:
        self.method: str | None = None
        self.tool_name: str | None = None
        self.prompt_name: str | None = None
        self.resource_uri: str | None = None
        self.request_id: str | None = None
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        # "tool_error", a JSON-RPC error code, or a word for unreadable input; None: success.
        self.error_type: str | None = None
        # The traceparent in the request's params._meta, as sent, and the HTTP server
        # span: the propagator nests the SDK's MCP span under this span (docs/frameworks/mcp.md).
        self.meta_traceparent: str | None = None
        self.server_span: Any = None

    def span_attributes(self) -> dict[str, str]:
        """The semantic-convention attributes known so far (never ``error.type``)."""
        # Straight-line tests: this runs twice per MCP request (tracing, at start and end).
        attributes: dict[str, str] = {}
        if self.method is not None:
            attributes["mcp.method.name"] = self.method
        if self.tool_name is not None:
            attributes["gen_ai.tool.name"] = self.tool_name
        if self.prompt_name is not None:
            attributes["gen_ai.prompt.name"] = self.prompt_name
        if self.resource_uri is not None:
            attributes["mcp.resource.uri"] = self.resource_uri
        if self.request_id is not None:
            attributes["jsonrpc.request.id"] = self.request_id
        if self.session_id is not None:
            attributes["mcp.session.id"] = self.session_id
        if self.protocol_version is not None:
            attributes["mcp.protocol.version"] = self.protocol_version
        if self.method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
        return attributes

    def attribute_key(self) -> tuple[str | None, ...]:
        """What `span_attributes` is made of: equal keys, equal attributes (cheap to compare)."""
        return (
            self.method,
            self.tool_name,
            self.prompt_name,
            self.resource_uri,
            self.request_id,
            self.session_id,
            self.protocol_version,
        )

    def log_fields(self) -> tuple[str | None, str | None, str | None, str | None]:
        """``(method, tool or prompt name, JSON-RPC id, session id)`` for log records."""
        return (
            self.method,
            self.tool_name if self.tool_name is not None else self.prompt_name,
            self.request_id,
            self.session_id,
        )


def is_answered_error(error_type: str | None) -> bool:
    """An ``isError`` tool result or a JSON-RPC error answer, as `McpFacts.error_type` says.

    Not an HTTP status or an unanswered request: the HTTP layers report those. Sentry
    (mcp/sentry.py) and error notifications (errors/notify) decide by this one rule.
    """
    return error_type is not None and (error_type == "tool_error" or error_type.startswith("-"))


# Set by McpMiddleware for the duration of an MCP request (token reset in its finally).
current_mcp: ContextVar[McpFacts | None] = ContextVar("asgi_observe.mcp", default=None)
