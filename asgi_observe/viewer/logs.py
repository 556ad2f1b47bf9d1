"""The viewer's logs: one handler on the root logger, feeding bounded buffers.

A record is kept with the secret values of the request it was logged in (the same values
SentryMiddleware redacts) and scrubbed with them before it is first shown. Records logged
while the viewer serves its own page or API are dropped.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from asgi_observe.scrub.scrubber import SECRETS_HINT_KEY, Scrubber

__all__ = ["MAX_MESSAGE_CHARS", "LogStore", "ViewerLogHandler", "install_log_handler"]

MAX_MESSAGE_CHARS = 4096
_MAX_EXTRAS = 32
_MAX_EXTRA_CHARS = 512
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))).union(
    ("message", "asctime", "taskName", "request_id", "trace_id", "span_id", "color_message")
)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class _Entry:
    """One kept record: capped fields, scrubbed on first read."""

    __slots__ = (
        "_raw",
        "_secrets",
        "_shown",
        "level",
        "levelno",
        "logger",
        "request_id",
        "sequence",
        "time",
        "trace_id",
    )

    def __init__(
        self,
        time: float,
        level: str,
        levelno: int,
        logger: str,
        request_id: str | None,
        trace_id: str | None,
        raw: dict[str, Any],
        secrets: frozenset[str],
    ) -> None:
        self.time = time
        self.level = level
        self.levelno = levelno
        self.logger = logger
        self.request_id = request_id
        self.trace_id = trace_id
        self.sequence = 0
        self._raw: dict[str, Any] | None = raw
        self._secrets = secrets
        self._shown: dict[str, Any] | None = None

    def shown(self, scrubber: Scrubber) -> dict[str, Any]:
        shown = self._shown
        if shown is None:
            raw, secrets = self._raw, self._secrets
            if raw is None:  # another reader finished meanwhile (_shown is set first)
                return self._shown or {}
            raw = {**raw, "request_id": self.request_id, "trace_id": self.trace_id}
            scrubbed = scrubber.scrub_event(raw, {SECRETS_HINT_KEY: secrets})
            shown = {
                "seq": self.sequence,
                "time": self.time,
                "level": self.level,
                "logger": self.logger,
                "message": scrubbed.get("message", ""),
                "exception": scrubbed.get("exception"),
                "extra": scrubbed.get("extra", {}),
                "request_id": scrubbed.get("request_id"),
                "trace_id": scrubbed.get("trace_id"),
                "span_id": scrubbed.get("span_id"),
            }
            # Two readers may both scrub it; either result is the same.
            self._shown, self._raw, self._secrets = shown, None, frozenset()
        return shown


class LogStore:
    """The last `max_logs` log records, scrubbed; thread safe."""

    def __init__(self, *, max_logs: int, scrubber: Scrubber) -> None:
        self.max_logs = max_logs
        self.scrubber = scrubber
        self._records: deque[_Entry] = deque(maxlen=max_logs)
        self._lock = threading.Lock()
        self._sequence = 0

    def add(self, record: logging.LogRecord, secrets: frozenset[str]) -> None:
        """Keep a capped copy of `record` with the secret values of its request.

        Scrubbing waits until the record is first read (once, then kept): most records
        are never looked at, and the request's secret values travel with the copy.
        """
        exception = None
        if record.exc_info and record.exc_info[1] is not None:
            exception = _cut(logging.Formatter().formatException(record.exc_info), 16 * 1024)
        extra: dict[str, str] = {}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and len(extra) < _MAX_EXTRAS:
                extra[key] = _cut(_text(value), _MAX_EXTRA_CHARS)
        entry = _Entry(
            record.created,
            record.levelname,
            record.levelno,
            _cut(record.name, 200),
            _id(getattr(record, "request_id", None)),
            _id(getattr(record, "trace_id", None)),
            {
                "message": _cut(record.getMessage(), MAX_MESSAGE_CHARS),
                "exception": exception,
                "extra": extra,
                "span_id": _id(getattr(record, "span_id", None)),
            },
            secrets,
        )
        with self._lock:
            self._sequence += 1
            entry.sequence = self._sequence
            self._records.append(entry)

    def query(
        self, *, request_id: str = "", trace_id: str = "", level: str = "", limit: int = 200
    ) -> list[dict[str, Any]]:
        """Newest first, filtered by exact request id, trace id and minimum level; scrubbed."""
        minimum = logging.getLevelName(level.upper()) if level else 0
        if not isinstance(minimum, int):
            minimum = 0
        trace_id = trace_id.strip().lower()
        request_id = request_id.strip()
        with self._lock:
            records = list(self._records)
        found = []
        for entry in reversed(records):
            if request_id and entry.request_id != request_id:
                continue
            if trace_id and entry.trace_id != trace_id:
                continue
            if entry.levelno < minimum:
                continue
            found.append(entry.shown(self.scrubber))
            if len(found) >= limit:
                break
        return found

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def _text(value: Any) -> str:
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _id(value: Any) -> str | None:
    return _cut(value, 128) if isinstance(value, str) else None


class ViewerLogHandler(logging.Handler):
    """Copies each record into every live viewer's `LogStore`.

    `request_secrets` returns the secret values of the request being served in this
    context (empty outside one), or None inside the viewer's own requests.
    """

    def __init__(self, request_secrets: Callable[[], frozenset[str] | None]) -> None:
        super().__init__(logging.NOTSET)
        self._stores: tuple[weakref.ref[LogStore], ...] = ()  # as ViewerSpanProcessor's
        self._request_secrets = request_secrets
        self._busy = threading.local()

    def add_store(self, store: LogStore) -> None:
        if not any(ref() is store for ref in self._stores):
            self._stores = (*self._stores, weakref.ref(store, self._forget))

    def _forget(self, gone: weakref.ref[LogStore]) -> None:
        self._stores = tuple(ref for ref in self._stores if ref is not gone)

    def emit(self, record: logging.LogRecord) -> None:
        stores = self._stores
        if not stores or getattr(self._busy, "active", False):
            return
        self._busy.active = True  # a record logged while keeping one is not kept
        try:
            secrets = self._request_secrets()
            if secrets is None:
                return
            for ref in stores:
                store = ref()
                if store is not None:
                    store.add(record, secrets)
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False

    def handleError(self, record: logging.LogRecord) -> None:
        # logging's default prints a traceback to stderr per record; once is enough.
        if not getattr(self, "_reported", False):
            self._reported = True
            super().handleError(record)


_handler: ViewerLogHandler | None = None
_lock = threading.Lock()


def install_log_handler(
    store: LogStore, request_secrets: Callable[[], frozenset[str] | None]
) -> ViewerLogHandler:
    """Add the viewers' handler to the root logger once, and feed `store` from it."""
    global _handler
    with _lock:
        if _handler is None:
            _handler = ViewerLogHandler(request_secrets)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)
        _handler.add_store(store)
    return _handler
