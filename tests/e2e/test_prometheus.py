"""A real Prometheus scraping an example served by ``uvicorn --workers 2``.

Multi-process metrics (PROMETHEUS_MULTIPROC_DIR) must add up across the workers, our
histogram must give sane quantiles, every PromQL expression of the shipped Grafana
dashboard must evaluate (and find data), and the shipped alert rules must load and
evaluate against the real series. Prometheus comes from Debian's ``prometheus`` package
(.ci/install-system-deps): missing, these tests fail when CI=true and skip otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_queries import expressions, load, substitute
from e2e_harness import (
    LOOPBACK,
    Process,
    asgi_server_argv,
    clean_env,
    free_port,
    http_ready,
    require_binary,
    running,
    wait_until,
)

from asgi_observe.dashboards import ALERT_RULES, DASHBOARD, render, write

pytestmark = pytest.mark.e2e

JOB = "example"
ITEM_ROUTE = "/items/{item_id}"
# One request per route is sent before Prometheus first sees the series, the rest in
# batches at least one scrape apart, so rate() has an increase to measure.
# (items, booms, streams) per batch:
BATCHES = [(33, 3, 2), (33, 3, 2), (33, 3, 1)]
ITEMS, BOOMS, STREAMS = (1 + sum(batch[i] for batch in BATCHES) for i in range(3))
SCRAPE_WAIT_S = 30.0


@dataclass
class Stack:
    app: Process
    prometheus: Process
    multiproc_dir: Path

    def query(self, promql: str) -> dict[str, Any]:
        """The `data` of an instant query; fails the test on a Prometheus error."""
        response = httpx.get(
            f"{self.prometheus.base_url}/api/v1/query", params={"query": promql}, timeout=10.0
        )
        body = response.json()
        assert "success" == body.get("status"), (promql, body)
        data: dict[str, Any] = body["data"]
        return data

    def scalar(self, promql: str) -> float | None:
        """The value of a one-series vector result, None while there is none."""
        result = self.query(promql)["result"]
        if not result:
            return None
        assert 1 == len(result), (promql, result)
        return float(result[0]["value"][1])

    def wait_for_value(self, promql: str, expected: float) -> None:
        wait_until(
            lambda: self.scalar(promql) == expected,
            timeout=SCRAPE_WAIT_S,
            interval=0.25,
            what=f"{promql} == {expected} (last: {self.scalar(promql)})",
        )

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(
            f"{self.prometheus.base_url}/api/v1/{path}", params=params, timeout=10.0
        )
        body = response.json()
        assert "success" == body.get("status"), body
        return body["data"]


def count_of(route: str, status: str) -> str:
    return (
        "sum(http_server_request_duration_seconds_count"
        f'{{job="{JOB}", http_route="{route}", http_response_status_code="{status}"}})'
    )


def prometheus_config(app_port: int, rules: Path, mcp_port: int) -> str:
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: {JOB}
    metrics_path: /metrics
    static_configs:
      - targets: ["{LOOPBACK}:{app_port}", "{LOOPBACK}:{mcp_port}"]
"""


def drive_mcp(url: str) -> None:
    """One handshake-era session (it starts and is deleted) and one 2026-07-28 client.

    Few calls, one isError among them: the per-tool panels find data while the tool's
    10-minute call rate stays under the ASGIMcpToolErrorRatio traffic guard.
    """
    import asyncio

    from mcp import Client

    async def sessions() -> None:
        async with Client(url, mode="legacy") as client:
            await client.list_tools()
            assert not (await client.call_tool("stock", {"item": "bolts"})).is_error
        async with Client(url) as client:
            await client.list_tools()
            assert (await client.call_tool("stock", {"item": "unobtainium"})).is_error

    asyncio.run(sessions())


def drive(client: httpx.Client, path: str, times: int, status: int) -> None:
    for _ in range(times):
        assert status == client.get(path).status_code, path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    multiproc_dir = tmp / "multiproc"
    multiproc_dir.mkdir()
    app_port, prometheus_port, mcp_port = free_port(), free_port(), free_port()
    mcp_multiproc_dir = tmp / "multiproc-mcp"
    mcp_multiproc_dir.mkdir()
    app_env = clean_env(
        {
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "DOWNSTREAM_URL": f"http://{LOOPBACK}:9/",
        }
    )
    rules = write(tmp / "rules")[1]
    assert ALERT_RULES == rules.name
    config = tmp / "prometheus.yml"
    config.write_text(prometheus_config(app_port, rules, mcp_port), encoding="utf-8")

    with (
        running(
            asgi_server_argv("uvicorn", "examples.starlette_app:app", app_port, workers=2),
            log_path=tmp / "app.log",
            env=app_env,
            base_url=f"http://{LOOPBACK}:{app_port}",
            ready=http_ready("/health/live", status=200),
        ) as app,
        running(
            asgi_server_argv("uvicorn", "examples.mcp_server:app", mcp_port),
            log_path=tmp / "mcp.log",
            env={**app_env, "PROMETHEUS_MULTIPROC_DIR": str(mcp_multiproc_dir)},
            base_url=f"http://{LOOPBACK}:{mcp_port}",
            ready=http_ready("/metrics", status=200),
        ) as mcp_server,
        httpx.Client(
            base_url=app.base_url, timeout=10.0, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client,
    ):
        # The first request of each route creates its series before Prometheus runs.
        drive(client, "/items/0", 1, 200)
        drive(client, "/boom", 1, 500)
        drive(client, "/stream", 1, 200)
        drive_mcp(f"{mcp_server.base_url}/mcp")
        with running(
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--web.listen-address={LOOPBACK}:{prometheus_port}",
                f"--storage.tsdb.path={tmp / 'data'}",
                "--log.level=warn",
            ],
            log_path=tmp / "prometheus.log",
            env=clean_env(),
            base_url=f"http://{LOOPBACK}:{prometheus_port}",
            ready=http_ready("/-/ready", status=200),
            cwd=tmp,
        ) as prometheus:
            stack = Stack(app=app, prometheus=prometheus, multiproc_dir=multiproc_dir)
            stack.wait_for_value(count_of(ITEM_ROUTE, "200"), 1.0)
            # The rest in three batches, at least one scrape apart.
            for items, booms, streams in BATCHES:
                drive(client, "/items/7", items, 200)
                drive(client, "/boom", booms, 500)
                drive(client, "/stream", streams, 200)
                drive_mcp(f"{mcp_server.base_url}/mcp")
                time.sleep(1.2)
            yield stack


