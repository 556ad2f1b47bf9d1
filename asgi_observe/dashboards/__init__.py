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


def render(namespace: str = "") -> dict[str, str]:
    """Return the dashboard and alert rules, by file name, for metrics under `namespace`.

    With the default ``""`` the shipped files are returned unchanged. Otherwise every
    metric name gets the prefix ``namespace + "_"`` (as prometheus-client joins it), and
    the dashboard gets its own title and uid so several namespaces can be imported side
    by side.

    Raises `ValueError` when `namespace` cannot start a Prometheus metric name.

    Since 0.1.0.
    """
    _validate(namespace)
    rendered = {name: _shipped(name) for name in FILES}
    if not namespace:
        return rendered
    prefixed = {
        name: _OUR_METRICS.sub(lambda m: f"{namespace}_{m.group(0)}", text)
        for name, text in rendered.items()
    }
    prefixed[DASHBOARD] = _namespaced_dashboard(prefixed[DASHBOARD], namespace)
    return prefixed


def write(directory: str | Path, *, namespace: str = "") -> list[Path]:
    """Write the rendered files into `directory` (created if missing); return their paths.

    Since 0.1.0.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(namespace).items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
