"""Logging from the request path: a faulty filter or handler never breaks a request, and
text a client chose never forges a log line.

``logging`` lets an exception from a logger's or a handler's filter (and from a handler
that overrides ``handle``) propagate into the caller; only ``emit`` errors are caught.
Our docs promise that observability faults never change a response (issue 13), so every
record we write while a request runs goes through `log_safely`.
"""

from __future__ import annotations

import contextlib
import logging

__all__ = ["log_safely", "printable"]

# C0 controls, DEL and C1 controls; plus the line and paragraph separators that
# str.splitlines() and some terminals treat as newlines.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def log_safely(
    logger: logging.Logger, level: int, msg: str, *args: object, exc_info: bool = False
) -> None:
    """`logger.log(level, msg, *args)`; any exception the logging setup raises is dropped."""
    with contextlib.suppress(Exception):  # a raising filter or handler must not reach the request
        logger.log(level, msg, *args, exc_info=exc_info)


def printable(text: str) -> str:
    """`text` with control characters escaped (``\\r`` -> ``\\x0d``, ESC -> ``\\x1b``),
    so that a client-chosen path or header cannot end a log line or drive a terminal."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)
