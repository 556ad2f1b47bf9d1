"""Builds reports off the request path: one daemon thread behind a bounded queue.

Building a report walks the traceback, reads source lines and runs the scrubber over the
frames' variables: about a millisecond, which a failing request should not wait for. The
fingerprint, the deduplication and the rate limits are decided before, on the request path,
so a repeat never gets here.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["Builder"]

_logger = logging.getLogger("asgi_observe.errors.notify")


class Builder:
    """Runs jobs in order on a daemon thread started by the first job; bounded, flushable."""

    def __init__(self, queue_size: int) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.dropped = 0

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False (counted as dropped) when the queue is full or stopped."""
        with self._lock:
            if self._stopped.is_set():
                self.dropped += 1
                return False
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.dropped += 1
                first = self.dropped == 1
            else:
                self._pending += 1
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="asgi-observe-notify build", daemon=True
                    )
                    self._thread.start()
                return True
        if first:
            _logger.warning("Too many new errors at once: some notifications are dropped")
        return False

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                job = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                job()  # jobs guard themselves; this is the last line of defence
            except Exception:  # pragma: no cover
                _logger.error("asgi_observe could not build an error notification")
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def flush(self, deadline: float) -> bool:
        """Wait until every queued job ran, or `deadline` (monotonic) passed."""
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        self._stopped.set()
