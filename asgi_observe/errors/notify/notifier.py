"""The Notifier: deduplicates errors, scrubs them and hands them to each destination's sender."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from asgi_observe.errors.notify.builder import Builder
from asgi_observe.errors.notify.context import RequestContext, current_request
from asgi_observe.errors.notify.dedup import Deduplicator
from asgi_observe.errors.notify.destinations import Destination, redactor
from asgi_observe.errors.notify.marks import already_notified, mark_notified
from asgi_observe.errors.notify.options import NotifyOptions
from asgi_observe.errors.notify.report import ErrorReport
from asgi_observe.errors.notify.sources import Build, Pending, ReportSources, log_level
from asgi_observe.errors.notify.worker import DestinationWorker
from asgi_observe.errors.sentry_policy import ErrorPolicy
from asgi_observe.scrub import Scrubber

__all__ = ["Notifier"]

_logger = logging.getLogger("asgi_observe.errors.notify")

_TICK_SECONDS = 1.0


class Notifier:
    """Turns errors into chat messages: fingerprinted, deduplicated, scrubbed, rate limited.

    Every ``notify_*`` method is cheap (a fingerprint, a counter, a few facts of the
    request), never blocks on the network and never raises. When deduplication lets an
    error through, its message is built and scrubbed by a background thread, and sent by
    one background thread per destination.

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
        if options is not None and not isinstance(options, NotifyOptions):
            raise TypeError("options must be a NotifyOptions")
        self.options = options or NotifyOptions()
        if scrubber is not None and not isinstance(scrubber, Scrubber):
            raise TypeError("scrubber must be an asgi_observe.scrub.Scrubber")
        self._scrubber = scrubber or Scrubber()
        self._policy = ErrorPolicy(ignore_exceptions)
        options = self.options
        destinations = tuple(destinations)
        for destination in destinations:
            if not callable(getattr(destination, "outgoing", None)):
                raise TypeError(f"not a notification destination: {type(destination).__name__}")
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
        self._sources = ReportSources(options.identity, self._scrubber)
        self._builder = Builder(options.queue_size)
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
            request = self._claim(request)
            pending = self._sources.exception(
                exc, kind=kind, level=level, context=context, request=request, status=status
            )
            return self._submit(pending)
        except Exception:
            self._fault()
            return False

    def notify_status(self, request: RequestContext, status: int) -> bool:
        """Notify about a 5xx response for which no exception was seen."""
        try:
            self._claim(request)
            return self._submit(self._sources.status(request, status))
        except Exception:
            self._fault()
            return False

    def notify_log(self, record: logging.LogRecord) -> bool:
        """Notify about a log record (the log handler calls this for ERROR and above)."""
        try:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                context = {"log": f"{record.name}: {record.getMessage()}"}
                return self.notify_exception(
                    exc, kind="log", level=log_level(record), context=context
                )
            return self._submit(self._sources.log_record(record, self._claim(None)))
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
            pending = self._sources.failure(
                kind, title, message, where=where, level=level, context=context,
                request=self._claim(None),
            )  # fmt: skip
            return self._submit(pending)
        except Exception:
            self._fault()
            return False

    def _claim(self, request: RequestContext | None) -> RequestContext | None:
        # One message per request: once anything was notified, its 5xx is not.
        request = request if request is not None else current_request()
        if request is not None:
            request.notified = True
        return request

    # --- deduplication, rate limit, delivery ----------------------------------------

    def _submit(self, pending: Pending) -> bool:
        now = time.monotonic()
        if now >= self._next_tick:
            self.tick()
        admitted, carried = self._dedup.admit(pending.key, now)
        if not admitted:
            return False  # counted as a repeat of the message already sent
        occurrences = 1 + carried
        workers = [w for w in self._workers if w.limiter.acquire(now, occurrences)]
        build = pending.prepare()
        # Built even when every rate limit refused it: its repeat summary needs it.
        if not self._builder.submit(lambda: self._built(pending.key, build, carried, workers)):
            for worker in workers:  # lost for every destination it was going to
                worker.count_dropped()
            return False
        return bool(workers)

    def _built(
        self, key: str, build: Build, carried: int, workers: list[DestinationWorker]
    ) -> None:
        try:
            report = build(carried)
        except Exception:
            self._fault()
            return
        self._dedup.remember(key, report)
        for worker in workers:
            worker.offer(report)

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
        ok = self._builder.flush(deadline)  # first: summaries need the reports built
        with contextlib.suppress(Exception):
            self.tick(final=True)
        for worker in self._workers:
            ok = worker.flush(deadline) and ok
        return ok

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (at most `timeout` seconds), then stop the sender threads; False on timeout.

        For a notifier used without LifespanMiddleware; later notifications are dropped.
        """
        ok = self.force_flush(int(timeout * 1000))
        self._builder.stop()
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
