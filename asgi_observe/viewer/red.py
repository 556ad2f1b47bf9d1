"""RED per route and per MCP tool for the viewer, read from the histograms /metrics exposes.

Nothing is recorded twice: the viewer keeps a few snapshots of the histogram's cumulative
buckets (taken when the page asks, at most one per `interval_s`) and reports the
difference between now and the oldest snapshot inside the window, the way Prometheus'
``rate()`` and ``histogram_quantile()`` read the same series.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["HTTP_ROWS", "MCP_ROWS", "RedWindow", "Rows", "quantile"]

# series labels, in `Rows.labels` order -> (count, sum, cumulative bucket counts in `le` order)
_Series = dict[tuple[str, ...], tuple[float, float, tuple[float, ...]]]


class Rows:
    """How a histogram's series become table rows: which labels, which columns, which errors."""

    def __init__(
        self,
        labels: tuple[str, ...],
        columns: tuple[str, ...],
        row: Callable[[tuple[str, ...]], _Row],
    ) -> None:
        self.labels = labels  # the series' labels, read in this order
        self.columns = columns  # the names of a row's key
        self.row = row  # a series' labels -> its row's key, and whether it counts as an error


class _Row(NamedTuple):
    key: tuple[str, ...]
    failed: bool


# Per method and route template; 5xx responses are the errors.
HTTP_ROWS = Rows(
    ("http_request_method", "http_route", "http_response_status_code"),
    ("method", "route"),
    lambda labels: _Row((labels[0], labels[1]), labels[2].startswith("5")),
)
# Per MCP method and its tool or prompt; any error_type (tool_error, a JSON-RPC code,
# incomplete_response, ...) is an error.
MCP_ROWS = Rows(
    ("mcp_method_name", "gen_ai_tool_name", "gen_ai_prompt_name", "error_type"),
    ("method", "target"),
    lambda labels: _Row((labels[0], labels[1] or labels[2]), labels[3] != ""),
)


def quantile(q: float, bounds: tuple[float, ...], cumulative: tuple[float, ...]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear inside the bucket, +Inf gives the last bound."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the highest finite bound, as Prometheus answers
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


class RedWindow:
    """Rate, errors and duration quantiles per row (`rows`) over the last minutes."""

    def __init__(
        self,
        histogram: Any,
        *,
        rows: Rows = HTTP_ROWS,
        window_s: float = 300.0,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._histogram = histogram
        self._rows = rows
        self.window_s = window_s
        self._interval_s = interval_s
        self._clock = clock
        self._bounds: tuple[float, ...] = ()
        # At most window/interval + 2 snapshots are ever kept.
        self._snapshots: deque[tuple[float, _Series]] = deque()
        self._lock = threading.Lock()
        self._snapshots.append((clock(), self._read()))

    def _read(self) -> _Series:
        series: dict[tuple[str, ...], list[Any]] = {}
        bounds: list[float] = []
        names = self._rows.labels
        for family in self._histogram.collect():
            for sample in family.samples:
                labels = sample.labels
                key = tuple(labels.get(name, "") for name in names)
                entry = series.setdefault(key, [0.0, 0.0, []])
                if sample.name.endswith("_bucket"):
                    entry[2].append(sample.value)
                    if len(entry[2]) > len(bounds):
                        bounds.append(float(labels["le"]))
                elif sample.name.endswith("_count"):
                    entry[0] = sample.value
                elif sample.name.endswith("_sum"):
                    entry[1] = sample.value
        if bounds:
            self._bounds = tuple(bounds)
        return {
            key: (count, total, tuple(buckets)) for key, (count, total, buckets) in series.items()
        }

    def table(self) -> dict[str, Any]:
        """One row per key (method and route, or method and target) with traffic in the
        window, busiest first."""
        now = self._clock()
        with self._lock:
            latest = self._snapshots[-1]
            if now - latest[0] >= self._interval_s or len(self._snapshots) == 1:
                latest = (now, self._read())
                self._snapshots.append(latest)
            # Keep one snapshot at or before the window's start as the base.
            while len(self._snapshots) > 2 and self._snapshots[1][0] <= now - self.window_s:
                self._snapshots.popleft()
            base_time, base = self._snapshots[0]
        current = latest[1]
        # Under a second of history (the first look) counts as one second.
        seconds = max(now - base_time, 1.0)
        columns = self._rows.columns
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for labels, (count, total, buckets) in current.items():
            old_count, old_total, old_buckets = base.get(labels, (0.0, 0.0, ()))
            delta = count - old_count
            if delta <= 0:
                continue
            key, failed = self._rows.row(labels)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {
                    **dict(zip(columns, key, strict=True)),
                    "count": 0.0, "errors": 0.0, "sum": 0.0, "buckets": [0.0] * len(buckets),
                }  # fmt: skip
            row["count"] += delta
            row["sum"] += total - old_total
            if failed:
                row["errors"] += delta
            for index, value in enumerate(buckets):
                old = old_buckets[index] if index < len(old_buckets) else 0.0
                row["buckets"][index] += value - old
        table = []
        for row in rows.values():
            cumulative = tuple(row.pop("buckets"))
            count = row["count"]
            row.update(
                rps=count / seconds,
                error_ratio=row["errors"] / count,
                mean_ms=1000 * row.pop("sum") / count,
                **{
                    name: _ms(quantile(q, self._bounds, cumulative))
                    for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99))
                },
            )
            row["count"] = int(count)
            row["errors"] = int(row["errors"])
            table.append(row)
        table.sort(key=lambda row: (-row["count"], *(row[c] for c in reversed(columns))))
        return {"window_s": round(seconds, 1), "rows": table}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
