"""Pure secret scrubbing: sensitive names, query strings and event-shaped data."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote_plus

# Compared after lowercasing and mapping "_" to "-" (STYLE: `-` and `_` alike).
SENSITIVE_EXACT_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "sig",
     "awsaccesskeyid"}
)
SENSITIVE_NAME_PARTS = (
    "token", "secret", "password", "passwd", "session", "credential", "signature",
    "csrf", "xsrf", "api-key", "apikey", "auth",
)


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
