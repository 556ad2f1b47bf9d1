"""Streamable HTTP sessions, keyed by the ``Mcp-Session-Id`` the server issued.

A session starts when a response carries a session id not seen before (the answer to
``initialize``). It ends when a ``DELETE`` with that id is answered 2xx (``deleted``),
when the server answers 404 to a request carrying it (``not_found``: the server expired
or forgot it), or when no request carried it and none was in flight for
``idle_timeout`` seconds (``idle``: the client went away without saying so). Past
``max_sessions`` the least recently used session is ended (``evicted``). Only ids a
server issued are tracked, so a client inventing ids creates nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["DELETED", "EVICTED", "IDLE", "NOT_FOUND", "SessionTable"]

DELETED, NOT_FOUND, IDLE, EVICTED = "deleted", "not_found", "idle", "evicted"
# Idle sessions are looked for at most this often, on the requests that pass.
SWEEP_INTERVAL_S = 1.0

_monotonic = time.monotonic


class _Session:
    __slots__ = ("in_flight", "last_seen", "started")

    def __init__(self, now: float) -> None:
        self.started = now
        self.last_seen = now
        self.in_flight = 0


class SessionTable:
    """Live sessions of one process; `on_end(duration_s, reason)` is called once per session."""

    def __init__(
        self,
        *,
        idle_timeout_s: float,
        max_sessions: int,
        on_start: Callable[[], None],
        on_end: Callable[[float, str], None],
    ) -> None:
        self._idle = idle_timeout_s
        self._max = max_sessions
        self._on_start = on_start
        self._on_end = on_end
        # Insertion order is kept up to date (move to end on use): the first is the LRU.
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._sessions)

    def request_started(self, session_id: str) -> bool:
        """A request carries `session_id`; True when it is a live session (now in flight)."""
        now = _monotonic()
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return False
            self._sessions[session_id] = session
            session.last_seen = now
            session.in_flight += 1
        return True

    def request_ended(self, session_id: str) -> None:
        now = _monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.last_seen = now
                session.in_flight = max(0, session.in_flight - 1)

    def issued(self, session_id: str) -> None:
        """A response carried `session_id`: starts the session if it is new."""
        now = _monotonic()
        ended: list[tuple[float, str]] = []
        with self._lock:
            if session_id in self._sessions:
                return
            while len(self._sessions) >= self._max:
                oldest = next(iter(self._sessions))
                ended.append((now - self._sessions.pop(oldest).started, EVICTED))
            self._sessions[session_id] = _Session(now)
        self._on_start()
        for duration, reason in ended:
            self._on_end(duration, reason)

    def end(self, session_id: str, reason: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            self._on_end(_monotonic() - session.started, reason)

    def sweep(self) -> None:
        """End the sessions idle for longer than the timeout (cheap when not yet due)."""
        now = _monotonic()
        if now < self._next_sweep:
            return
        ended: list[float] = []
        with self._lock:
            self._next_sweep = now + SWEEP_INTERVAL_S
            deadline = now - self._idle
            for session_id, session in list(self._sessions.items()):
                if session.in_flight == 0 and session.last_seen < deadline:
                    del self._sessions[session_id]
                    ended.append(now - session.started)
        for duration in ended:
            self._on_end(duration, IDLE)
