"""The walk behind `Scrubber.scrub_event`: copies event-shaped data, redacting as it goes.

Total on any input: mappings with odd keys, bytes, sets, cycles, deep nesting and objects
whose `str()` raises all come out as JSON-friendly data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from asgi_observe.scrub.secrets import NO_DEADLINE, Deadline
from asgi_observe.scrub.values import TextRedactor, plain_name

MAX_DEPTH = 64
"""Deeper data is replaced whole: Sentry events are shallow, deeper data is not worth a risk."""
CYCLE_MARKER = "<cyclic>"

# Frame fields that hold source code and paths: only known secret values are replaced
# there, so `password = form["password"]` stays readable in the stack trace.
_CODE_KEYS = frozenset(
    {"pre_context", "context_line", "post_context", "abs_path", "filename", "module", "function"}
)
# SDK metadata, never request data.
SKIPPED_KEYS = frozenset({"sdk", "modules", "debug_meta", "_meta"})
_SAFE_FALLBACK_KEYS = ("event_id", "timestamp", "level", "platform", "type", "release")


class Walk:
    """One scrubbing pass: copies containers, redacts leaves, marks cycles."""

    __slots__ = ("_active", "_deadline", "_redact", "_replacement", "_sensitive")

    def __init__(
        self,
        is_sensitive: Callable[[str], bool],
        redactor: TextRedactor,
        replacement: str,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self._sensitive = is_sensitive
        self._replacement = replacement
        self._redact = redactor
        self._deadline = deadline
        self._active: set[int] = set()

    def event(self, event: Any) -> Any:
        if not isinstance(event, Mapping):
            return self.node(event, 0)
        result: dict[Any, Any] = {}
        for key, value in event.items():
            result[key] = value if key in SKIPPED_KEYS else self.child(key, value, 1)
        return result

    def child(self, key: Any, value: Any, depth: int) -> Any:
        name = _as_text(key) if isinstance(key, (str, bytes, bytearray)) else None
        if name is not None and self._sensitive(plain_name(name)):
            return self.hide(value, depth)
        if name in _CODE_KEYS and isinstance(value, (str, list)):
            return self.code(value)
        return self.node(value, depth)

    def node(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._redact(bytes(value).decode("utf-8", "replace"))
        if depth >= MAX_DEPTH:
            return self._replacement
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            if id(value) in self._active:
                return CYCLE_MARKER
            self._deadline.check()
            self._active.add(id(value))
            try:
                return self.container(value, depth + 1)
            finally:
                self._active.discard(id(value))
        return self._redact(_safe_str(value, self._replacement))

    def container(self, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            return {self.key(key): self.child(key, item, depth) for key, item in value.items()}
        items = list(value)
        # A (name, value) pair, as header lists and sentry-sdk's frame variables hold them.
        if (
            len(items) == 2
            and isinstance(items[0], (str, bytes, bytearray))
            and self._sensitive(plain_name(_as_text(items[0])))
        ):
            return [self.node(items[0], depth), self.hide(items[1], depth)]
        return [self.node(item, depth) for item in items]

    def key(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._redact.values(key)
        if isinstance(key, (bytes, bytearray)):
            return self._redact.values(_as_text(key))
        if key is None or isinstance(key, (bool, int, float)):
            return key
        return self._redact.values(_safe_str(key, self._replacement))

    def hide(self, value: Any, depth: int) -> Any:
        """The value of a sensitive name: containers keep their shape, leaves are replaced."""
        if value is None or isinstance(value, bool):
            return value
        if depth >= MAX_DEPTH or not isinstance(value, (Mapping, list, tuple)):
            return self._replacement
        if id(value) in self._active:
            return CYCLE_MARKER
        self._active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {self.key(key): self.hide(item, depth + 1) for key, item in value.items()}
            return [self.hide(item, depth + 1) for item in value]
        finally:
            self._active.discard(id(value))

    def code(self, value: str | list[Any]) -> str | list[Any]:
        if isinstance(value, str):
            return self._redact.code(value)
        return [self._redact.code(line) if isinstance(line, str) else None for line in value]


def _as_text(value: str | bytes | bytearray) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _safe_str(value: Any, replacement: str) -> str:
    try:
        text = str(value)
    except Exception:
        return replacement
    return text if isinstance(text, str) else replacement


def fallback_event(event: Any, replacement: str) -> dict[str, Any]:
    """What is sent when scrubbing failed: only facts that cannot hold a secret."""
    safe: dict[str, Any] = {}
    try:
        for key in _SAFE_FALLBACK_KEYS:
            value = event.get(key) if isinstance(event, Mapping) else None
            if isinstance(value, (str, int, float)):
                safe[key] = value
    except Exception:
        safe.clear()
    safe["message"] = f"event scrubbing failed; content {replacement}"
    return safe


def event_texts(event: Any) -> Iterator[str]:
    """Every piece of text in event-shaped data (keys too), outside the SDK metadata;
    what `TextRedactor.narrow` searches once for all secrets."""
    stack: list[tuple[Any, int]] = [(event, 0)]
    seen: set[int] = set()
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            yield bytes(value).decode("utf-8", "replace")
        elif value is None or isinstance(value, (bool, int, float)):
            continue
        elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
            if depth >= MAX_DEPTH or id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if depth == 0 and key in SKIPPED_KEYS:
                        continue
                    stack.append((key, depth + 1))
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        else:
            yield _safe_str(value, "")


# What a reduced event keeps (see docs/errors-and-scrubbing.md, "Bounded time").
_REDUCED_KEYS = (
    *_SAFE_FALLBACK_KEYS,
    "environment",
    "server_name",
    "logger",
    "transaction",
    "transaction_info",
    "fingerprint",
    "tags",
)
_FRAME_KEYS = ("filename", "abs_path", "module", "function", "lineno", "colno", "in_app")
_MAX_REDUCED_TEXT = 1024
_MAX_REDUCED_FRAMES = 50
REDUCED_NOTE = (
    "asgi_observe: scrubbing this event took longer than its time budget, so it was "
    "reduced; dropped: request data except method and URL path, frame variables and "
    "source lines, breadcrumbs, extra, contexts other than trace, threads and spans"
)


def reduced_event(event: Any, *, keep_text: bool) -> dict[str, Any]:
    """The parts of an event that stay small and useful, to be scrubbed in place of the
    whole event when scrubbing it took too long. Free text (the message and exception
    values, cut to 1,024 characters) is kept only when `keep_text`: when every secret
    value of the event was learned before time ran out."""
    if not isinstance(event, Mapping):
        return {"message": REDUCED_NOTE}
    reduced: dict[str, Any] = {key: event[key] for key in _REDUCED_KEYS if key in event}
    message = event.get("message")
    if keep_text and isinstance(message, str):
        reduced["message"] = message[:_MAX_REDUCED_TEXT]
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, Mapping) else None
    if isinstance(values, list):
        reduced["exception"] = {"values": [_reduced_exception(v, keep_text) for v in values]}
    request = event.get("request")
    if isinstance(request, Mapping):
        url = request.get("url")
        reduced["request"] = {
            "method": request.get("method"),
            "url": url.partition("?")[0][:_MAX_REDUCED_TEXT] if isinstance(url, str) else None,
        }
    contexts = event.get("contexts")
    if isinstance(contexts, Mapping) and isinstance(contexts.get("trace"), Mapping):
        reduced["contexts"] = {"trace": contexts["trace"]}
    bounded: dict[str, Any] = _bounded(reduced, 0)
    bounded["extra"] = {"asgi_observe": REDUCED_NOTE}
    return bounded


_MAX_REDUCED_ITEMS = 100
_MAX_REDUCED_DEPTH = 8


def _bounded(value: Any, depth: int) -> Any:
    # Small whatever the event held, so that scrubbing it needs no time budget of its own.
    if isinstance(value, str):
        return value[:_MAX_REDUCED_TEXT]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= _MAX_REDUCED_DEPTH:
        return None
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_REDUCED_ITEMS]
        return {_bounded(k, depth + 1): _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_bounded(item, depth + 1) for item in list(value)[:_MAX_REDUCED_ITEMS]]
    return None


def _reduced_exception(value: Any, keep_text: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    result: dict[str, Any] = {
        key: value[key] for key in ("type", "module", "mechanism") if key in value
    }
    text = value.get("value")
    if keep_text and isinstance(text, str):
        result["value"] = text[:_MAX_REDUCED_TEXT]
    stacktrace = value.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
    if isinstance(frames, list):
        result["stacktrace"] = {
            "frames": [
                {key: frame[key] for key in _FRAME_KEYS if key in frame}
                for frame in frames[-_MAX_REDUCED_FRAMES:]
                if isinstance(frame, Mapping)
            ]
        }
    return result
