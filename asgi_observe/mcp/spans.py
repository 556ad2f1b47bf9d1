"""MCP SERVER spans of our own, for servers that emit none (opt-in: ``mcp_spans=True``).

Named ``{mcp.method.name} {target}`` with the MCP semantic-convention attributes, one per
JSON-RPC request, children of the HTTP SERVER span, from the message's receipt to its
answer. Both current SDKs emit such spans themselves; turn this on only for mcp 1.x,
fastmcp with its telemetry off, or a hand-written server (docs/frameworks/mcp.md).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from asgi_observe.mcp.exchange import McpSpans, _Pending

__all__ = ["OwnMcpSpans"]

_INSTRUMENTATION_NAME = "asgi_observe.mcp"


class OwnMcpSpans(McpSpans):
    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_INSTRUMENTATION_NAME, tracer_provider=tracer_provider)

    def start(self, pending: _Pending, parent: Any) -> Any:
        method = pending.method or "_unknown"
        target = pending.tool or pending.prompt or pending.uri
        attributes: dict[str, str] = {"mcp.method.name": method}
        if pending.id is not None:
            attributes["jsonrpc.request.id"] = pending.id
        if pending.tool is not None:
            attributes["gen_ai.tool.name"] = pending.tool
            attributes["gen_ai.operation.name"] = "execute_tool"
        elif pending.prompt is not None:
            attributes["gen_ai.prompt.name"] = pending.prompt
        elif pending.uri is not None:
            attributes["mcp.resource.uri"] = pending.uri
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self._tracer.start_span(
            f"{method} {target}" if target else method,
            context=context,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )

    def end(self, span: Any, error_type: str) -> None:
        if error_type:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
