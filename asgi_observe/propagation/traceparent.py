"""Parse and format the W3C ``traceparent`` header.

https://www.w3.org/TR/trace-context-2/#traceparent-header
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, cast

from asgi_observe.propagation._log import log_invalid

__all__ = ["TraceParent", "format_traceparent", "parse_traceparent"]

# Version 00 is exactly 55 characters; a higher version is at least that long
# (https://www.w3.org/TR/trace-context-2/#versioning-of-traceparent).
TRACEPARENT_V00_LENGTH = 55
# Pass-through services "only disallow prohibitively large headers": anything
# longer than this (surrounding whitespace included) is rejected before any work.
MAX_TRACEPARENT_LENGTH = 512
# Outbound flags: sampled (0x01) and random-trace-id (0x02); other bits are
# reserved and "vendors MUST set those to zero" (trace-context-2 #other-flags).
KNOWN_FLAGS_MASK = 0x03
_INVALID_VERSION = 0xFF
_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1

_DASH = 0x2D
_HEX = b"0123456789abcdef"
_OWS = b" \t"
# Two lowercase hex digits -> value; a dict lookup is cheaper than int(..., 16).
_BYTE_OF_HEX2 = {b"%02x" % i: i for i in range(256)}


class TraceParent(NamedTuple):
    """A valid inbound ``traceparent``: the four fields every version shares.

    ``flags`` is the raw byte as received (unknown bits included).

    Since 0.1.0.
    """

    version: int
    trace_id: int
    parent_id: int
    flags: int


# tuple.__new__ skips the NamedTuple's Python-level __new__ on the hot path.
_new_traceparent = cast(
    "Callable[[type[TraceParent], tuple[int, int, int, int]], TraceParent]", tuple.__new__
)


def parse_traceparent(values: Sequence[bytes]) -> TraceParent | None:
    """Parse the ``traceparent`` header lines of one request.

    ``values`` holds every ``traceparent`` header line received, in order. More
    than one line, a comma-joined value, or any syntax error yields ``None``
    (restart the trace). Never raises on wire input.

    Since 0.1.0.
    """
    if len(values) != 1:
        if values:
            log_invalid("traceparent (several lines)", values[0])
        return None
    raw = values[0]
    if len(raw) > MAX_TRACEPARENT_LENGTH:
        log_invalid("traceparent (too long)", raw)
        return None
    value = raw.strip(_OWS)
    size = len(value)
    if (
        size < TRACEPARENT_V00_LENGTH
        or value[2] != _DASH
        or value[35] != _DASH
        or value[52] != _DASH
        or (size > TRACEPARENT_V00_LENGTH and (value[55] != _DASH or b"," in value))
    ):
        log_invalid("traceparent", raw)
        return None
    head = value if size == TRACEPARENT_V00_LENGTH else value[:TRACEPARENT_V00_LENGTH]
    # Lowercase hex plus exactly the three dashes checked above, nothing else.
    if head.translate(None, _HEX) != b"---":
        log_invalid("traceparent", raw)
        return None
    version = _BYTE_OF_HEX2[head[:2]]
    trace_id = int(head[3:35], 16)
    parent_id = int(head[36:52], 16)
    if (
        version == _INVALID_VERSION
        or (version == 0 and size != TRACEPARENT_V00_LENGTH)
        or not trace_id
        or not parent_id
    ):
        log_invalid("traceparent", raw)
        return None
    return _new_traceparent(TraceParent, (version, trace_id, parent_id, _BYTE_OF_HEX2[head[53:55]]))


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """Format a version ``00`` ``traceparent`` value, keeping only flags ``0x03``.

    Raises ``ValueError`` for an all-zero or out-of-range id (a programming
    error, not wire input).

    Since 0.1.0.
    """
    if not (0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID):
        raise ValueError("trace_id and span_id must be non-zero 128-bit / 64-bit integers")
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & KNOWN_FLAGS_MASK:02x}"
