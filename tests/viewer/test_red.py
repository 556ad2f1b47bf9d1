"""RED from the metrics families: rates, error ratios and quantiles over a window."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from asgi_observe.viewer.red import MCP_ROWS, RedWindow, quantile

BOUNDS = (0.1, 0.5, 1.0, float("inf"))


@pytest.mark.parametrize(
    ("q", "cumulative", "expected"),
    [
        (0.5, (10, 10, 10, 10), 0.05),  # all in the first bucket: half of its width
        (0.5, (0, 10, 10, 10), 0.3),  # inside (0.1, 0.5]
        (0.99, (0, 0, 0, 10), 1.0),  # +Inf: the highest finite bound, as Prometheus
        (0.5, (0, 0, 0, 0), None),  # nothing observed
        (0.9, (5, 5, 10, 10), 0.9),
    ],
)
def test_quantile_interpolates_like_histogram_quantile(
    q: float, cumulative: tuple[float, ...], expected: float | None
) -> None:
    result = quantile(q, BOUNDS, tuple(float(c) for c in cumulative))

    assert expected == (None if result is None else pytest.approx(result))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def histogram() -> Histogram:
    return Histogram(
        "http_server_request_duration_seconds",
        "d",
        ("http_request_method", "http_route", "http_response_status_code"),
        buckets=(0.1, 0.5, 1.0),
        registry=CollectorRegistry(),
    )


def test_rates_and_errors_cover_only_the_window() -> None:
    clock = Clock()
    h = histogram()
    for _ in range(50):
        h.labels("GET", "/old", "200").observe(0.05)
    red = RedWindow(h, window_s=60, interval_s=5, clock=clock)  # the base snapshot
    for status in ("200",) * 8 + ("500",) * 2:
        h.labels("GET", "/items/{id}", status).observe(0.3)
    clock.now += 10

    [row] = red.table()["rows"]

    assert ("GET", "/items/{id}", 10, 2) == (
        row["method"],
        row["route"],
        row["count"],
        row["errors"],
    )
    assert pytest.approx(1.0) == row["rps"]
    assert pytest.approx(0.2) == row["error_ratio"]
    assert pytest.approx(300.0) == row["mean_ms"]
    assert 100 < row["p50_ms"] <= 500


def test_old_traffic_leaves_the_window() -> None:
    clock = Clock()
    h = histogram()
    red = RedWindow(h, window_s=60, interval_s=5, clock=clock)
    h.labels("GET", "/a", "200").observe(0.05)
    clock.now += 5
    assert 1 == red.table()["rows"][0]["count"]
    for _ in range(20):  # two minutes of polling, no traffic
        clock.now += 6
        red.table()

    assert [] == red.table()["rows"]
    assert len(red._snapshots) <= 60 / 5 + 2


def test_mcp_rows_are_per_method_and_tool_and_count_every_error_type() -> None:
    clock = Clock()
    h = Histogram(
        "mcp_server_operation_duration_seconds",
        "d",
        ("mcp_method_name", "gen_ai_tool_name", "gen_ai_prompt_name", "error_type"),
        buckets=(0.1, 0.5, 1.0),
        registry=CollectorRegistry(),
    )
    red = RedWindow(h, rows=MCP_ROWS, window_s=60, interval_s=5, clock=clock)
    for error_type in ("", "", "tool_error", "-32602", "incomplete_response"):
        h.labels("tools/call", "add", "", error_type).observe(0.2)
    h.labels("prompts/get", "", "greet", "").observe(0.05)
    clock.now += 10

    rows = {(row["method"], row["target"]): row for row in red.table()["rows"]}

    assert {("tools/call", "add"), ("prompts/get", "greet")} == set(rows)
    assert (5, 3) == (rows[("tools/call", "add")]["count"], rows[("tools/call", "add")]["errors"])
    assert pytest.approx(0.6) == rows[("tools/call", "add")]["error_ratio"]
    assert 0 == rows[("prompts/get", "greet")]["errors"]
    assert ["tools/call", "prompts/get"] == [row["method"] for row in red.table()["rows"]]
