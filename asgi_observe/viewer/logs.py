"""The viewer's logs: one handler on the root logger, feeding bounded, scrubbed buffers.

A record is scrubbed when it is emitted, with the secret values of the request it was
logged in (the same values SentryMiddleware redacts), so the buffer never holds them.
Records logged while the viewer serves its own page or API are dropped.
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


class LogStore:
    """The last `max_logs` log records, scrubbed; thread safe."""

    def __init__(self, *, max_logs: int, scrubber: Scrubber) -> None:
        self.max_logs = max_logs
        self.scrubber = scrubber
        self._records: deque[dict[str, Any]] = deque(maxlen=max_logs)
        self._lock = threading.Lock()
        self._sequence = 0

    def add(self, record: logging.LogRecord, secrets: frozenset[str]) -> None:
        message = _cut(record.getMessage(), MAX_MESSAGE_CHARS)
        exception = None
        if record.exc_info and record.exc_info[1] is not None:
            exception = _cut(logging.Formatter().formatException(record.exc_info), 16 * 1024)
        extra: dict[str, str] = {}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and len(extra) < _MAX_EXTRAS:
                extra[key] = _cut(_text(value), _MAX_EXTRA_CHARS)
        raw = {"message": message, "exception": exception, "extra": extra}
        scrubbed = self.scrubber.scrub_event(raw, {SECRETS_HINT_KEY: secrets})
        entry = {
            "time": record.created,
            "level": record.levelname,
            "logger": _cut(record.name, 200),
            "message": scrubbed.get("message", ""),
            "exception": scrubbed.get("exception"),
            "extra": scrubbed.get("extra", {}),
            "request_id": _id(getattr(record, "request_id", None)),
            "trace_id": _id(getattr(record, "trace_id", None)),
            "span_id": _id(getattr(record, "span_id", None)),
        }
        with self._lock:
            self._sequence += 1
            entry["seq"] = self._sequence
            self._records.append(entry)

    def query(
        self, *, request_id: str = "", trace_id: str = "", level: str = "", limit: int = 200
    ) -> list[dict[str, Any]]:
        """Newest first, filtered by exact request id, trace id and minimum level."""
        minimum = logging.getLevelName(level.upper()) if level else 0
        if not isinstance(minimum, int):
            minimum = 0
        trace_id = trace_id.strip().lower()
        request_id = request_id.strip()
        with self._lock:
            records = list(self._records)
        found = []
        for entry in reversed(records):
            if request_id and entry["request_id"] != request_id:
                continue
            if trace_id and entry["trace_id"] != trace_id:
                continue
            if minimum and logging.getLevelName(entry["level"]) < minimum:
                continue
            found.append(entry)
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
        self.stores: weakref.WeakSet[LogStore] = weakref.WeakSet()
        self._request_secrets = request_secrets
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stores or getattr(self._busy, "active", False):
            return
        self._busy.active = True  # a record logged while keeping one is not kept
        try:
            secrets = self._request_secrets()
            if secrets is None:
                return
            for store in list(self.stores):
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
        _handler.stores.add(store)
    return _handler
