"""Read the PromQL out of the shipped Grafana dashboard, and make it runnable as-is."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

# Grafana's built-in interval/range variables and what stands in for them when a query
# is sent to Prometheus directly (the dashboard's own variables default to "All").
DEFAULT_SUBSTITUTIONS = {
    "__rate_interval": "1m",
    "__range": "5m",
    "__interval": "15s",
    "job": ".*",
    "route": ".*",
}
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")


def panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", ()):
        yield panel
        yield from panel.get("panels", ())


def expressions(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of every panel."""
    return [
        (str(panel.get("title")), str(target["expr"]))
        for panel in panels(dashboard)
        for target in panel.get("targets", ())
        if "expr" in target
    ]


def variable_names(text: str) -> set[str]:
    return {a or b for a, b in GRAFANA_VARIABLE.findall(text)}


def substitute(expr: str, values: Mapping[str, str] = DEFAULT_SUBSTITUTIONS) -> str:
    """`expr` with Grafana variables replaced; KeyError on a variable without a value."""
    return GRAFANA_VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)


def load(text: str) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard
