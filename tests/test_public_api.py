"""The public API and every documented import path survive the package regroup."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import asgi_observe

ROOT = Path(__file__).resolve().parent.parent
# Old module path -> the module it moved to; each public name is the same object in both.
MOVED = {
    "asgi_observe.logging": "asgi_observe.logs.correlation",
    "asgi_observe.request_id": "asgi_observe.logs.request_id",
    "asgi_observe.routes": "asgi_observe.frameworks.routes",
    "asgi_observe.quart_support": "asgi_observe.frameworks.quart",
    "asgi_observe.metrics_app": "asgi_observe.metrics.app",
    "asgi_observe.error_hooks": "asgi_observe.errors.hooks",
}
# Dotted names in the docs that are logger names, scope keys, or the names of our own
# OpenTelemetry instruments and attributes, not import paths.
NOT_IMPORT_PATHS = {
    "asgi_observe.access",
    "asgi_observe.export",
    "asgi_observe.route",
    "asgi_observe.mcp.server.active_sessions",
    "asgi_observe.mcp.session.end_reason",
}
DOTTED = re.compile(r"\basgi_observe(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of `dotted`, then read the rest as attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for name in parts[end:]:
            value = getattr(value, name)
        return value
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("name", asgi_observe.__all__)
def test_every_public_name_imports_from_the_package(name: str) -> None:
    assert getattr(asgi_observe, name) is not None


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_an_old_module_path_gives_the_same_objects(old: str, new: str) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert old_module.__all__
    for name in old_module.__all__:
        assert getattr(new_module, name) is getattr(old_module, name), (old, name)


def documented_dotted_names() -> list[str]:
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").glob("*.py")]
    found = {m for path in texts for m in DOTTED.findall(path.read_text(encoding="utf-8"))}
    return sorted(found - NOT_IMPORT_PATHS)


def test_the_docs_name_import_paths() -> None:
    """The scan can fail: it finds the documented paths, moved ones included."""
    names = documented_dotted_names()
    assert {"asgi_observe.propagation", "asgi_observe.dashboards"} <= set(names)
    with pytest.raises(AttributeError):
        resolve("asgi_observe.logs.no_such_name")


@pytest.mark.parametrize("dotted", documented_dotted_names())
def test_every_dotted_name_in_the_docs_resolves(dotted: str) -> None:
    assert resolve(dotted) is not None


def test_the_old_metrics_app_path_leaves_the_function_on_the_package() -> None:
    """Importing a submodule binds its name on the package; the function must keep it."""
    code = (
        "import asgi_observe.metrics_app, asgi_observe\n"
        "from asgi_observe.metrics_app import serve_metrics_at\n"
        "assert callable(asgi_observe.metrics_app) and asgi_observe.metrics_app.__module__ "
        "== 'asgi_observe.metrics.app', asgi_observe.metrics_app\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "ok" == result.stdout.strip(), result.stderr
