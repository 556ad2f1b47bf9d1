"""Parse and format the W3C ``tracestate`` header.

https://www.w3.org/TR/trace-context-2/#tracestate-header
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asgi_observe.propagation._log import log_invalid

__all__ = [
    "format_tracestate",
    "is_valid_tracestate_member",
    "parse_tracestate",
    "parse_tracestate_dict",
]

# "There can be a maximum of 32 list-members in a list" (#tracestate-header-field-values).
MAX_TRACESTATE_MEMBERS = 32
# key = ( lcalpha / DIGIT ) 0*255( keychar ); value = 0*255( chr ) nblk-chr (#key, #value).
MAX_KEY_LENGTH = 256
MAX_VALUE_LENGTH = 256
# "Vendors SHOULD propagate at least 512 characters of a combined header" and,
# when truncating, drop entries longer than 128 characters first (#tracestate-limits).
# 512 is our propagation limit: a tracestate that fits is never truncated.
MAX_TRACESTATE_LENGTH = 512
LONG_ENTRY_LENGTH = 128
# Combined input beyond this cannot be 32 members of at most 513 characters
# with sane whitespace; it is discarded whole before any per-member work.
MAX_TRACESTATE_INPUT = 32 * 1024

_LCALPHA_DIGIT = b"abcdefghijklmnopqrstuvwxyz0123456789"
_KEY_FIRST = frozenset(_LCALPHA_DIGIT)
_KEY_CHARS = _LCALPHA_DIGIT + b"_-*/@"
# chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E: printable but "," and "=".
_VALUE_CHARS = bytes(c for c in range(0x20, 0x7F) if c not in b",=")
_KEY_CHARS_STR = frozenset(_KEY_CHARS.decode())
_VALUE_CHARS_STR = frozenset(_VALUE_CHARS.decode())
_OWS = b" \t"


def parse_tracestate(values: Sequence[bytes]) -> list[tuple[str, str]]:
    """Parse every ``tracestate`` header line of one request, combined in order.

    Returns the ``(key, value)`` entries, left-most first, or ``[]`` when absent
    or discarded. Policy: an invalid member or more than 32 members discards the
    whole tracestate; a duplicate key keeps the left-most entry; a tracestate
    longer than 512 characters is truncated by whole entries (those longer than
    128 characters first, then from the right). Never raises on wire input.

    Since 0.1.0.
    """
    return list(parse_tracestate_dict(values).items())


def parse_tracestate_dict(values: Sequence[bytes]) -> dict[str, str]:
    """:func:`parse_tracestate` as an insertion-ordered dict (the propagator's fast path)."""
    if not values:
        return {}
    data = values[0] if len(values) == 1 else b",".join(values)
    size = len(data)
    if size > MAX_TRACESTATE_INPUT:
        log_invalid("tracestate (too long)", data)
        return {}
    entries: dict[bytes, bytes] = {}
    count = 0
    for item in data.split(b","):
        member = item.strip(_OWS)
        if not member:
            continue  # empty and whitespace-only members are allowed
        count += 1
        key, _, value = member.partition(b"=")
        if (
            count > MAX_TRACESTATE_MEMBERS
            or not key
            or not value  # also when there is no "="
            or len(key) > MAX_KEY_LENGTH
            or len(value) > MAX_VALUE_LENGTH
            or key[0] not in _KEY_FIRST
            # isalnum() (+ islower() for keys) is a cheap exact answer for the common case.
            or not ((key.isalnum() and key.islower()) or not key.translate(None, _KEY_CHARS))
            or not (value.isalnum() or not value.translate(None, _VALUE_CHARS))
        ):
            # The member was stripped, so the value cannot end with a space.
            log_invalid("tracestate", data)
            return {}
        if key not in entries:
            entries[key] = value
    pairs = {key.decode(): value.decode() for key, value in entries.items()}
    # The entries re-joined are never longer than the input they came from.
    return pairs if size <= MAX_TRACESTATE_LENGTH else dict(_truncate(list(pairs.items())))


def is_valid_tracestate_member(key: str, value: str) -> bool:
    """Whether ``key=value`` is a valid tracestate list-member (Level 2 grammar).

    Since 0.1.0.
    """
    return (
        0 < len(key) <= MAX_KEY_LENGTH
        and 0 < len(value) <= MAX_VALUE_LENGTH
        and key[0] in _KEY_FIRST_STR
        and _KEY_CHARS_STR.issuperset(key)
        and _VALUE_CHARS_STR.issuperset(value)
        and value[-1] != " "
    )


_KEY_FIRST_STR = frozenset(_LCALPHA_DIGIT.decode())


def format_tracestate(entries: Iterable[tuple[str, str]]) -> str:
    """Format entries as a ``tracestate`` value, left-most first.

    Entries are expected to be valid (as returned by :func:`parse_tracestate`);
    the 512-character propagation limit is applied the same way as on parse.

    Since 0.1.0.
    """
    pairs = entries if isinstance(entries, list) else list(entries)
    header = ",".join([f"{key}={value}" for key, value in pairs])
    if len(header) <= MAX_TRACESTATE_LENGTH:
        return header
    return ",".join([f"{key}={value}" for key, value in _truncate(pairs)])


def _truncate(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    sizes = [len(key) + 1 + len(value) for key, value in pairs]
    total = sum(sizes) + len(pairs) - 1
    if total <= MAX_TRACESTATE_LENGTH:
        return pairs
    keep = [True] * len(pairs)
    # Spec order: entries longer than 128 characters first, then from the end;
    # within each pass the right-most goes first, and we stop once it fits.
    for only_long in (True, False):
        for index in range(len(pairs) - 1, -1, -1):
            if total <= MAX_TRACESTATE_LENGTH:
                break
            if keep[index] and (sizes[index] > LONG_ENTRY_LENGTH or not only_long):
                keep[index] = False
                total -= sizes[index] + 1
    return [pair for pair, kept in zip(pairs, keep, strict=True) if kept]
