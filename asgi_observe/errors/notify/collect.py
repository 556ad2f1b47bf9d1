"""Build a scrubbed `ErrorReport`: the same scrubber as Sentry events, on the same shape.

The exception, its top frames (with their local variables) and the request's headers and
query are laid out as a Sentry event and passed through `Scrubber.scrub_event`, so a secret
that would be redacted from a Sentry event is redacted here too: values under sensitive
names, and those values wherever else they appear (the exception message, a source line,
the additional context). The variables themselves are never shown.
"""

from __future__ import annotations

import linecache
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

from opentelemetry import trace

from asgi_observe._core.span_ids import span_ids
from asgi_observe.errors.notify.context import RequestFacts
from asgi_observe.errors.notify.fingerprint import is_own_code
from asgi_observe.errors.notify.report import ErrorReport, Frame
from asgi_observe.scrub import SECRETS_HINT_KEY, Scrubber

__all__ = ["Identity", "build_report", "callsite_frame", "exception_frames"]

MAX_FRAMES = 5
"""Frames shown, innermost last."""
MAX_MESSAGE = 2000
MAX_CONTEXT_ITEMS = 20
_MAX_VARIABLES = 64
_MAX_TEXT = 4096
_MAX_CONTAINER = 200  # a local container with more items is left out of secret detection
_TRACEBACK_DEPTH = 256
_FILTERED = "[Filtered]"


@dataclass(frozen=True)
class Identity:
    """Who sends: the service, its environment and release, and the trace link template."""

    service: str = "unknown_service"
    environment: str | None = None
    release: str | None = None
    trace_url: str | None = None  # "https://tempo.example/trace/{trace_id}"


def exception_frames(tb: TracebackType | None, limit: int = MAX_FRAMES) -> list[dict[str, Any]]:
    """The innermost `limit` frames of a traceback, as Sentry event frames with variables."""
    entries: list[TracebackType] = []
    for _ in range(_TRACEBACK_DEPTH):
        if tb is None:
            break
        if not is_own_code(tb.tb_frame.f_code.co_filename):
            entries.append(tb)
        tb = tb.tb_next
    return [_frame(entry) for entry in entries[-limit:]]


def _frame(tb: TracebackType) -> dict[str, Any]:
    frame = tb.tb_frame
    code = frame.f_code
    lineno = tb.tb_lineno or 0
    return {
        "filename": short_path(code.co_filename),
        "function": getattr(code, "co_qualname", code.co_name),
        "lineno": lineno,
        "context_line": linecache.getline(code.co_filename, lineno).strip(),
        "vars": _variables(frame.f_locals),
    }


def callsite_frame(pathname: str, lineno: int, function: str) -> dict[str, Any]:
    """The frame of a logging call, found on the current stack while the record is
    handled, with its variables (so a secret logged from a local is known as one)."""
    frame: Any = sys._getframe(1)
    for _ in range(_TRACEBACK_DEPTH):
        if frame is None:
            break
        code = frame.f_code
        if code.co_filename == pathname and frame.f_lineno == lineno:
            break
        frame = frame.f_back
    return {
        "filename": short_path(pathname),
        "function": function,
        "lineno": lineno,
        "context_line": linecache.getline(pathname, lineno).strip(),
        "vars": _variables(frame.f_locals) if frame is not None else {},
    }


def _variables(local_vars: Mapping[str, Any]) -> dict[str, Any]:
    # Only what can hold a secret as text: strings, and small containers of them.
    kept: dict[str, Any] = {}
    for name, value in list(local_vars.items())[:_MAX_VARIABLES]:
        if isinstance(value, (str, bytes)):
            if len(value) <= _MAX_TEXT:  # longer values are not taken for secrets
                kept[name] = value
        elif isinstance(value, (Mapping, list, tuple)):
            try:
                if len(value) <= _MAX_CONTAINER:
                    kept[name] = value
            except Exception:
                continue
    return kept


@lru_cache(maxsize=512)
def short_path(filename: str) -> str:
    """A path as shown: inside site-packages, or relative to the working directory."""
    for marker in ("site-packages", "dist-packages"):
        _, found, rest = filename.rpartition(f"{os.sep}{marker}{os.sep}")
        if found:
            return rest
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if relative.startswith("..") else relative


def build_report(
    *,
    kind: str,
    title: str,
    message: str,
    level: str,
    fingerprint: str,
    identity: Identity,
    scrubber: Scrubber,
    exc: BaseException | None = None,
    request: RequestFacts | None = None,
    frames: list[dict[str, Any]] | None = None,
    context: Mapping[str, Any] | None = None,
    repeats: int = 0,
) -> ErrorReport:
    """Everything one message says, scrubbed. Never raises on odd input."""
    if frames is None:
        frames = exception_frames(exc.__traceback__) if exc is not None else []
    event: dict[str, Any] = {
        "exception": {
            "values": [
                {"type": title, "value": message[:MAX_MESSAGE], "stacktrace": {"frames": frames}}
            ]
        },
        "extra": dict(list(context.items())[:MAX_CONTEXT_ITEMS]) if context else {},
    }
    secrets: frozenset[str] = frozenset()
    if request is not None:
        event["request"] = {
            "headers": [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers],
            "query_string": request.query_string.decode("latin-1"),
        }
        secrets = scrubber.request_secrets(request.headers, request.query_string)
    scrubbed = scrubber.scrub_event(event, {SECRETS_HINT_KEY: secrets})
    value = _first_exception(scrubbed)
    trace_id = request.trace_id if request is not None else span_ids(trace.get_current_span())[0]
    return ErrorReport(
        kind=kind,
        title=_text(value.get("type"), title if value else _FILTERED),
        message=_text(value.get("value"), "" if value else _FILTERED),
        level=level,
        fingerprint=fingerprint,
        service=identity.service,
        environment=identity.environment,
        release=identity.release,
        method=request.method if request else None,
        route=request.route if request else None,
        status=request.status if request else None,
        request_id=request.request_id if request else None,
        trace_id=trace_id,
        trace_url=_trace_url(identity.trace_url, trace_id),
        frames=tuple(_shown_frames(value)),
        context=tuple(_context(scrubbed)),
        repeats=repeats,
        timestamp=time.time(),
    )


def _first_exception(event: Any) -> dict[str, Any]:
    try:
        value = event["exception"]["values"][0]
    except (KeyError, IndexError, TypeError):
        return {}  # the scrubber fell back to its safe event: show nothing of the content
    return value if isinstance(value, dict) else {}


def _shown_frames(value: dict[str, Any]) -> list[Frame]:
    stacktrace = value.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    shown = []
    for frame in frames if isinstance(frames, list) else ():
        if isinstance(frame, dict):
            lineno = frame.get("lineno")
            shown.append(
                Frame(
                    filename=_text(frame.get("filename"), "?"),
                    lineno=lineno if isinstance(lineno, int) else 0,
                    function=_text(frame.get("function"), "?"),
                    line=_text(frame.get("context_line"), ""),
                )
            )
    return shown


def _context(event: Any) -> list[tuple[str, str]]:
    extra = event.get("extra") if isinstance(event, dict) else None
    if not isinstance(extra, dict):
        return []
    return [(str(key), _text(value, "")) for key, value in extra.items()]


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _trace_url(template: str | None, trace_id: str | None) -> str | None:
    if not template or not trace_id:
        return None
    return template.replace("{trace_id}", trace_id)
