"""The shipped Grafana dashboard and Prometheus alert rules, and `render(namespace)`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_queries import expressions, load, panels, substitute, variable_names

from asgi_observe import dashboards
from asgi_observe.dashboards import ALERT_RULES, DASHBOARD, render, write

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TEST = ROOT / "tests" / "promtool" / "alerts_test.yml"

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
MCP_OPERATION = "mcp_server_operation_duration_seconds"
MCP_SESSION = "mcp_server_session_duration_seconds"
MCP_SESSIONS = "mcp_server_sessions_active"
OUR_SERIES = {f"{DURATION}_bucket", f"{DURATION}_count", f"{DURATION}_sum", ACTIVE} | {
    f"{MCP_OPERATION}_bucket",
    f"{MCP_OPERATION}_count",
    f"{MCP_SESSION}_bucket",
    MCP_SESSIONS,
}
# Identifiers in PromQL that are not metric names.
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "increase", "histogram_quantile", "topk", "and", "or",
    "group", "present_over_time",
    "unless", "on", "ignoring", "le", "job", "instance", "http_route", "http_request_method",
    "http_response_status_code", "label_values", "humanizePercentage", "humanizeDuration",
    "mcp_method_name", "gen_ai_tool_name", "error_type",
}  # fmt: skip
IDENTIFIER = re.compile(r"(?<![\w$.:\"])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w\"])")


def metric_names(expr: str) -> set[str]:
    """Names in `expr` used as metric names (strings, variables and keywords left out)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_strings)
    names = set(IDENTIFIER.findall(without_ranges)) - PROMQL_WORDS
    return {name for name in names if not re.fullmatch(r"[0-9.]+|e\d+", name)}


def alert_expressions(rules: str) -> list[str]:
    """The `expr:` of every rule, one-line or block (``expr: |``) form."""
    one_line = re.findall(r"expr: ([^|\n].*)\n", rules)
    blocks = re.findall(r"expr: \|\n((?:\s{10}.*\n)+)", rules)
    return one_line + blocks


def shipped_dashboard() -> dict[str, object]:
    return load(render()[DASHBOARD])


# --- the dashboard -------------------------------------------------------------------------


def test_dashboard_is_valid_json_with_a_uid_title_and_panels() -> None:
    dashboard = shipped_dashboard()
    assert "asgi-observe-red" == dashboard["uid"]
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert 10 <= len(list(panels(dashboard)))


def test_dashboard_covers_the_red_overview() -> None:
    """Rate, error ratio, p50/p95/p99 per route, active requests, slow and erroring routes."""
    titles = " | ".join(
        str(panel.get("title", "")).lower() for panel in panels(shipped_dashboard())
    )
    for needed in (
        "request rate by route",
        "error ratio (5xx) by route",
        "p50 latency by route",
        "p95 latency by route",
        "p99 latency by route",
        "active requests",
        "top slow routes",
        "errors by route",
        "mcp tool calls by tool",
        "mcp tool error ratio by tool",
        "mcp tool p95 latency by tool",
        "mcp active sessions",
    ):
        assert needed in titles, needed


def test_dashboard_queries_use_exactly_our_metric_names() -> None:
    exprs = expressions(shipped_dashboard())
    assert 10 <= len(exprs)
    used: set[str] = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= OUR_SERIES, (title, names - OUR_SERIES)
        used |= names
    assert OUR_SERIES - {f"{DURATION}_sum"} == used


def test_every_quantile_aggregates_buckets_by_le() -> None:
    for title, expr in expressions(shipped_dashboard()):
        if "histogram_quantile" in expr:
            assert re.search(r"sum by \([^)]*\ble\b[^)]*\) \(rate\(\w+_bucket", expr), title


