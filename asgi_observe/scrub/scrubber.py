"""Pure secret scrubbing: sensitive names, query strings and event-shaped data.

`Scrubber.scrub_event` walks a Sentry event (or anything shaped like one) and returns a
scrubbed copy; the module-level `scrub_event` does the same with the default settings and
can be passed to `sentry_sdk.init(before_send=...)`. What is scrubbed, and how to extend
it, is described in docs/errors-and-scrubbing.md.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from asgi_observe.scrub.secrets import NAMED, NO_DEADLINE, Deadline, ScrubTimeout, SecretSet
from asgi_observe.scrub.urls import redact_userinfo, userinfo_values
from asgi_observe.scrub.values import (
    TextRedactor,
    body_secrets,
    header_secrets,
    mapping_secrets,
    query_secrets,
    request_section_secrets,
)
from asgi_observe.scrub.walk import (
    SKIPPED_KEYS,
    Walk,
    event_texts,
    fallback_event,
    reduced_event,
)

__all__ = [
    "FILTERED",
    "SECRETS_HINT_KEY",
    "SENSITIVE_EXACT_NAMES",
    "SENSITIVE_NAME_PARTS",
    "Scrubber",
    "SecretSet",
    "is_sensitive_name",
    "redact_query_string",
    "scrub_event",
]

FILTERED = "[Filtered]"
"""What a redacted value becomes (the marker Sentry itself uses)."""

SECRETS_HINT_KEY = "asgi_observe.secrets"
"""Hint key under which a caller passes extra secret values (an iterable of str, or a
ranked `SecretSet`) to `scrub_event`; SentryMiddleware passes the values it saw in the
request."""

TIME_BUDGET_S = 0.5
"""How long scrubbing one event may take before the event is reduced (see `Scrubber`)."""

# Compared after lowercasing and mapping "_" to "-" (STYLE: `-` and `_` alike).
SENSITIVE_EXACT_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "cookies",
        "set-cookie",
        "x-api-key",
        "sig",
        "awsaccesskeyid",
    }
)
SENSITIVE_NAME_PARTS = (
    "token", "secret", "password", "passwd", "session", "credential", "signature",
    "csrf", "xsrf", "api-key", "apikey", "auth",
)  # fmt: skip


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def is_sensitive_name(name: str) -> bool:
    """True when a header, query parameter or field name usually holds a secret.

    Since 0.1.0.
    """
    # Names come from the wire: only short ones are cached, so the cache stays small.
    if len(name) <= _CACHED_NAME_LENGTH:
        return _is_sensitive_cached(name)
    return _is_sensitive(name)


_CACHED_NAME_LENGTH = 64


@lru_cache(maxsize=2048)
def _is_sensitive_cached(name: str) -> bool:
    return _is_sensitive(name)


def _is_sensitive(name: str) -> bool:
    normalised = _normalise(name)
    if normalised in SENSITIVE_EXACT_NAMES:
        return True
    return any(part in normalised for part in SENSITIVE_NAME_PARTS)


def redact_query_string(query: bytes | str, replacement: str = "REDACTED") -> str:
    """Return the query string with the values of sensitive parameters replaced.

    Parameter names and order are kept; the string is otherwise unchanged, so it stays
    useful for debugging. Never raises. Since 0.1.0.
    """
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    if not text:
        return text
    parts = text.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, sep, _value = part.partition("=")
        if sep and _value and is_sensitive_name(unquote_plus(name)):
            parts[index] = f"{name}={replacement}"
            changed = True
    return redact_userinfo("&".join(parts) if changed else text, replacement)


def _name_set(option: str, names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{option} must be an iterable of names, not a single string")
    result = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{option} entries must be non-empty strings: {name!r}")
        result.add(_normalise(name))
    return frozenset(result)


class Scrubber:
    """Redacts secrets from Sentry events and other event-shaped data.

    A name is sensitive when, lowercased with ``_`` read as ``-``, it is one of
    `SENSITIVE_EXACT_NAMES`, contains one of `SENSITIVE_NAME_PARTS` or one of `deny`,
    and is not listed in `allow`.

    Args:
        deny: extra name parts; a name containing one of them is sensitive.
        allow: exact names that are kept even when they look sensitive.
        replacement: what a redacted value becomes.
        time_budget: seconds one event may take to scrub; past it the event is reduced
            to its small parts, which are scrubbed and sent instead (None: no limit).
            Since 0.2.0.

    Since 0.1.0.
    """

    __slots__ = ("_allow", "_deny", "_is_sensitive", "replacement", "time_budget")

    def __init__(
        self,
        *,
        deny: Iterable[str] = (),
        allow: Iterable[str] = (),
        replacement: str = FILTERED,
        time_budget: float | None = TIME_BUDGET_S,
    ) -> None:
        if not isinstance(replacement, str):
            raise TypeError("replacement must be a string")
        if time_budget is not None and not (
            isinstance(time_budget, (int, float)) and math.isfinite(time_budget) and time_budget > 0
        ):
            raise ValueError("time_budget must be a positive number of seconds, or None")
        self._deny = tuple(sorted(_name_set("deny", deny)))
        self._allow = _name_set("allow", allow)
        self.replacement = replacement
        self.time_budget = time_budget
        self._is_sensitive = lru_cache(maxsize=2048)(self._decide)

    def _decide(self, name: str) -> bool:
        normalised = _normalise(name)
        if normalised in self._allow:
            return False
        return _is_sensitive(normalised) or any(part in normalised for part in self._deny)

    def is_sensitive(self, name: str) -> bool:
        """True when values under `name` are redacted. Since 0.1.0."""
        if len(name) > _CACHED_NAME_LENGTH:
            return self._decide(name)
        return self._is_sensitive(name)

    def redact_query(self, query: bytes | str) -> str:
        """The query string with the values of sensitive parameters (and URL userinfo)
        replaced. Since 0.1.0."""
        text = query.decode("latin-1") if isinstance(query, bytes) else query
        parts = text.split("&")
        for index, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if sep and value and self.is_sensitive(unquote_plus(name)):
                parts[index] = f"{name}={self.replacement}"
        return redact_userinfo("&".join(parts), self.replacement)

    def request_secrets(
        self, headers: Iterable[Any] = (), query_string: bytes | str = b"", body: bytes = b""
    ) -> frozenset[str]:
        """The secret values one request carries, in the forms they take in text.

        From sensitive headers, every cookie, sensitive query parameters and sensitive
        fields of a JSON or form body. Never raises. Since 0.1.0.
        """
        return frozenset(self.request_secret_set(headers, query_string, body))

    def request_secret_set(
        self, headers: Iterable[Any] = (), query_string: bytes | str = b"", body: bytes = b""
    ) -> SecretSet:
        """`request_secrets` as a ranked `SecretSet`: sensitive headers first, then
        sensitive query and body fields, then cookies. Never raises. Since 0.2.0."""
        query = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        found = SecretSet()
        _guarded(header_secrets, headers, self.is_sensitive, found)
        _guarded(query_secrets, query, self.is_sensitive, found)
        if body:
            _guarded(body_secrets, body, self.is_sensitive, found)
        return found

    def scrub_event(self, event: Any, hint: Any = None) -> Any:
        """Return a scrubbed copy of `event`; usable as sentry-sdk's ``before_send``.

        Values under sensitive names are redacted everywhere; the secret values found in
        the event's ``request`` and passed under `SECRETS_HINT_KEY` in `hint` are
        redacted wherever they appear. Never raises, and never takes much longer than
        `time_budget`: an event that cannot be scrubbed in time is reduced to its
        small parts (see docs/errors-and-scrubbing.md), which are scrubbed instead.
        Since 0.1.0.
        """
        secrets = SecretSet()
        deadline = Deadline(self.time_budget)
        learned = False
        try:
            extra = hint.get(SECRETS_HINT_KEY) if isinstance(hint, Mapping) else None
            if isinstance(extra, SecretSet):
                secrets.update(extra)
            elif extra:
                for value in extra:
                    if isinstance(value, str):
                        secrets.add(value, NAMED)
            request = event.get("request") if isinstance(event, Mapping) else None
            request_section_secrets(request, self.is_sensitive, secrets, deadline)
            # Values under sensitive names anywhere are also looked for everywhere else.
            mapping_secrets(_without_metadata(event), self.is_sensitive, secrets, deadline)
            learned = not secrets.incomplete
            return self._walk(event, secrets, deadline)
        except ScrubTimeout:
            pass
        except Exception:  # a fault here must not leak the event: keep only safe facts
            return fallback_event(event, self.replacement)
        try:  # out of time: scrub the small, bounded parts, which needs no budget
            small = reduced_event(event, keep_text=learned)
            return self._walk(small, secrets, NO_DEADLINE)
        except Exception:
            return fallback_event(event, self.replacement)

    def scrub_text(self, text: str, secrets: SecretSet | Iterable[str] = ()) -> str:
        """Scrub one piece of free text as event text is scrubbed: the given secret values
        (e.g. `request_secret_set`), the passwords of URLs inside it, and the values of
        sensitive names in the shapes they take in messages and reprs. Returns the
        replacement when it cannot be done in time. Never raises. Since 0.2.0."""
        try:
            known = SecretSet()
            if isinstance(secrets, SecretSet):
                known.update(secrets)
            else:
                for value in secrets:
                    known.add(value, NAMED)
            if "://" in text:
                for value in userinfo_values(text):
                    known.add(value, NAMED)
            deadline = Deadline(self.time_budget)
            return TextRedactor(known, self.is_sensitive, self.replacement, deadline)(text)
        except Exception:
            return self.replacement

    def scrub_log(self, log: Any, hint: Any = None) -> Any:
        """Return a scrubbed copy of a Sentry log (``enable_logs``); usable as
        ``before_send_log``. Like `scrub_event`, but a log that cannot be scrubbed in
        time, or at all, is dropped (None). Since 0.2.0."""
        secrets = SecretSet()
        deadline = Deadline(self.time_budget)
        try:
            extra = hint.get(SECRETS_HINT_KEY) if isinstance(hint, Mapping) else None
            if isinstance(extra, SecretSet):
                secrets.update(extra)
            mapping_secrets(log, self.is_sensitive, secrets, deadline)
            return self._walk(log, secrets, deadline)
        except Exception:
            return None

    def _walk(self, event: Any, secrets: SecretSet, deadline: Deadline) -> Any:
        # All of the event's text at once (each distinct piece once: the same body often
        # sits in every frame): URL passwords are learned from it, and each secret is
        # looked for in it once, so each piece is then searched for those present only.
        blob = "\0".join(set(event_texts(event)))
        if "://" in blob:
            for value in userinfo_values(blob):
                secrets.add(value, NAMED)
        redactor = TextRedactor(secrets, self.is_sensitive, self.replacement, deadline)
        redactor.narrow(blob)
        return Walk(self.is_sensitive, redactor, self.replacement, deadline).event(event)


def _guarded(
    collect: Callable[[Any, Callable[[str], bool], SecretSet], None],
    source: Any,
    is_sensitive: Callable[[str], bool],
    into: SecretSet,
) -> None:
    with contextlib.suppress(Exception):  # odd input yields fewer secrets, never an error
        collect(source, is_sensitive, into)


def _without_metadata(event: Any) -> Any:
    if not isinstance(event, Mapping):
        return event
    return {key: value for key, value in event.items() if key not in SKIPPED_KEYS}


DEFAULT_SCRUBBER = Scrubber()


def scrub_event(event: Any, hint: Any = None) -> Any:
    """Scrub a Sentry event with the default settings; usable as ``before_send``.

    Same as ``Scrubber().scrub_event(event, hint)``. Since 0.1.0.
    """
    return DEFAULT_SCRUBBER.scrub_event(event, hint)
