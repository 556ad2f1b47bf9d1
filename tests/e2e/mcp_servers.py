"""The same small MCP server built with each SDK, for the end-to-end tests.

Tools: ``add`` succeeds, ``soft_fail`` returns an ``isError`` result (the SDK's ToolError),
``boom`` raises, ``chatty`` logs through stdlib logging and structlog. One prompt
(``greet``) and one resource (``res://greeting``).
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from asgi_observe.logs.correlation import add_request_context

tool_logger = logging.getLogger("mcp_e2e.tools")
structlog_lines: list[dict[str, Any]] = []


def _capture(logger: Any, method_name: str, event_dict: Any) -> Any:
    structlog_lines.append(dict(event_dict))
    raise structlog.DropEvent


structured = structlog.wrap_logger(
    None, processors=[add_request_context, _capture], wrapper_class=structlog.BoundLogger
)


def chatty_tool() -> str:
    tool_logger.info("chatty tool runs")
    structured.info("chatty tool runs")
    return "said it"


def mcp_sdk_app() -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("e2e")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    def soft_fail() -> str:
        raise ToolError("the soft failure")

    @server.tool()
    def boom() -> str:
        raise RuntimeError("the tool exploded")

    server.tool(name="chatty")(chatty_tool)

    @server.prompt()
    def greet(name: str) -> str:
        return f"hello {name}"

    @server.resource("res://greeting")
    def greeting() -> str:
        return "hi"

    return server.streamable_http_app()


def mounted_mcp_sdk_app() -> Any:
    """The mcp server mounted at /tools inside a FastAPI app, which runs its lifespan."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    inner = mcp_sdk_app()

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with inner.router.lifespan_context(inner):
            yield

    outer = FastAPI(lifespan=lifespan)

    @outer.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    outer.mount("/tools", inner)
    return outer


def fastmcp_app() -> Any:
    from fastmcp import FastMCP
    from fastmcp.exceptions import ToolError

    server = FastMCP("e2e")

    @server.tool
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool
    def soft_fail() -> str:
        raise ToolError("the soft failure")

    @server.tool
    def boom() -> str:
        raise RuntimeError("the tool exploded")

    server.tool(name="chatty")(chatty_tool)

    @server.prompt
    def greet(name: str) -> str:
        return f"hello {name}"

    @server.resource("res://greeting")
    def greeting() -> str:
        return "hi"

    return server.http_app()