def test_dashboard_variables_are_defined_or_grafana_builtins() -> None:
    dashboard = shipped_dashboard()
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}  # type: ignore[index]
    assert {"datasource", "job", "route"} == defined
    used = variable_names(json.dumps(dashboard))
    assert used <= defined | {"__rate_interval", "__range"}, used
    for _title, expr in expressions(dashboard):
        assert "$" not in substitute(expr)


def test_every_panel_queries_the_selected_prometheus_datasource() -> None:
    for panel in panels(shipped_dashboard()):
        if panel.get("type") == "row":
            continue
        expected = {"type": "prometheus", "uid": "${datasource}"}
        assert expected == panel["datasource"], panel["title"]
        for target in panel["targets"]:
            assert expected == target["datasource"], panel["title"]


def test_panel_ids_are_unique_and_panels_fit_the_24_column_grid() -> None:
    all_panels = list(panels(shipped_dashboard()))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    for panel in all_panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]


# --- the alert rules -----------------------------------------------------------------------


def test_alert_rules_name_our_metrics_and_the_four_alerts() -> None:
    text = render()[ALERT_RULES]
    assert {
        "ASGIHighErrorRatio",
        "ASGIHighLatencyP99",
        "ASGIMcpToolErrorRatio",
        "ASGITargetDown",
    } == set(re.findall(r"alert: (\w+)", text))
    exprs = alert_expressions(text)
    assert 4 == len(exprs)
    names: set[str] = set()
    for expr in exprs:
        names |= metric_names(expr)
    assert {
        f"{DURATION}_count",
        f"{DURATION}_bucket",
        f"{MCP_OPERATION}_count",
        ACTIVE,
        "up",
    } == names


# --- render(namespace) ---------------------------------------------------------------------


def test_render_without_namespace_returns_the_shipped_files_unchanged() -> None:
    package = Path(dashboards.__file__).parent
    expected = {name: (package / name).read_text(encoding="utf-8") for name in dashboards.FILES}
    assert expected == render()
    assert expected == render("")


def test_render_prefixes_every_metric_name_with_the_namespace() -> None:
    rendered = render("shop")
    dashboard = load(rendered[DASHBOARD])
    for title, expr in expressions(dashboard):
        names = metric_names(expr)
        assert names and all(
            name.startswith(("shop_http_server_", "shop_mcp_server_")) for name in names
        ), title
    unprefixed = re.compile(
        r"(?<!shop_)(http_server_(request_duration_seconds|active_requests)"
        r"|mcp_server_(operation_duration_seconds|session_duration_seconds|sessions_active))"
    )
    assert [] == unprefixed.findall(rendered[ALERT_RULES])
    assert [] == unprefixed.findall(rendered[DASHBOARD])
    assert rendered[ALERT_RULES].count("shop_http_server_request_duration_seconds") == render()[
        ALERT_RULES
    ].count("http_server_request_duration_seconds")
    assert rendered[ALERT_RULES].count("shop_mcp_server_operation_duration_seconds") == render()[
        ALERT_RULES
    ].count("mcp_server_operation_duration_seconds")
    # `up` belongs to Prometheus, not to the namespace.
    assert "up == 0\n" in rendered[ALERT_RULES]
    assert "present_over_time(shop_http_server_active_requests[6h])" in rendered[ALERT_RULES]


def test_render_gives_each_namespace_its_own_dashboard_uid_and_title() -> None:
    shop = load(render("shop")[DASHBOARD])
    long = load(render("a" * 60)[DASHBOARD])
    colon = load(render("team:shop")[DASHBOARD])
    assert "asgi-observe-red-shop" == shop["uid"]
    assert "[shop]" in shop["title"]
    assert 40 == len(long["uid"])
    assert "asgi-observe-red-team-shop" == colon["uid"]


