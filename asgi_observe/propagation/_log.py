"""A bounded, rate-limited debug line for rejected wire input."""

from __future__ import annotations

import logging
import time

from asgi_observe._core.logsafe import log_safely

logger = logging.getLogger("asgi_observe.propagation")

# Attacker-controlled headers must not be able to flood the logs: at most one
# line per interval, and never more than a short prefix of the raw value.
_INTERVAL_S = 1.0
_REPR_LIMIT = 64
_next_allowed = [0.0]


def log_invalid(what: str, raw: bytes) -> None:
    """Log that a header was rejected, at most once per second, value truncated."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    now = time.monotonic()
    if now < _next_allowed[0]:
        return
    _next_allowed[0] = now + _INTERVAL_S
    # %r escapes control bytes; log_safely keeps a faulty filter from failing the request.
    log_safely(
        logger, logging.DEBUG, "ignored invalid %s header (%d bytes): %r", what, len(raw),
        raw[:_REPR_LIMIT],
    )  # fmt: skip
