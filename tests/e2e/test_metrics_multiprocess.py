"""Metrics of every uvicorn worker, aggregated by one scrape (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    LOOPBACK,
    REPO_ROOT,
    asgi_server_argv,
    clean_env,
    free_port,
    http_ready,
    running,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

APP_DIR = REPO_ROOT / "tests" / "e2e" / "apps"
MAX_REQUESTS = 400
SPREAD_TIMEOUT_S = 20.0


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_one_scrape_totals_all_workers(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port = free_port()
    argv = asgi_server_argv("uvicorn", "metrics_multiproc_app:app", port, workers=2)
    argv += ["--app-dir", str(APP_DIR)]
    env = clean_env({"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)})
    base_url = f"http://{LOOPBACK}:{port}"
    with running(
        argv,
        log_path=tmp_path / "uvicorn.log",
        env=env,
        ready=http_ready("/metrics", status=200),
        base_url=base_url,
    ) as server:
        pids: set[str] = set()
        sent = 0
        deadline = time.monotonic() + SPREAD_TIMEOUT_S
        # A new connection per request lets the kernel hand it to either worker.
        while sent < MAX_REQUESTS and time.monotonic() < deadline:
            response = httpx.get(f"{base_url}/work/{sent}", timeout=5.0)
            assert 200 == response.status_code
            pids.add(response.text)
            sent += 1
            if len(pids) >= 2 and sent >= 40:
                break
        assert 2 == len(pids), f"all {sent} requests went to one worker:\n{server.output()}"
        scrape = httpx.get(f"{base_url}/metrics", timeout=5.0)
    assert 200 == scrape.status_code
    found = samples(scrape.text)
    labels = (
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("http_route", "/work/{n}"),
    )
    assert float(sent) == found[("http_server_request_duration_seconds_count", labels)]
    active = ("http_server_active_requests", (("http_request_method", "GET"),))
    assert 0.0 == found[active]
    # process_* come back per worker (a pid label each); python_gc_* cannot (see
    # docs/metrics.md), python_info is the same for all.
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total"):
        assert pids == {dict(key[1])["pid"] for key in found if key[0] == name}, name
    assert any(key[0] == "python_info" for key in found)
    assert not any(key[0].startswith("python_gc_") for key in found)
    assert 2 <= len(list(multiproc_dir.glob("histogram_*.db")))
