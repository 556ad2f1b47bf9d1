"""MCP tool failures: a tool that raises notifies with its traceback; isError on request.

Both MCP SDKs catch a tool's exception, answer ``isError`` over HTTP 200 and log the
exception (``mcp`` with ``logger.exception`` on ``mcp.server.*``, fastmcp with
``logger.error(exc_info=True)`` on ``fastmcp.server.*``, a logger tree that does not
propagate to the root). That log record is the only place the exception is still
visible, so a handler on both trees turns it into an exception notification, the same
policy as the Sentry layer (docs/frameworks/mcp.md). ``isError`` results and JSON-RPC
error answers are answers meant for the model: they notify only with the ``mcp`` event.
"""

from __future__ import annotations

import logging

from asgi_observe._core.mcp_facts import McpFacts, current_mcp, is_answered_error
from asgi_observe.errors.notify.notifier import Notifier

__all__ = [
    "MCP_SDK_LOGGERS",
    "McpToolErrorHandler",
    "install_mcp_tool_handler",
    "is_sdk_answer_log",
    "mcp_failure",
]

MCP_SDK_LOGGERS = ("mcp.server", "fastmcp.server")
"""The loggers the SDKs log a raising tool on (fastmcp's reconfiguration replaces the
handlers of ``fastmcp`` itself, never of its children)."""

_SDK_MODULES = ("mcp.", "fastmcp.")
_MAX_UNWRAP = 8


class McpToolErrorHandler(logging.Handler):
    """Notifies the exception of an MCP SDK's error record logged during an MCP call.

    Records outside an MCP call, or without an exception, are left to the other handlers.
    Since 0.1.0.
    """

    def __init__(self, notifier: Notifier) -> None:
        super().__init__(logging.ERROR)
        self.notifier = notifier

    def emit(self, record: logging.LogRecord) -> None:
        facts = current_mcp.get()
        exc = record.exc_info[1] if record.exc_info else None
        if facts is None or exc is None:
            return
        self.notifier.notify_exception(  # never raises
            _original(exc), context={"mcp": _target(facts)}
        )


def install_mcp_tool_handler(notifier: Notifier) -> list[McpToolErrorHandler]:
    """Add one `McpToolErrorHandler` for `notifier` to each of `MCP_SDK_LOGGERS`, once.

    A handler of another notifier is replaced, as `install_log_handler` does.
    """
    installed = []
    for name in MCP_SDK_LOGGERS:
        logger = logging.getLogger(name)
        found = None
        for handler in list(logger.handlers):
            if isinstance(handler, McpToolErrorHandler):
                if handler.notifier is notifier:
                    found = handler
                else:
                    logger.removeHandler(handler)
        if found is None:
            found = McpToolErrorHandler(notifier)
            logger.addHandler(found)
        installed.append(found)
    return installed


def mcp_failure(notifier: Notifier, facts: McpFacts | None) -> bool:
    """Notify an ``isError`` result or JSON-RPC error answer the MCP layer recorded."""
    if facts is None or not is_answered_error(facts.error_type):
        return False
    what = _target(facts)
    return notifier.notify_failure(
        "mcp", f"MCP {what} failed", f"answered {facts.error_type}", where=what
    )


def is_sdk_answer_log(record: logging.LogRecord) -> bool:
    """An MCP SDK's log of an ``isError`` answer (no exception) during an MCP call."""
    return (
        not record.exc_info
        and record.name.startswith(_SDK_MODULES)
        and current_mcp.get() is not None
    )


def _target(facts: McpFacts) -> str:
    method = facts.method or "_unknown"
    name = facts.tool_name if facts.tool_name is not None else facts.prompt_name
    return f"{method} {name}" if name else method


def _original(exc: BaseException) -> BaseException:
    # mcp wraps the tool's exception in UnexpectedToolError (`raise ... from exc`): the
    # message, the type and the in-app frame of the fingerprint are the tool's own.
    for _ in range(_MAX_UNWRAP):
        cause = exc.__cause__
        if cause is None or not type(exc).__module__.startswith(_SDK_MODULES):
            break
        exc = cause
    return exc