@pytest.mark.parametrize("namespace", ["1shop", "shop-api", "shop api", "shöp", "a/b"])
def test_render_rejects_what_cannot_prefix_a_metric_name(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        render(namespace)


def test_render_rejects_a_namespace_that_is_not_a_string() -> None:
    with pytest.raises(TypeError):
        render(None)  # type: ignore[arg-type]


def test_write_puts_both_files_in_the_directory(tmp_path: Path) -> None:
    written = write(tmp_path / "out", namespace="shop")
    assert [tmp_path / "out" / name for name in dashboards.FILES] == written
    assert render("shop")[DASHBOARD] == (tmp_path / "out" / DASHBOARD).read_text()


def test_module_command_writes_the_files(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "asgi_observe.dashboards", "--namespace", "shop", "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    assert sorted(dashboards.FILES) == sorted(path.name for path in tmp_path.iterdir())


# --- promtool (external binary) ------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian package 'prometheus'; .ci/install-system-deps)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason + " -- required when CI=true", pytrace=False)
        pytest.skip(reason)
    return path


def run_promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def rendered_rules_and_tests(tmp_path: Path, namespace: str, selector: str = "") -> Path:
    """The rules and the promtool unit tests, both rendered for `namespace`, in tmp_path."""
    write(tmp_path, namespace=namespace, selector=selector)
    test_text = PROMTOOL_TEST.read_text(encoding="utf-8")
    test_text = test_text.replace(
        "../../asgi_observe/dashboards/prometheus-alerts.yml", ALERT_RULES
    )
    if namespace:
        test_text = re.sub(r"(?<![\w:])(http|mcp)_server_", rf"{namespace}_\1_server_", test_text)
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(test_text, encoding="utf-8")
    return test_file


@pytest.mark.e2e
def test_promtool_check_rules_passes() -> None:
    result = run_promtool("check", "rules", dashboards.__path__[0] + "/" + ALERT_RULES, cwd=ROOT)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


@pytest.mark.e2e
def test_promtool_unit_tests_fire_and_resolve_each_alert() -> None:
    """tests/promtool/alerts_test.yml, run as shipped."""
    result = run_promtool("test", "rules", PROMTOOL_TEST, cwd=ROOT)
    assert 0 == result.returncode, result.stdout + result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("namespace", "selector"),
    [("", ""), ("shop", ""), ("", 'job="api"'), ("shop", 'job=~"api|cart", env!="dev"')],
)
def test_promtool_unit_tests_pass_on_rules_rendered_for_a_namespace(
    tmp_path: Path, namespace: str, selector: str
) -> None:
    """The same alerts fire (for job "api", never for the "node" target) when the rules
    are scoped by the shipped default, or by a selector the user chose."""
    test_file = rendered_rules_and_tests(tmp_path, namespace, selector)
    check = run_promtool("check", "rules", ALERT_RULES, cwd=tmp_path)
    assert 0 == check.returncode, check.stdout + check.stderr
    result = run_promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


@pytest.mark.e2e
def test_promtool_unit_tests_fail_when_the_alerts_do_not_fire(tmp_path: Path) -> None:
    """The unit tests can fail: with thresholds no series reaches, every alert test fails."""
    test_file = rendered_rules_and_tests(tmp_path, "")
    rules = tmp_path / ALERT_RULES
    text = rules.read_text()
    text = text.replace(") > 0.05", ") > 0.99").replace(") > 1\n", ") > 100\n")
    text = text.replace("          ) > 0.1\n", "          ) > 0.99\n")
    rules.write_text(text.replace("up == 0", "up == 2"))
    result = run_promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert 0 != result.returncode
    for alert in (
        "ASGIHighErrorRatio",
        "ASGIHighLatencyP99",
        "ASGIMcpToolErrorRatio",
        "ASGITargetDown",
    ):
        assert f"alertname: {alert}" in result.stdout + result.stderr, alert


# --- against what MetricsMiddleware really exports ------------------------------------------


async def exported_series(namespace: str) -> dict[str, set[str]]:
    """Series names -> label names that MetricsMiddleware and McpMiddleware export.

    One plain request, and one MCP session: initialize (which issues a session id), a
    tools/call, and the DELETE that ends the session.
    """
    import httpx
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from asgi_observe.metrics.middleware import MetricsMiddleware

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"boom"})

    async def mcp(scope, receive, send):  # type: ignore[no-untyped-def]
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"s")]
        answer = b'{"jsonrpc":"2.0","id":1,"result":{}}' if body else b""
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    from asgi_observe.mcp import McpMiddleware

    registry = CollectorRegistry()
    wrapped = MetricsMiddleware(app, registry=registry, namespace=namespace)
    mcp_app = McpMiddleware(mcp, paths=["/mcp"], registry=registry, namespace=namespace)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped)) as client:
        assert 500 == (await client.get("http://test/items/1")).status_code
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mcp_app)) as client:
        call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'
        await client.post("http://test/mcp", content=call.replace(b"tools/call", b"initialize"))
        await client.post("http://test/mcp", content=call)
        await client.delete("http://test/mcp", headers={"mcp-session-id": "s"})
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


