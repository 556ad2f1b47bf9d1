"""An incremental, bounded reader of ``text/event-stream`` bodies.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation:
lines end with CRLF, LF or CR; ``data`` lines of one event are joined with LF; an empty
line dispatches the event; lines starting with ``:`` are comments. The reader only
looks at the bytes passing by: it never holds more than ``max_event_bytes`` of one
event, and an event past that size is reported as None (served, but not read).
"""

from __future__ import annotations

__all__ = ["SseReader"]

_CR, _LF = 13, 10


class SseReader:
    """Feed it body chunks; it returns the ``data`` of each complete ``message`` event."""

    __slots__ = (
        "_data",
        "_event",
        "_line",
        "_max",
        "_oversized",
        "_size",
        "_skip_cr_lf",
        "_skipping",
    )

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._line = b""  # the incomplete last line of the previous chunk
        self._data: list[bytes] = []
        self._size = 0  # bytes of data held for the current event
        self._event = b""  # the event field; "" and "message" are MCP's
        self._oversized = False
        self._skipping = False  # dropping the rest of an over-long line
        self._skip_cr_lf = False  # the previous chunk ended with CR: a leading LF is its pair

    def feed(self, chunk: bytes) -> list[bytes | None]:
        """The events this chunk completes: their data, or None for an event too large."""
        if self._skip_cr_lf and chunk:
            self._skip_cr_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        events: list[bytes | None] = []
        start = 0
        end = len(chunk)
        while start < end:
            lf = chunk.find(b"\n", start)
            cr = chunk.find(b"\r", start, lf if lf >= 0 else end)
            stop = cr if cr >= 0 else lf
            if stop < 0:
                self._keep_partial(chunk, start, end)
                break
            line = chunk[start:stop]
            if self._line:
                line = self._line + line
                self._line = b""
            if stop == cr:
                if cr + 1 < end:
                    start = cr + 2 if chunk[cr + 1] == _LF else cr + 1
                else:
                    start = end
                    self._skip_cr_lf = True
            else:
                start = lf + 1
            if self._skipping:
                self._skipping = False
                continue
            self._line_done(line, events)
        return events

    def _keep_partial(self, chunk: bytes, start: int, end: int) -> None:
        if self._skipping:
            return
        if len(self._line) + (end - start) > self._max:
            # A line that never ends must not grow the buffer: drop it, and its event.
            self._line = b""
            self._skipping = True
            self._oversized = True
            self._data = []
            return
        self._line += chunk[start:end]

    def _line_done(self, line: bytes, events: list[bytes | None]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == 0x3A:  # ":" a comment
            return
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            if self._oversized:
                return
            self._size += len(value) + 1
            if self._size > self._max:
                self._oversized = True
                self._data = []
                return
            self._data.append(value)
        elif field == b"event":
            self._event = value

    def _dispatch(self, events: list[bytes | None]) -> None:
        event, data, oversized = self._event, self._data, self._oversized
        self._event, self._data, self._oversized, self._size = b"", [], False, 0
        if event not in (b"", b"message"):
            return
        if oversized:
            events.append(None)
        elif data:
            events.append(data[0] if len(data) == 1 else b"\n".join(data))
