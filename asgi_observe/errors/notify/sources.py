"""What each cause of a notification contributes: its fingerprint, and how its report is built.

A report is built only when deduplication lets the occurrence through, so each function
returns the fingerprint at once and the building as a function of the repeat count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from asgi_observe.errors.notify.collect import Identity, build_report, callsite_frame
from asgi_observe.errors.notify.context import RequestContext
from asgi_observe.errors.notify.fingerprint import (
    error_type_name,
    fingerprint,
    frame_name,
    in_app_frame,
)
from asgi_observe.errors.notify.report import LEVELS, ErrorReport
from asgi_observe.scrub.scrubber import Scrubber

__all__ = ["Pending", "ReportSources"]


class Pending(NamedTuple):
    key: str
    build: Callable[[int], ErrorReport]  # repeats carried from an ended window -> report


class ReportSources:
    """Fingerprints and report builders for exceptions, statuses, log records, failures."""

    __slots__ = ("identity", "scrubber")

    def __init__(self, identity: Identity, scrubber: Scrubber) -> None:
        self.identity = identity
        self.scrubber = scrubber

    def exception(
        self,
        exc: BaseException,
        *,
        kind: str,
        level: str,
        context: Mapping[str, Any] | None,
        request: RequestContext | None,
        status: int | None,
    ) -> Pending:
        frame = in_app_frame(exc.__traceback__)
        title = error_type_name(type(exc))
        key = fingerprint(title, frame_name(frame) if frame else None, _route_key(request))

        def build(repeats: int) -> ErrorReport:
            return build_report(
                kind=kind,
                title=title,
                message=_safe_str(exc),
                level=_level(level),
                fingerprint=key,
                identity=self.identity,
                scrubber=self.scrubber,
                exc=exc,
                request=request.facts(status) if request is not None else None,
                context=context,
                repeats=repeats,
            )

        return Pending(key, build)

    def status(self, request: RequestContext, status: int) -> Pending:
        title = f"HTTP {status}"
        key = fingerprint(title, None, _route_key(request))
        facts = request.facts(status)
        path = facts.route or request.scope.get("path")
        target = " ".join(part for part in (facts.method, path) if part)

        def build(repeats: int) -> ErrorReport:
            return build_report(
                kind="status",
                title=title,
                message=f"{target} answered {status} without raising an exception",
                level="error",
                fingerprint=key,
                identity=self.identity,
                scrubber=self.scrubber,
                request=facts,
                repeats=repeats,
            )

        return Pending(key, build)

    def log_record(self, record: logging.LogRecord, request: RequestContext | None) -> Pending:
        """A record without an exception (one with an exception is an `exception`)."""
        callsite = f"{record.pathname}:{record.funcName}:{record.lineno}"
        key = fingerprint(f"log:{record.name}", callsite, _route_key(request))
        # Found now, while the logging call is still on the stack.
        frame = callsite_frame(record.pathname, record.lineno, record.funcName)

        def build(repeats: int) -> ErrorReport:
            return build_report(
                kind="log",
                title=f"{record.levelname} logged by {record.name}",
                message=record.getMessage(),
                level=log_level(record),
                fingerprint=key,
                identity=self.identity,
                scrubber=self.scrubber,
                request=request.facts() if request is not None else None,
                frames=[frame],
                repeats=repeats,
            )

        return Pending(key, build)

    def failure(
        self,
        kind: str,
        title: str,
        message: str,
        *,
        where: str | None,
        level: str,
        context: Mapping[str, Any] | None,
        request: RequestContext | None,
    ) -> Pending:
        key = fingerprint(f"{kind}:{title}", where, _route_key(request))

        def build(repeats: int) -> ErrorReport:
            return build_report(
                kind=kind,
                title=title,
                message=message,
                level=_level(level),
                fingerprint=key,
                identity=self.identity,
                scrubber=self.scrubber,
                request=request.facts() if request is not None else None,
                frames=[],
                context=context,
                repeats=repeats,
            )

        return Pending(key, build)


def log_level(record: logging.LogRecord) -> str:
    return "critical" if record.levelno >= logging.CRITICAL else "error"


def _route_key(request: RequestContext | None) -> str | None:
    return request.route_key() if request is not None else None


def _level(level: str) -> str:
    return level if level in LEVELS else "error"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"