@pytest.mark.parametrize("namespace", ["", "shop"])
async def test_dashboard_and_rules_query_series_the_middleware_exports(namespace: str) -> None:
    series = await exported_series(namespace)
    rendered = render(namespace)
    exprs = [expr for _title, expr in expressions(load(rendered[DASHBOARD]))]
    exprs += re.findall(
        r"(?<=expr: )[^|\n].*|(?<=expr: \|\n)(?:\s{10}.*\n)+", rendered[ALERT_RULES]
    )
    assert len(exprs) >= 15
    for expr in exprs:
        for name in metric_names(expr) - {"up"}:
            assert name in series, (name, sorted(series))
        for label in re.findall(
            r"\b((?:http|mcp|gen_ai)_[a-z_]+|error_type)\s*(?:=~|!=|!~|=)", expr
        ):
            assert any(label in labels for labels in series.values()), label
    prefix = f"{namespace}_" if namespace else ""
    duration_labels = series[f"{prefix}http_server_request_duration_seconds_bucket"]
    assert {"http_request_method", "http_route", "http_response_status_code", "le"} == (
        duration_labels
    )
    assert {"http_request_method"} == series[f"{prefix}http_server_active_requests"]


# --- render(selector=...) ------------------------------------------------------------------


@pytest.mark.parametrize("selector", ['job="shop"', '{job="shop", env=~"prod|stage"}'])
def test_a_selector_scopes_every_rule_and_every_dashboard_query(selector: str) -> None:
    matchers = selector.strip("{}")
    rendered = render(selector=selector)
    for expr in alert_expressions(rendered[ALERT_RULES]):
        selectors = re.findall(r"(?:http_server_\w+|mcp_server_\w+|up)\{[^}]*\}", expr)
        bare = re.findall(r"(?:http_server_\w+|mcp_server_\w+|\bup)(?![\w{])", expr)
        assert selectors and [] == bare, expr
        assert all(matchers in found for found in selectors), expr
    assert "up{" + matchers + "} == 0\n" in rendered[ALERT_RULES]
    dashboard = load(rendered[DASHBOARD])
    for title, expr in expressions(dashboard):
        assert matchers in expr, title
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")  # type: ignore[index]
    assert f"http_server_request_duration_seconds_count{{{matchers}}}" in job["query"]["query"]


@pytest.mark.parametrize("selector", ["job", 'job="a" or up', "job=shop", "{}{", 'job="a"}'])
def test_render_rejects_what_is_not_label_matchers(selector: str) -> None:
    with pytest.raises(ValueError, match="label matchers"):
        render(selector=selector)


def test_module_command_takes_a_selector(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asgi_observe.dashboards", "--selector", 'job="shop"', "--out",
         str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert 0 == result.returncode, result.stderr
    assert 'up{job="shop"} == 0' in (tmp_path / ALERT_RULES).read_text()
