"""The numeric variables the OpenTelemetry SDK reads itself, checked before it reads them.

The SDK logs a malformed `OTEL_BSP_SCHEDULE_DELAY=soon` and falls back to its default,
or raises a ValueError that names no variable when the batch size exceeds the queue; both
only once the processors are built. Checked here, a bad value fails at startup naming
the variable (docs/configuration.md). Limits are the SDK's own checks
(BatchSpanProcessor._validate_arguments, PeriodicExportingMetricReader.__init__).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["check_sdk_numbers"]

# The batch span (BSP) and log record (BLRP) processors parse these with int():
# (suffix, minimum), in milliseconds or items.
_BATCH = ("BSP", "BLRP")
_DEFAULT_QUEUE = 2048  # the SDK's default max queue size for both
_WHOLE = (
    ("SCHEDULE_DELAY", 1),
    ("EXPORT_TIMEOUT", 0),
    ("MAX_QUEUE_SIZE", 1),
    ("MAX_EXPORT_BATCH_SIZE", 1),
)
# The periodic metric reader parses these with float(); an infinite interval means "no
# periodic export", as in the SDK.
_METRIC_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
_METRIC_TIMEOUT = "OTEL_METRIC_EXPORT_TIMEOUT"


def check_sdk_numbers(env: Mapping[str, str]) -> None:
    """Raise ValueError naming the first malformed OTEL_BSP_*, OTEL_BLRP_* or
    OTEL_METRIC_EXPORT_* variable."""
    for prefix in _BATCH:
        values = {
            suffix: _whole(env, f"OTEL_{prefix}_{suffix}", minimum) for suffix, minimum in _WHOLE
        }
        queue = values["MAX_QUEUE_SIZE"] or _DEFAULT_QUEUE
        batch = values["MAX_EXPORT_BATCH_SIZE"]
        if batch is not None and batch > queue:
            name = f"OTEL_{prefix}_MAX_EXPORT_BATCH_SIZE"
            raise ValueError(
                f"{name}={env[name]!r}: must not exceed OTEL_{prefix}_MAX_QUEUE_SIZE ({queue})"
            )
    interval = _number(env, _METRIC_INTERVAL)
    if interval is not None and not interval > 0:
        raise ValueError(
            f"{_METRIC_INTERVAL}={env[_METRIC_INTERVAL]!r}: expected milliseconds above 0"
        )
    timeout = _number(env, _METRIC_TIMEOUT)
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError(
            f"{_METRIC_TIMEOUT}={env[_METRIC_TIMEOUT]!r}: expected milliseconds, 0 or more"
        )


def _whole(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "milliseconds" if name.endswith(("DELAY", "TIMEOUT")) else "a count"
        bound = "above 0" if minimum else "0 or more"
        raise ValueError(f"{name}={env[name]!r}: expected a whole number ({what}) {bound}")
    return value


def _number(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={env[name]!r}: expected a number of milliseconds") from None
