"""NotifyLogHandler: log records at ERROR and above become notifications."""

from __future__ import annotations

import logging

from asgi_observe.errors.notify.marks import already_notified
from asgi_observe.errors.notify.mcp_tools import is_sdk_answer_log
from asgi_observe.errors.notify.notifier import Notifier

__all__ = ["NotifyLogHandler", "install_log_handler"]

_OWN_LOGGERS = ("asgi_observe",)  # our own failures must never notify (a loop when sending fails)


class NotifyLogHandler(logging.Handler):
    """Sends log records at `level` and above through a `Notifier`.

    A record carrying an exception that was already notified (an unhandled exception the
    server logs after NotifyMiddleware saw it) gives no second message. Records of the
    ``asgi_observe`` loggers are skipped, and so are the MCP SDKs' lines about an
    ``isError`` answer during an MCP call (without an exception). Since 0.1.0.
    """

    def __init__(self, notifier: Notifier, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.notifier = notifier

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_OWN_LOGGERS) or is_sdk_answer_log(record):
            # An SDK's line about an isError answer is the "mcp" event's, as in Sentry.
            return
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and already_notified(exc):
            return
        self.notifier.notify_log(record)  # never raises


def install_log_handler(
    notifier: Notifier, logger: logging.Logger | None = None
) -> NotifyLogHandler:
    """Add a `NotifyLogHandler` for `notifier` to `logger` (the root logger), once.

    A handler of another notifier is replaced: calling observe() again (an app factory,
    a test) must not make every log record notify twice.
    """
    target = logger if logger is not None else logging.getLogger()
    for handler in list(target.handlers):
        if isinstance(handler, NotifyLogHandler):
            if handler.notifier is notifier:
                return handler
            target.removeHandler(handler)
    handler = NotifyLogHandler(notifier)
    target.addHandler(handler)
    return handler
