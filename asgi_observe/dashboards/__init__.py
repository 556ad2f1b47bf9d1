"""A Grafana RED dashboard and Prometheus alert rules for asgi_observe's metrics.

The shipped files use the metric names of the default namespace (``""``). `render`
returns them for another namespace, so they match ``observe(app, namespace=...)``;
``python -m asgi_observe.dashboards --namespace NAME --out DIR`` writes them to disk.
See ``docs/dashboards.md`` for importing them.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

__all__ = ["ALERT_RULES", "DASHBOARD", "FILES", "render", "write"]

DASHBOARD = "grafana-red.json"
ALERT_RULES = "prometheus-alerts.yml"
FILES = (DASHBOARD, ALERT_RULES)

# https://prometheus.io/docs/concepts/data_model/#metric-names-and-labels
_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Our metric families (HTTP and MCP), wherever they stand in PromQL (also with
# _bucket/_count/_sum), but not when they are already the tail of a longer (namespaced) name.
_OUR_METRICS = re.compile(
    r"(?<![A-Za-z0-9_:])(?:http_server_(?:request_duration_seconds|active_requests)"
    r"|mcp_server_(?:operation_duration_seconds|session_duration_seconds|sessions_active))"
)
# Grafana dashboard uids are at most 40 characters of [a-zA-Z0-9_-].
_UID_MAX = 40
# A series selector of ours, with its optional label matchers: `name` or `name{...}`.
_OUR_SELECTOR = re.compile(
    r"(?<![A-Za-z0-9_:])((?:http_server_(?:request_duration_seconds|active_requests)"
    r"|mcp_server_(?:operation_duration_seconds|session_duration_seconds|sessions_active))"
    r"(?:_bucket|_count|_sum)?)(\{)?"
)
# PromQL label matchers: https://prometheus.io/docs/prometheus/latest/querying/basics/
_MATCHER = re.compile(r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*')
# The shipped ASGITargetDown expression; with a selector it becomes `up{selector} == 0`.
_TARGET_DOWN = (
    "up == 0\n"
    "          and on (job) group by (job) (present_over_time(http_server_active_requests[6h]))\n"
)


def _shipped(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _validate(namespace: str) -> None:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
    if namespace and not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r} is not a valid Prometheus metric name prefix")


def _namespaced_dashboard(text: str, namespace: str) -> str:
    dashboard = json.loads(text)
    dashboard["title"] = f"{dashboard['title']} [{namespace}]"
    suffix = re.sub(r"[^a-zA-Z0-9_-]", "-", namespace)
    dashboard["uid"] = f"{dashboard['uid']}-{suffix}"[:_UID_MAX]
    return json.dumps(dashboard, indent=2) + "\n"


def _validate_selector(selector: str) -> str:
    if not isinstance(selector, str):
        raise TypeError(f"selector must be a str, not {type(selector).__name__}")
    matchers = selector.strip()
    if matchers.startswith("{") and matchers.endswith("}"):  # one pair of braces is allowed
        matchers = matchers[1:-1].strip()
    if matchers and not all(_MATCHER.fullmatch(m) for m in _split_matchers(matchers)):
        raise ValueError(
            f"selector {selector!r} is not PromQL label matchers, e.g. 'job=\"my-service\"'"
        )
    return matchers


def _split_matchers(matchers: str) -> list[str]:
    # Commas inside quoted values do not separate matchers.
    return re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', matchers)


def _scoped(expr: str, matchers: str) -> str:
    def add(match: re.Match[str]) -> str:
        return (
            f"{match.group(1)}{{{matchers}, "
            if match.group(2)
            else f"{match.group(1)}{{{matchers}}}"
        )

    return _OUR_SELECTOR.sub(add, expr)


def _scoped_rules(text: str, matchers: str) -> str:
    if _TARGET_DOWN not in text:  # pragma: no cover - the shipped file is tested
        raise RuntimeError("the shipped ASGITargetDown rule changed; update _TARGET_DOWN")
    text = text.replace(_TARGET_DOWN, f"up{{{matchers}}} == 0\n")
    return _scoped(text, matchers)


def _scoped_dashboard(text: str, matchers: str) -> str:
    # Edited as JSON, not as text: the matchers' quotes must be escaped in the file.
    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {
                key: _scoped(value, matchers)
                if key in ("expr", "query", "definition") and isinstance(value, str)
                else walk(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return json.dumps(walk(json.loads(text)), indent=2) + "\n"


def render(namespace: str = "", *, selector: str = "") -> dict[str, str]:
    """Return the dashboard and alert rules, by file name, for metrics under `namespace`.

    With the defaults the shipped files are returned unchanged. A `namespace` gives every
    metric name the prefix ``namespace + "_"`` (as prometheus-client joins it), and the
    dashboard its own title and uid so several namespaces can be imported side by side.
    A `selector` (PromQL label matchers such as ``job="shop"`` or
    ``env="prod", team=~"web.*"``) is added to every series the rules and the dashboard
    query, ``up`` included.

    Raises `ValueError` when `namespace` cannot start a Prometheus metric name or
    `selector` is not label matchers.

    Since 0.1.0.
    """
    _validate(namespace)
    matchers = _validate_selector(selector)
    rendered = {name: _shipped(name) for name in FILES}
    if matchers:
        rendered[ALERT_RULES] = _scoped_rules(rendered[ALERT_RULES], matchers)
        rendered[DASHBOARD] = _scoped_dashboard(rendered[DASHBOARD], matchers)
    if not namespace:
        return rendered
    prefixed = {
        name: _OUR_METRICS.sub(lambda m: f"{namespace}_{m.group(0)}", text)
        for name, text in rendered.items()
    }
    prefixed[DASHBOARD] = _namespaced_dashboard(prefixed[DASHBOARD], namespace)
    return prefixed


def write(directory: str | Path, *, namespace: str = "", selector: str = "") -> list[Path]:
    """Write the rendered files into `directory` (created if missing); return their paths.

    Since 0.1.0.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(namespace, selector=selector).items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
