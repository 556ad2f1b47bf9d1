"""What each cause of a notification contributes: its fingerprint, and how its report is built.

A report is built only when deduplication lets the occurrence through, and then on the
builder's thread (builder.py), so each function returns the fingerprint at once and the
building as a function of the repeat count. What can change once the request moves on, or
exists only in its context (the status, the route, the trace id, the message text), is read
now; the traceback and its variables stay as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from opentelemetry import trace

from asgi_observe._core.span_ids import span_ids
from asgi_observe.errors.notify.collect import Identity, build_report, callsite_frame
from asgi_observe.errors.notify.context import RequestContext, RequestFacts
from asgi_observe.errors.notify.fingerprint import (
    error_type_name,
    fingerprint,
    frame_name,
    in_app_frame,
)
from asgi_observe.errors.notify.report import LEVELS, ErrorReport
from asgi_observe.scrub import Scrubber

__all__ = ["Pending", "ReportSources"]


Build = Callable[[int], ErrorReport]
"""Builds the report, given the repeats carried from an ended window (builder's thread)."""


class Pending(NamedTuple):
    """One occurrence: its fingerprint, and `prepare`, called on the request's thread only
    when deduplication admits it, which reads the facts that will not last and returns
    the `Build`."""

    key: str
    prepare: Callable[[], Build]


class ReportSources:
    """Fingerprints and report builders for exceptions, statuses, log records, failures."""

    __slots__ = ("identity", "scrubber")

    def __init__(self, identity: Identity, scrubber: Scrubber) -> None:
        self.identity = identity
        self.scrubber = scrubber

    def _build(self, kind: str, title: str, key: str, **facts: Any) -> Build:
        def build(repeats: int) -> ErrorReport:
            return build_report(
                kind=kind,
                title=title,
                fingerprint=key,
                identity=self.identity,
                scrubber=self.scrubber,
                repeats=repeats,
                **facts,
            )

        return build

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

        def prepare() -> Build:
            return self._build(
                kind, title, key,
                message=_safe_str(exc), level=_level(level), exc=exc,
                request=_facts(request, status), context=dict(context) if context else None,
            )  # fmt: skip

        return Pending(key, prepare)

    def status(self, request: RequestContext, status: int) -> Pending:
        title = f"HTTP {status}"
        key = fingerprint(title, None, _route_key(request))

        def prepare() -> Build:
            facts = request.facts(status)
            path = facts.route or request.scope.get("path")
            target = " ".join(part for part in (facts.method, path) if part)
            message = f"{target} answered {status} without raising an exception"
            return self._build("status", title, key, message=message, level="error", request=facts)

        return Pending(key, prepare)

    def log_record(self, record: logging.LogRecord, request: RequestContext | None) -> Pending:
        """A record without an exception (one with an exception is an `exception`)."""
        callsite = f"{record.pathname}:{record.funcName}:{record.lineno}"
        key = fingerprint(f"log:{record.name}", callsite, _route_key(request))

        def prepare() -> Build:
            # While the logging call is still on the stack: its frame holds the variables.
            frame = callsite_frame(record.pathname, record.lineno, record.funcName)
            return self._build(
                "log", f"{record.levelname} logged by {record.name}", key,
                message=record.getMessage(), level=log_level(record),
                request=_facts(request, None), frames=[frame],
            )  # fmt: skip

        return Pending(key, prepare)

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

        def prepare() -> Build:
            return self._build(
                kind, title, key,
                message=message, level=_level(level), request=_facts(request, None),
                frames=[], context=dict(context) if context else None,
            )  # fmt: skip

        return Pending(key, prepare)


def log_level(record: logging.LogRecord) -> str:
    return "critical" if record.levelno >= logging.CRITICAL else "error"


def _facts(request: RequestContext | None, status: int | None) -> RequestFacts:
    if request is not None:
        return request.facts(status)
    return RequestFacts(trace_id=span_ids(trace.get_current_span())[0])  # outside a request


def _route_key(request: RequestContext | None) -> str | None:
    return request.route_key() if request is not None else None


def _level(level: str) -> str:
    return level if level in LEVELS else "error"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"
