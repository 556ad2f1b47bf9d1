"""Smoke tests of the production-shaped scripts run.py runs: each once, tiny, no timing asserted.

perf_compare.py (every in-process row, OTLP export to the loopback receiver included),
perf_memory.py and, where Debian's wrk is installed, perf_server.py.
"""

from __future__ import annotations

import shutil

import perf_compare
import perf_memory
import perf_server
import pytest
from stack_rows import OURS_FULL, PEERS_FULL, ROWS


def bench_perf_compare_runs_every_row_once() -> None:
    result = perf_compare.measure(rounds=1)
    assert {row.name for row in ROWS} <= set(result["rows"])
    assert result["rows"][PEERS_FULL]["overhead_us"] > result["rows"][OURS_FULL]["overhead_us"]
    assert "| observe() full adds / peer stack adds, OTLP export |" in perf_compare.table(result)


def bench_perf_memory_exports_through_otlp() -> None:
    result = perf_memory.measure(requests=1_500, warmup=500, every=500)
    assert result["received"]["requests"] >= 1  # the spans reached the receiver
    assert result["received"]["bytes"] > 1_500 * 100
    assert "OTLP export" in perf_memory.table(result)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="Debian's wrk is not installed")
def bench_perf_server_serves_every_app_once() -> None:
    result = perf_server.measure(duration=1, rounds=1, connections=4, warmup=0.5)
    assert set(perf_server.APPS) == set(result["requests_per_s"])
    assert result["received"]["requests"] >= 1
    assert "OTLP export" in perf_server.table(result)
