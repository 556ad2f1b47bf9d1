"""What one notification says: plain, already scrubbed data, shared by every destination."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KINDS", "LEVELS", "ErrorReport", "Frame"]

LEVELS = ("debug", "info", "warning", "error", "critical")
KINDS = ("exception", "status", "log", "manual", "mcp", "repeats", "suppressed", "test")
"""What caused a notification: an unhandled exception, a 5xx without one, a log record, a
`report_error` call, an MCP tool failure, the repeat summary of a deduplicated error, the
"N more suppressed" message of the rate limit, and the message of ``notify-test``."""


@dataclass(frozen=True)
class Frame:
    """One traceback frame as it is shown: where, and the source line."""

    filename: str
    lineno: int
    function: str
    line: str = ""


@dataclass(frozen=True)
class ErrorReport:
    """One notification, before it is formatted for a destination.

    Every text field has been through the scrubber. `repeats` counts the occurrences of
    the same fingerprint that were not sent since the previous message about it.
    """

    kind: str
    title: str
    message: str = ""
    level: str = "error"
    fingerprint: str = ""
    service: str = "unknown_service"
    environment: str | None = None
    release: str | None = None
    method: str | None = None
    route: str | None = None
    status: int | None = None
    request_id: str | None = None
    trace_id: str | None = None
    trace_url: str | None = None
    frames: tuple[Frame, ...] = ()
    context: tuple[tuple[str, str], ...] = ()
    repeats: int = 0
    timestamp: float = field(default=0.0, compare=False)
