"""Opt-in Sentry events for MCP tool errors and JSON-RPC errors (``sentry_tool_errors``).

By default these count in the metrics and spans only: an ``isError`` result is an answer
the model is meant to read, not a fault of the server. A tool that *raises* reaches
Sentry anyway, through the SDK's own error log (docs/frameworks/mcp.md).
"""

from __future__ import annotations

import contextlib
import sys

from asgi_observe._core.mcp_facts import McpFacts
from asgi_observe.errors.sentry import MECHANISM, sentry_active

__all__ = ["report_mcp_error"]


def report_mcp_error(facts: McpFacts, error_type: str, target: str | None) -> None:
    """Send one Sentry message event for a tool error or a JSON-RPC error answer."""
    if error_type != "tool_error" and not error_type.startswith("-"):
        return  # an HTTP status or an unanswered request: the HTTP layers report those
    if not sentry_active():
        return
    sentry_sdk = sys.modules["sentry_sdk"]
    method = facts.method or "_unknown"
    what = f"{method} {target}" if target else method
    with contextlib.suppress(Exception):  # reporting must never break the response
        sentry_sdk.capture_event(
            {
                "level": "error",
                "message": f"MCP {what} answered {error_type}",
                "fingerprint": [MECHANISM, "mcp", method, target or "", error_type],
                "tags": {"mcp.error_type": error_type},
            }
        )
