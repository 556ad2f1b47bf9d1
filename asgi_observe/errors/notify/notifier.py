"""The Notifier: deduplicates errors, scrubs them and hands them to each destination's sender."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgi_observe.errors.notify.collect import Identity, build_report, callsite_frame
from asgi_observe.errors.notify.context import RequestContext, current_request
from asgi_observe.errors.notify.dedup import Deduplicator
from asgi_observe.errors.notify.destinations import Destination, redactor
from asgi_observe.errors.notify.fingerprint import (
    error_type_name,
    fingerprint,
    frame_name,
    in_app_frame,
)
from asgi_observe.errors.notify.report import LEVELS, ErrorReport
from asgi_observe.errors.notify.worker import DestinationWorker
from asgi_observe.errors.sentry_policy import ErrorPolicy
from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER, Scrubber

__all__ = ["EVENTS", "Notifier", "NotifyOptions", "already_notified"]

_logger = logging.getLogger("asgi_observe.notify")

EVENTS = frozenset({"exceptions", "5xx", "logs", "mcp"})
"""What can cause a notification: unhandled exceptions, 5xx responses without one, log
records at ERROR and above, MCP tool failures."""
_TICK_SECONDS = 1.0
_MAX_CHAIN = 16
_NOTIFIED_MARK = "_asgi_observe_notified"


@dataclass(frozen=True)
class NotifyOptions:
    """How a `Notifier` behaves; see docs/notifications.md. Since 0.1.0.

    Attributes:
        identity: service, environment, release and trace link template in messages.
        events: which of `EVENTS` cause a notification.
        dedup_window: seconds during which one fingerprint gives one message (0: off).
        rate_limit: messages a minute per destination, then one "N more suppressed".
        queue_size: messages waiting per destination; beyond, new ones are dropped.
        timeout: seconds one HTTP request may take.
        retries: further attempts after a network error, a 5xx or a 429.
        max_fingerprints: fingerprints remembered for deduplication.
    """

    identity: Identity = field(default_factory=Identity)
    events: frozenset[str] = frozenset({"exceptions"})
    dedup_window: float = 300.0
    rate_limit: int = 20
    queue_size: int = 100
    timeout: float = 5.0
    retries: int = 3
    max_fingerprints: int = 1024

    def __post_init__(self) -> None:
        unknown = set(self.events) - EVENTS
        if unknown:
            raise ValueError(f"events: unknown {sorted(unknown)} (supported: {sorted(EVENTS)})")
        for name in ("dedup_window", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0")
        for name in ("rate_limit", "queue_size", "max_fingerprints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError("retries must be an integer >= 0")


class Notifier:
    """Turns errors into chat messages: fingerprinted, deduplicated, scrubbed, rate limited.

    Every ``notify_*`` method is cheap for a repeat (a fingerprint and a counter), never
    blocks on the network and never raises; the message is built only when it will be
    sent, and sent by one background thread per destination.

    Args:
        destinations: where messages go (`TelegramDestination`, `SlackDestination`, ...).
        options: deduplication, rate limit, queue and retry settings, and the identity.
        scrubber: what to redact; the default `Scrubber()`, as for Sentry events.
        ignore_exceptions: exception types never notified (HTTP 4xx exceptions never are).

    Since 0.1.0.
    """

    def __init__(
        self,
        destinations: Iterable[Destination],
        *,
        options: NotifyOptions | None = None,
        scrubber: Scrubber | None = None,
        ignore_exceptions: Iterable[type[BaseException]] = (),
    ) -> None:
        self.options = options or NotifyOptions()
        if scrubber is not None and not isinstance(scrubber, Scrubber):
            raise TypeError("scrubber must be an asgi_observe.scrub.Scrubber")
        self._scrubber = scrubber or DEFAULT_SCRUBBER
        self._policy = ErrorPolicy(ignore_exceptions)
        options = self.options
        destinations = tuple(destinations)
        redact = redactor(destinations, self._scrubber)
        self._workers = tuple(
            DestinationWorker(
                destination,
                rate_limit=options.rate_limit,
                queue_size=options.queue_size,
                timeout=options.timeout,
                retries=options.retries,
                on_idle=self.tick,
                redact=redact,
            )
            for destination in destinations
        )
        if not self._workers:
            raise ValueError("a Notifier needs at least one destination")
        self._dedup = Deduplicator(options.dedup_window, options.max_fingerprints)
        self._tick_lock = threading.Lock()
        self._next_tick = 0.0
        self._build_failures = 0

    def __repr__(self) -> str:
        labels = ", ".join(worker.destination.label for worker in self._workers)
        return f"<Notifier to {labels}>"

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return tuple(worker.destination for worker in self._workers)

    def wants(self, event: str) -> bool:
        """Whether `event` (one of `EVENTS`) causes notifications."""
        return event in self.options.events

    # --- what causes a notification -------------------------------------------------

    def notify_exception(
        self,
        exc: BaseException,
        *,
        kind: str = "exception",
        level: str = "error",
        context: Mapping[str, Any] | None = None,
        request: RequestContext | None = None,
        status: int | None = None,
    ) -> bool:
        """Notify about `exc` unless it is expected or was notified already; True if queued.

        `request` defaults to the request NotifyMiddleware is serving in this context.
        """
        try:
            if self._policy.is_expected(exc) or already_notified(exc):
                return False
            mark_notified(exc)
            request = request if request is not None else current_request()
            if request is not None:
                request.notified = True
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
                    identity=self.options.identity,
                    scrubber=self._scrubber,
                    exc=exc,
                    request=request.facts(status) if request is not None else None,
                    context=context,
                    repeats=repeats,
                )

            return self._submit(key, build)
        except Exception:
            self._fault()
            return False

    def notify_status(self, request: RequestContext, status: int) -> bool:
        """Notify about a 5xx response for which no exception was seen."""
        try:
            request.notified = True
            title = f"HTTP {status}"
            key = fingerprint(title, None, _route_key(request))
            facts = request.facts(status)
            path = facts.route or request.scope.get("path")
            target = " ".join(part for part in (facts.method, path) if part)
            message = f"{target} answered {status} without raising an exception"
            return self._submit(
                key,
                lambda repeats: build_report(
                    kind="status",
                    title=title,
                    message=message,
                    level="error",
                    fingerprint=key,
                    identity=self.options.identity,
                    scrubber=self._scrubber,
                    request=facts,
                    repeats=repeats,
                ),
            )
        except Exception:
            self._fault()
            return False

    def notify_log(self, record: logging.LogRecord) -> bool:
        """Notify about a log record (the log handler calls this for ERROR and above)."""
        try:
            level = "critical" if record.levelno >= logging.CRITICAL else "error"
            exc = record.exc_info[1] if record.exc_info else None
            text = record.getMessage()
            if exc is not None:
                return self.notify_exception(
                    exc, kind="log", level=level, context={"log": f"{record.name}: {text}"}
                )
            request = current_request()
            if request is not None:
                request.notified = True
            callsite = f"{record.pathname}:{record.funcName}:{record.lineno}"
            title = f"log:{record.name}"
            key = fingerprint(title, callsite, _route_key(request))
            frame = callsite_frame(record.pathname, record.lineno, record.funcName)
            return self._submit(
                key,
                lambda repeats: build_report(
                    kind="log",
                    title=f"{record.levelname} logged by {record.name}",
                    message=text,
                    level=level,
                    fingerprint=key,
                    identity=self.options.identity,
                    scrubber=self._scrubber,
                    request=request.facts() if request is not None else None,
                    frames=[frame],
                    repeats=repeats,
                ),
            )
        except Exception:
            self._fault()
            return False

    def notify_failure(
        self,
        kind: str,
        title: str,
        message: str,
        *,
        where: str | None = None,
        level: str = "error",
        context: Mapping[str, Any] | None = None,
    ) -> bool:
        """Notify about a failure that is not an exception, such as an MCP tool error.

        The fingerprint is (`kind`:`title`, `where`, the current request's route), so one
        failing tool gives one message per window. Scrubbed, deduplicated and rate limited
        like every other notification.
        """
        try:
            request = current_request()
            if request is not None:
                request.notified = True
            key = fingerprint(f"{kind}:{title}", where, _route_key(request))
            return self._submit(
                key,
                lambda repeats: build_report(
                    kind=kind,
                    title=title,
                    message=message,
                    level=_level(level),
                    fingerprint=key,
                    identity=self.options.identity,
                    scrubber=self._scrubber,
                    request=request.facts() if request is not None else None,
                    frames=[],
                    context=context,
                    repeats=repeats,
                ),
            )
        except Exception:
            self._fault()
            return False

    # --- deduplication, rate limit, delivery ----------------------------------------

    def _submit(self, key: str, build: Callable[[int], ErrorReport]) -> bool:
        now = time.monotonic()
        if now >= self._next_tick:
            self.tick()
        admitted, carried = self._dedup.admit(key, now)
        if not admitted:
            return False  # counted as a repeat of the message already sent
        report = build(carried)
        self._dedup.remember(key, report)
        return self._dispatch(report, 1 + carried, now)

    def _dispatch(self, report: ErrorReport, occurrences: int, now: float) -> bool:
        """Queue `report` for every destination its rate limit lets it through to."""
        queued = False
        for worker in self._workers:
            if worker.limiter.acquire(now, occurrences):
                queued = worker.offer(report) or queued
        return queued

    def tick(self, *, final: bool = False) -> None:
        """Send the repeat summaries of ended windows and the rate limits' suppressed counts.

        Runs about once a second from the senders' threads; `final` (at shutdown) sends
        every pending count at once.
        """
        if not self._tick_lock.acquire(blocking=final):
            return
        try:
            now = time.monotonic()
            self._next_tick = now + _TICK_SECONDS
            for sample, repeats in self._dedup.due(now, final=final):
                summary = dataclasses.replace(
                    sample, kind="repeats", repeats=repeats, timestamp=time.time()
                )
                self._dispatch(summary, repeats, now)
            lost = self._dedup.take_lost()
            for worker in self._workers:
                if lost:
                    worker.limiter.suppress(lost)
                suppressed = worker.limiter.take_suppressed(now, final=final)
                if suppressed:
                    worker.offer(self._suppressed_report(suppressed))
        finally:
            self._tick_lock.release()

    def _suppressed_report(self, count: int) -> ErrorReport:
        identity = self.options.identity
        return ErrorReport(
            kind="suppressed",
            title=f"{count} more {'error' if count == 1 else 'errors'} suppressed",
            message=f"at most {self.options.rate_limit} messages a minute go to this destination",
            level="warning",
            service=identity.service,
            environment=identity.environment,
            release=identity.release,
            repeats=count,
            timestamp=time.time(),
        )

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        """Send every pending count, then wait until the queues are empty; False on timeout.

        Called by LifespanMiddleware at shutdown, within the same bound as the spans.
        """
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        with contextlib.suppress(Exception):
            self.tick(final=True)
        ok = True
        for worker in self._workers:
            ok = worker.flush(deadline) and ok
        return ok

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (at most `timeout` seconds), then stop the sender threads; False on timeout.

        For a notifier used without LifespanMiddleware; later notifications are dropped.
        """
        ok = self.force_flush(int(timeout * 1000))
        for worker in self._workers:
            worker.stop()
        return ok

    def stats(self) -> dict[str, dict[str, int]]:
        """Per destination label: messages sent, failed, dropped (queue full), pending."""
        return {
            worker.destination.label: {
                "sent": worker.sent,
                "failed": worker.failed,
                "dropped": worker.dropped,
                "pending": worker.pending,
            }
            for worker in self._workers
        }

    def _fault(self) -> None:
        # A bug of ours must never reach the request; it is logged once, without a
        # traceback (its locals could hold what we are trying to keep out of logs).
        self._build_failures += 1
        if self._build_failures == 1:
            _logger.error("asgi_observe could not build an error notification")


def _route_key(request: RequestContext | None) -> str | None:
    return request.route_key() if request is not None else None


def _level(level: str) -> str:
    return level if level in LEVELS else "error"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


def mark_notified(exc: BaseException) -> None:
    with contextlib.suppress(Exception):  # an exception class that refuses attributes
        setattr(exc, _NOTIFIED_MARK, True)


def already_notified(exc: BaseException) -> bool:
    """The exception, or one it was raised from (``raise ... from``), was notified already.

    An exception raised while *handling* a notified one is a new error and is notified.
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return False
        if getattr(seen, _NOTIFIED_MARK, False) is True:
            return True
        seen = seen.__cause__
    return False
