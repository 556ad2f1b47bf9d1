"""Pure secret scrubbing: sensitive names, query strings and event-shaped data.

`Scrubber.scrub_event` walks a Sentry event (or anything shaped like one) and returns a
scrubbed copy; the module-level `scrub_event` does the same with the default settings and
can be passed to `sentry_sdk.init(before_send=...)`. What is scrubbed, and how to extend
it, is described in docs/errors-and-scrubbing.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from asgi_observe.scrub.values import (
    TextRedactor,
    body_secrets,
    header_secrets,
    mapping_secrets,
    query_secrets,
    request_section_secrets,
)
from asgi_observe.scrub.walk import SKIPPED_KEYS, Walk, fallback_event

__all__ = [
    "FILTERED",
    "SECRETS_HINT_KEY",
    "SENSITIVE_EXACT_NAMES",
    "SENSITIVE_NAME_PARTS",
    "Scrubber",
    "is_sensitive_name",
    "redact_query_string",
    "scrub_event",
]

FILTERED = "[Filtered]"
"""What a redacted value becomes (the marker Sentry itself uses)."""

SECRETS_HINT_KEY = "asgi_observe.secrets"
"""Hint key under which a caller passes extra secret values (an iterable of str) to
`scrub_event`; SentryMiddleware passes the values it saw in the request."""

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
    return "&".join(parts) if changed else text


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

    Since 0.1.0.
    """

    __slots__ = ("_allow", "_deny", "_is_sensitive", "replacement")

    def __init__(
        self, *, deny: Iterable[str] = (), allow: Iterable[str] = (), replacement: str = FILTERED
    ) -> None:
        if not isinstance(replacement, str):
            raise TypeError("replacement must be a string")
        self._deny = tuple(sorted(_name_set("deny", deny)))
        self._allow = _name_set("allow", allow)
        self.replacement = replacement
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
        """The query string with the values of sensitive parameters replaced. Since 0.1.0."""
        text = query.decode("latin-1") if isinstance(query, bytes) else query
        parts = text.split("&")
        for index, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if sep and value and self.is_sensitive(unquote_plus(name)):
                parts[index] = f"{name}={self.replacement}"
        return "&".join(parts)

    def request_secrets(
        self, headers: Iterable[Any] = (), query_string: bytes | str = b"", body: bytes = b""
    ) -> frozenset[str]:
        """The secret values one request carries, in the forms they take in text.

        From sensitive headers, every cookie, sensitive query parameters and sensitive
        fields of a JSON or form body. Never raises. Since 0.1.0.
        """
        query = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        found = _guarded(header_secrets, headers, self.is_sensitive)
        found |= _guarded(query_secrets, query, self.is_sensitive)
        if body:
            found |= _guarded(body_secrets, body, self.is_sensitive)
        return frozenset(found)

    def scrub_event(self, event: Any, hint: Any = None) -> Any:
        """Return a scrubbed copy of `event`; usable as sentry-sdk's ``before_send``.

        Values under sensitive names are redacted everywhere; the secret values found in
        the event's ``request`` and passed under `SECRETS_HINT_KEY` in `hint` are
        redacted wherever they appear. Never raises. Since 0.1.0.
        """
        try:
            request = event.get("request") if isinstance(event, Mapping) else None
            secrets = request_section_secrets(request, self.is_sensitive)
            # Values under sensitive names anywhere are also looked for everywhere else.
            secrets |= mapping_secrets(_without_metadata(event), self.is_sensitive)
            extra = hint.get(SECRETS_HINT_KEY) if isinstance(hint, Mapping) else None
            if extra:
                secrets.update(value for value in extra if isinstance(value, str))
            redactor = TextRedactor(secrets, self.is_sensitive, self.replacement)
            return Walk(self.is_sensitive, redactor, self.replacement).event(event)
        except Exception:  # a fault here must not leak the event: keep only safe facts
            return fallback_event(event, self.replacement)


def _guarded(
    collect: Callable[[Any, Callable[[str], bool]], set[str]],
    source: Any,
    is_sensitive: Callable[[str], bool],
) -> set[str]:
    try:
        return collect(source, is_sensitive)
    except Exception:  # odd input yields fewer secrets, never an error
        return set()


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
