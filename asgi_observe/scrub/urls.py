"""URL userinfo redaction: ``postgres://user:pw@db/app`` -> ``postgres://[Filtered]@db/app``.

One helper for every place that shows a URL it did not build: Sentry events, span
attributes, the access log and health-check messages.
"""

from __future__ import annotations

import re

__all__ = ["redact_userinfo", "userinfo_values"]

# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_MAX_SCHEME = 32
# Section 3.2: the authority ends at the next "/", "?" or "#"; whitespace ends a URL in text.
_AUTHORITY_END = re.compile(r"[/?#\s]")


def redact_userinfo(text: str, replacement: str = "[Filtered]") -> str:
    """Replace the userinfo of every ``scheme://userinfo@host`` URL inside `text`.

    The host and everything after it stay. A password holding an unencoded ``@`` is
    covered: the userinfo runs to the last ``@`` before the host. Linear in the length
    of `text`; never raises. Since 0.2.0.
    """
    if "://" not in text:
        return text
    parts: list[str] = []
    done = 0  # text[:done] is already in parts
    search = 0
    while True:
        mark = text.find("://", search)
        if mark < 0:
            break
        start = mark + 3
        search = start
        if not _has_scheme(text, mark):
            continue
        end_match = _AUTHORITY_END.search(text, start)
        end = len(text) if end_match is None else end_match.start()
        at = text.rfind("@", start, end)
        already = text.startswith(replacement, start) and at == start + len(replacement)
        if at <= start or already:
            continue
        parts.append(text[done:start])
        parts.append(replacement)
        done = at
        search = at
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def userinfo_values(text: str) -> list[str]:
    """The userinfo of every URL inside `text`, and the password part of each: secret
    values, to be looked for wherever else they appear. Linear; never raises."""
    found: list[str] = []
    search = 0
    while True:
        mark = text.find("://", search)
        if mark < 0:
            return found
        start = search = mark + 3
        if not _has_scheme(text, mark):
            continue
        end_match = _AUTHORITY_END.search(text, start)
        end = len(text) if end_match is None else end_match.start()
        at = text.rfind("@", start, end)
        if at > start:
            userinfo = text[start:at]
            found.append(userinfo)
            found.append(userinfo.partition(":")[2])
            search = at


def _has_scheme(text: str, mark: int) -> bool:
    begin = mark
    limit = max(0, mark - _MAX_SCHEME)
    while begin > limit and text[begin - 1] in _SCHEME_CHARS:
        begin -= 1
    # The scheme starts at a letter; digits glued before it ("host:8000http://") are not it.
    return any(char.isalpha() for char in text[begin:mark])
