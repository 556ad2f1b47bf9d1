"""Two uvicorn workers push OTLP metrics as two instances whose counts add up to the requests.

Each worker configures telemetry in its own process, so each draws its own
``service.instance.id``; with one id for both, a backend would read two cumulative
counters as one that keeps jumping. Run both through ``asgi-observe run --workers 2``
and through plain ``uvicorn --workers 2`` serving an app wrapped by observe().
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    BIN_DIR,
    LOOPBACK,
    Collector,
    ExportedPoint,
    clean_env,
    free_port,
    http_ready,
    running,
)

pytestmark = pytest.mark.e2e

MAX_REQUESTS = 400
SPREAD_TIMEOUT_S = 20.0
APP = """\
import os
import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    # Blocks this worker's loop a moment, so the next connection goes to the other one.
    time.sleep(0.02)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""
OBSERVED = """\
from asgi_observe import observe
from plain_app import app as plain

app = observe(plain, metrics_path="/metrics")
"""


@pytest.mark.parametrize("command", ["asgi-observe run", "uvicorn"])
def test_two_workers_push_distinct_instances_whose_counts_add_up(
    tmp_path: Path, otlp_receiver: Collector, command: str
) -> None:
    otlp_receiver.recorder.items.clear()
    (tmp_path / "plain_app.py").write_text(APP)
    (tmp_path / "observed_app.py").write_text(OBSERVED)
    port = free_port()
    if command == "uvicorn":
        argv = [str(BIN_DIR / "uvicorn"), "observed_app:app", "--app-dir", str(tmp_path)]
        argv += ["--host", LOOPBACK, "--port", str(port), "--workers", "2"]
        argv += ["--log-level", "warning"]
    else:
        argv = [str(BIN_DIR / "asgi-observe"), "run", "plain_app:app", "--app-dir", str(tmp_path)]
        argv += ["--port", str(port), "--workers", "2"]
    env = clean_env(
        {
            "OTEL_SERVICE_NAME": "workers-e2e",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        }
    )
    base_url = f"http://{LOOPBACK}:{port}"
    with running(
        argv,
        log_path=tmp_path / "server.log",
        env=env,
        ready=http_ready("/metrics", status=200),
        base_url=base_url,
    ) as server:
        pids: set[str] = set()
        sent = 0
        deadline = time.monotonic() + SPREAD_TIMEOUT_S

        def one(index: int) -> str:
            response = httpx.get(f"{base_url}/work/{index}", timeout=5.0)  # a new connection
            assert 200 == response.status_code
            return response.text

        with ThreadPoolExecutor(max_workers=4) as pool:
            while sent < MAX_REQUESTS and time.monotonic() < deadline:
                pids.update(pool.map(one, range(sent, sent + 8)))
                sent += 8
                if len(pids) >= 2 and sent >= 40:
                    break
        assert 2 == len(pids), f"all {sent} requests went to one worker:\n{server.output()}"
        # SIGTERM: each worker's lifespan shutdown flushes its last cumulative point.
        server.popen.send_signal(signal.SIGTERM)
        server.popen.wait(timeout=30)

    last: dict[str, float] = {}
    for point in otlp_receiver.recorder.snapshot():
        if isinstance(point, ExportedPoint) and point.name == "http.server.request.duration":
            assert "workers-e2e" == point.service_name
            assert 2 == point.temporality  # cumulative: the last point holds the total
            last[point.instance_id] = max(last.get(point.instance_id, 0.0), point.value)
    assert 2 == len(last), last
    assert all(last), last
    assert float(sent) == sum(last.values())
