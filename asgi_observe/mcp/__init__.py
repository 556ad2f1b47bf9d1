"""MCP awareness: JSON-RPC message reading, MCP metrics, facts for spans, logs and Sentry.

No MCP package is imported: the JSON-RPC and SSE parsers are our own, bounded and total.
"""

from __future__ import annotations

from asgi_observe.mcp.discover import find_mcp_paths
from asgi_observe.mcp.middleware import DEFAULT_MAX_MESSAGE_BYTES, McpMiddleware

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "McpMiddleware", "find_mcp_paths"]
