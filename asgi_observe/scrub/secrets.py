"""A request's secret values, ranked by where they came from, and a scrubbing deadline.

`SecretSet` holds the forms secret values take in text. When more values are known than
a scrub may look for, the cap keeps the ones a gateway or the app put there first: a
client can send hundreds of cookies, but it must never push an ``Authorization`` value
out of the set (issue 13).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 6
"""Shorter values are redacted by name only: replacing "dark" or "1" everywhere would
blank out unrelated text."""
MAX_SECRETS = 512
"""How many secret forms one scrub looks for, best ranked first (see `SecretSet`)."""
_MAX_TRACKED = 8 * MAX_SECRETS  # low-ranked values past this are not even kept
_AUTH_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,63}")  # RFC 9110 11.1 token

AUTH = 0
"""Rank of the values of sensitive headers other than ``Cookie`` (what a gateway adds)."""
NAMED = 1
"""Rank of the values under sensitive names in the query, the body and the event."""
OTHER = 2
"""Rank of the values a client chooses freely: every cookie."""


class SecretSet:
    """Secret values in the forms they take in text, each with its best rank.

    Iterating gives every form, best ranked first, in the order they were added within
    one rank; `ranked` cuts that list at a cap.
    """

    __slots__ = ("_rank", "incomplete")

    def __init__(self, values: Iterable[str] = (), rank: int = NAMED) -> None:
        self._rank: dict[str, int] = {}
        # Set when learning stopped early (out of time): a scrub then keeps no free text.
        self.incomplete = False
        for value in values:
            self.add(value, rank)

    def add(self, value: str, rank: int = NAMED) -> None:
        """Add `value` and its variants (`secret_variants`) at `rank`."""
        for form in secret_variants(value):
            self._put(form, rank)

    def add_bytes(self, raw: bytes, rank: int) -> None:
        """Add a header value as it may appear: latin-1 and UTF-8 decoded, and as bytes."""
        self.add(raw.decode("latin-1"), rank)
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            decoded = None
        if decoded is not None and not decoded.isascii():
            self.add(decoded, rank)
        if not raw.isascii():
            self._put(repr(raw)[2:-1], rank)

    def update(self, other: SecretSet) -> None:
        for form, rank in other._rank.items():
            self._put(form, rank)
        self.incomplete = self.incomplete or other.incomplete

    def _put(self, form: str, rank: int) -> None:
        if len(form) < MIN_SECRET_LENGTH:
            return
        known = self._rank.get(form)
        if known is None:
            if rank != AUTH and len(self._rank) >= _MAX_TRACKED:
                return
            self._rank[form] = rank
        elif rank < known:
            self._rank[form] = rank

    def ranked(self, limit: int = MAX_SECRETS) -> list[str]:
        """At most `limit` forms, best rank first (stable within a rank)."""
        rank = self._rank
        return sorted(rank, key=rank.__getitem__)[:limit]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ranked(len(self._rank)))

    def __len__(self) -> int:
        return len(self._rank)

    def __contains__(self, form: object) -> bool:
        return form in self._rank


def secret_variants(value: str) -> set[str]:
    """The forms a secret value takes in text: as is, its credential, encoded, escaped.

    Values of any length are kept: a long bearer token is as secret as a short one.
    """
    found: set[str] = set()
    _add(found, value)
    words = value.split(None, 1)
    if len(words) == 2 and _AUTH_SCHEME.fullmatch(words[0]):
        scheme, credential = words[0], words[1].strip()
        _add(found, credential)  # "Bearer <token>", "Basic <base64 user:password>"
        if scheme.lower() == "basic":
            decoded = _b64decode(credential)
            if decoded is not None:
                _add(found, decoded)
                _add(found, decoded.partition(":")[2])
    for secret in tuple(found):
        _add(found, quote(secret, safe=""))
        _add(found, quote_plus(secret, safe=""))
        _add(found, json.dumps(secret)[1:-1])
        _add(found, json.dumps(secret, ensure_ascii=False)[1:-1])
        _add(found, repr(secret)[1:-1])
        _add(found, repr(secret.encode("utf-8", "replace"))[2:-1])
    return found


def _add(found: set[str], value: str) -> None:
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        found.add(value)


def _b64decode(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


class ScrubTimeout(Exception):
    """Raised inside a scrub that ran past its `Deadline`."""


class Deadline:
    """A point in time a scrub must not pass; `check` raises `ScrubTimeout` after it."""

    __slots__ = ("_at",)

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.perf_counter() + seconds

    def check(self) -> None:
        if self._at is not None and time.perf_counter() > self._at:
            raise ScrubTimeout


NO_DEADLINE = Deadline(None)