def test_request_counts_add_up_across_two_workers(stack: Stack) -> None:
    stack.wait_for_value(count_of(ITEM_ROUTE, "200"), float(ITEMS))
    stack.wait_for_value(count_of("/boom", "500"), float(BOOMS))
    stack.wait_for_value(count_of("/stream", "200"), float(STREAMS))
    # Each worker writes its own files; the scrape added them up.
    pids = {path.stem.rsplit("_", 1)[-1] for path in stack.multiproc_dir.glob("histogram_*.db")}
    assert 1 <= len(pids) <= 2, pids


def test_histogram_quantiles_over_our_buckets_are_sane(stack: Stack) -> None:
    stack.wait_for_value(count_of(ITEM_ROUTE, "200"), float(ITEMS))
    selector = f'job="{JOB}", http_route="{ITEM_ROUTE}"'
    totals = f"sum by (le) (http_server_request_duration_seconds_bucket{{{selector}}})"
    p50 = stack.scalar(f"histogram_quantile(0.5, {totals})")
    assert p50 is not None and 0 < p50 <= 0.25, p50
    rated = f"sum by (le) (rate(http_server_request_duration_seconds_bucket{{{selector}}}[1m]))"
    p99 = wait_until(
        lambda: stack.scalar(f"histogram_quantile(0.99, {rated})"),
        timeout=SCRAPE_WAIT_S,
        what="a p99 from rate()",
    )
    assert math.isfinite(p99) and 0 < p99 <= 1.0, p99
    assert p50 <= p99 or p99 == pytest.approx(p50)


def test_the_histogram_has_exactly_our_buckets(stack: Stack) -> None:
    result = stack.query(
        f'count by (le) (http_server_request_duration_seconds_bucket{{job="{JOB}"}})'
    )["result"]
    bounds = {float(series["metric"]["le"]) for series in result}
    expected = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
    assert expected | {math.inf} == bounds


def test_every_dashboard_query_evaluates_and_finds_data(stack: Stack) -> None:
    stack.wait_for_value(count_of(ITEM_ROUTE, "200"), float(ITEMS))
    dashboard = load(render()[DASHBOARD])
    queries = expressions(dashboard)
    assert 10 <= len(queries)
    values = {
        "__rate_interval": "1m",
        "__range": "5m",
        "job": JOB,
        "route": ".*",
    }

    def empty_queries() -> list[str] | None:
        empty = [
            title for title, expr in queries if not stack.query(substitute(expr, values))["result"]
        ]
        return empty or None

    # Every query is valid PromQL at once; all find data once rate() has two scrapes.
    for _title, expr in queries:
        stack.query(substitute(expr, values))
    still_empty = None
    try:
        wait_until(lambda: empty_queries() is None, timeout=SCRAPE_WAIT_S, what="data")
    except AssertionError:
        still_empty = empty_queries()
    assert still_empty is None, still_empty


def test_dashboard_variable_queries_list_our_job_and_routes(stack: Stack) -> None:
    """What label_values(...) of the $job and $route variables would list."""
    series = "http_server_request_duration_seconds_count"
    jobs = stack.api("label/job/values", **{"match[]": series})
    assert [JOB] == jobs
    routes = stack.api("label/http_route/values", **{"match[]": f'{series}{{job=~"{JOB}"}}'})
    assert {ITEM_ROUTE, "/boom", "/stream"} <= set(routes)


def test_alert_rules_load_and_evaluate_against_real_series(stack: Stack) -> None:
    def evaluated_rules() -> list[dict[str, Any]] | None:
        groups = stack.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if len(rules) == 4 and evaluated else None

    rules = wait_until(evaluated_rules, timeout=SCRAPE_WAIT_S, what="evaluated alert rules")
    assert {
        "ASGIHighErrorRatio",
        "ASGIHighLatencyP99",
        "ASGIMcpToolErrorRatio",
        "ASGITargetDown",
    } == {rule["name"] for rule in rules}
    for rule in rules:
        assert "ok" == rule["health"], rule


def test_error_ratio_alert_goes_pending_on_real_5xx_traffic(stack: Stack) -> None:
    """About 9% of requests failed: above 5%, so the alert waits out its `for: 5m`."""
    stack.wait_for_value(count_of("/boom", "500"), float(BOOMS))

    def states() -> dict[str, str] | None:
        alerts = stack.api("alerts")["alerts"]
        found = {alert["labels"]["alertname"]: alert["state"] for alert in alerts}
        return found if "ASGIHighErrorRatio" in found else None

    found = wait_until(states, timeout=SCRAPE_WAIT_S, what="ASGIHighErrorRatio pending")
    assert {"ASGIHighErrorRatio": "pending"} == found
