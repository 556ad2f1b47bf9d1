"""A small MCP server (the official ``mcp`` SDK) observed with asgi_observe.

Run it (from the repository root):

    uvicorn examples.mcp_server:app

Then call it with the SDK's own client (the snippet in docs/frameworks/mcp.md):

    python -m examples.mcp_server call

Metrics are at http://127.0.0.1:8000/metrics; ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the
other OTEL_* variables) choose where spans go. See docs/frameworks/mcp.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

import asgi_observe
from asgi_observe.logs.correlation import JsonFormatter

# One JSON object per log line: request_id, trace_id, span_id and, during an MCP call,
# mcp_method_name, mcp_tool_name, jsonrpc_request_id and mcp_session_id.
_handler = logging.StreamHandler()
_handler.setFormatter(JsonFormatter())
logging.basicConfig(level=logging.INFO, handlers=[_handler])
logger = logging.getLogger("examples.mcp")

server = MCPServer("inventory")


@server.tool()
def stock(item: str) -> int:
    """How many of `item` are in stock."""
    logger.info("looking up stock")
    if item == "unobtainium":
        raise ToolError("no such item")  # an isError answer: HTTP 200, error_type tool_error
    return len(item)


@server.tool()
def reindex() -> str:
    """A tool with a bug: raising reaches Sentry (when configured) with its traceback."""
    raise RuntimeError("index is corrupt")


@server.prompt()
def restock(item: str) -> str:
    return f"Write a purchase order for {item}."


# observe() finds the SDK's Streamable HTTP route (/mcp) by itself; mcp_paths=["/mcp"]
# says so explicitly. The MCP metrics sit beside the HTTP ones at /metrics.
app = asgi_observe.observe(
    server.streamable_http_app(),
    metrics_path="/metrics",
    mcp_paths=["/mcp"],
)


async def call(url: str = "http://127.0.0.1:8000/mcp") -> None:
    from mcp import Client

    async with Client(url) as client:
        tools = await client.list_tools()  # the names the server lists become labels
        print("tools:", [tool.name for tool in tools.tools])
        print("stock:", (await client.call_tool("stock", {"item": "bolts"})).content)
        print("isError:", (await client.call_tool("stock", {"item": "unobtainium"})).is_error)
        print("raises:", (await client.call_tool("reindex", {})).is_error)


if __name__ == "__main__" and sys.argv[1:] == ["call"]:
    asyncio.run(call(os.environ.get("MCP_URL", "http://127.0.0.1:8000/mcp")))
