"""One destination's sender: a bounded queue drained by a daemon thread.

A thread rather than an asyncio task: urllib blocks, a destination that never answers must
not hold any event loop, `report_error` and the log handler are called from plain threads
too, and the shutdown flush already runs outside the loop (setup/lifespan.py). The thread
starts on the first message, so importing or building a notifier starts nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from asgi_observe.errors.notify.dedup import RateLimiter
from asgi_observe.errors.notify.destinations import Destination
from asgi_observe.errors.notify.report import ErrorReport
from asgi_observe.errors.notify.transport import Delivery, deliver

__all__ = ["DestinationWorker"]

_logger = logging.getLogger("asgi_observe.errors.notify")
_IDLE_SECONDS = 1.0
_MAX_LOGGED_REASONS = 64


class DestinationWorker:
    """Sends one destination's messages in order, off the request path.

    A full queue drops the new message and counts it; each kind of failure is logged once
    (later ones are counted); `flush` waits, bounded, until the queue is empty.
    """

    def __init__(
        self,
        destination: Destination,
        *,
        rate_limit: int,
        queue_size: int,
        timeout: float,
        retries: int,
        on_idle: Callable[[], None] = lambda: None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.destination = destination
        self.limiter = RateLimiter(rate_limit)
        self._queue: queue.Queue[ErrorReport] = queue.Queue(maxsize=queue_size)
        self._timeout = timeout
        self._retries = retries
        self._on_idle = on_idle
        self._redact = redact or destination.redact
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or being sent
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._deadline: float | None = None  # while flushing at shutdown
        self._logged: set[tuple[int | None, str]] = set()
        self.sent = self.failed = self.dropped = 0

    def offer(self, report: ErrorReport) -> bool:
        """Queue `report`; False (and counted as dropped) when the queue is full or the
        worker was stopped."""
        with self._lock:
            if self._stopped.is_set():
                self.dropped += 1
                return False
            try:
                self._queue.put_nowait(report)
            except queue.Full:
                self.dropped += 1
                first = self.dropped == 1
            else:
                self._pending += 1
                self._start()
                return True
        if first:
            _logger.warning(
                "%s: the notification queue is full; messages are dropped and counted",
                self.destination.label,
            )
        return False

    def count_dropped(self) -> None:
        """A message for this destination was dropped before it reached the queue."""
        with self._lock:
            self.dropped += 1

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"asgi-observe-notify {self.destination.kind}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                report = self._queue.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                self._idle_tick()
                continue
            try:
                self._send(report)
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def _idle_tick(self) -> None:
        try:
            self._on_idle()
        except Exception:  # pragma: no cover - a fault in housekeeping must not stop sending
            _logger.debug("notification housekeeping failed", exc_info=False)

    def _send(self, report: ErrorReport) -> None:
        try:
            outgoing = self.destination.outgoing(report)
            result = deliver(
                self.destination,
                outgoing,
                timeout=self._timeout,
                retries=self._retries,
                deadline=lambda: self._deadline,
            )
        except Exception as exc:  # a formatting bug: say what, never with the traceback
            result = Delivery(False, None, f"could not build the message ({type(exc).__name__})")
        if result.ok:
            self.sent += 1
            return
        self.failed += 1
        self._log_failure(result)

    def _log_failure(self, result: Delivery) -> None:
        if self._stopped.is_set():
            return  # closed: the failure is counted, the application has moved on
        reason = self._redact(result.reason)
        key = (result.status, reason)
        if key in self._logged or len(self._logged) >= _MAX_LOGGED_REASONS:
            return
        self._logged.add(key)
        how = "not retried" if result.permanent else f"after {result.attempts} attempts"
        _logger.warning(
            "%s: a notification was not delivered (%s, %s); later failures like this one "
            "are counted, not logged",
            self.destination.label,
            reason,
            how,
        )

    def flush(self, deadline: float) -> bool:
        """Wait until every queued message was handled or `deadline` (monotonic) passed."""
        with self._lock:
            self._deadline = deadline
            try:
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            finally:
                if not self._stopped.is_set():
                    self._deadline = None
        return True

    def stop(self) -> None:
        """End the thread: the message being sent gets no further retry, and nothing more
        is logged."""
        self._stopped.set()
        self._deadline = time.monotonic()

    @property
    def pending(self) -> int:
        return self._pending
