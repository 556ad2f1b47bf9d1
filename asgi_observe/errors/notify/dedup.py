"""Deduplication by fingerprint, and the per-destination rate limit: bounded, thread-safe.

Every occurrence is counted exactly once: in the message it causes, in the repeat count of
a later message or summary, or in a rate limit's "N more suppressed" count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from asgi_observe.errors.notify.report import ErrorReport

__all__ = ["Deduplicator", "RateLimiter"]


@dataclass
class _Entry:
    expires: float
    repeats: int = 0
    sample: ErrorReport | None = None


class Deduplicator:
    """One message per fingerprint per `window` seconds; the repeats in between are counted.

    When a window ends with repeats, `due` hands them out for one summary and a new window
    starts; a window that ends quietly is forgotten. At most `max_entries` fingerprints are
    kept: the oldest is evicted and its repeats are added to `take_lost`.
    """

    def __init__(self, window: float, max_entries: int = 1024) -> None:
        self.window = window
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lost = 0
        self._lock = threading.Lock()

    def admit(self, key: str, now: float) -> tuple[bool, int]:
        """(send a message?, repeats from an ended window to report with it)."""
        if self.window <= 0:
            return True, 0
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry.expires:
                entry.repeats += 1
                return False, 0
            carried = 0
            if entry is not None:
                carried = entry.repeats
                del self._entries[key]
            self._entries[key] = _Entry(expires=now + self.window)
            while len(self._entries) > self._max_entries:
                _, evicted = self._entries.popitem(last=False)
                self._lost += evicted.repeats
            return True, carried

    def remember(self, key: str, report: ErrorReport) -> None:
        """Keep the report sent for `key`: its repeat summary says the same things."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.sample = report

    def due(self, now: float, *, final: bool = False) -> list[tuple[ErrorReport, int]]:
        """(sample, repeats) of every ended window with repeats; all of them when `final`."""
        if self.window <= 0:
            return []
        found: list[tuple[ErrorReport, int]] = []
        with self._lock:
            for key, entry in list(self._entries.items()):
                if not final and now < entry.expires:
                    continue
                if entry.repeats and entry.sample is not None:
                    found.append((entry.sample, entry.repeats))
                    entry.repeats = 0
                    entry.expires = now + self.window
                elif entry.repeats:  # the first report could not be built: count them
                    self._lost += entry.repeats
                    del self._entries[key]
                else:
                    del self._entries[key]
        return found

    def take_lost(self) -> int:
        with self._lock:
            lost, self._lost = self._lost, 0
        return lost

    def __len__(self) -> int:
        return len(self._entries)


class RateLimiter:
    """At most `limit` messages per `period` seconds; what is refused is counted.

    The count goes out as one "N more suppressed" message when a slot frees up (see
    `take_suppressed`), which itself takes that slot.
    """

    def __init__(self, limit: int, period: float = 60.0) -> None:
        self.limit = limit
        self.period = period
        self._sent: deque[float] = deque()
        self._suppressed = 0
        self._lock = threading.Lock()

    def _free(self, now: float) -> bool:
        sent = self._sent
        while sent and sent[0] <= now - self.period:
            sent.popleft()
        return len(sent) < self.limit

    def acquire(self, now: float, count: int = 1) -> bool:
        """Take a slot for a message standing for `count` occurrences, or count them."""
        with self._lock:
            if self._free(now) and not self._suppressed:
                self._sent.append(now)
                return True
            self._suppressed += count
            return False

    def suppress(self, count: int) -> None:
        with self._lock:
            self._suppressed += count

    def take_suppressed(self, now: float, *, final: bool = False) -> int:
        """The suppressed count, when a slot is free for its message (always when `final`)."""
        with self._lock:
            if not self._suppressed or not (self._free(now) or final):
                return 0
            self._sent.append(now)
            suppressed, self._suppressed = self._suppressed, 0
        return suppressed
