"""The rooms of the package and which may import which (docs/architecture.md).

Every module's imports are read with `ast`, those inside functions and `TYPE_CHECKING`
blocks included, and each edge between two rooms must be in `ALLOWED`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "asgi_observe"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
ROOMS = ("_core", "propagation", "scrub", "frameworks", "tracing", "logs", "metrics", "errors")
ROOMS += ("mcp", "setup", "viewer", "dashboards", "cli")
EVERYTHING = frozenset((*ROOMS, "root"))

# The import table of docs/architecture.md. "root" is observe.py, __init__.py and the
# re-export modules kept for old documented paths.
ALLOWED: dict[str, frozenset[str]] = {
    "_core": frozenset(),
    "propagation": frozenset({"_core"}),
    "scrub": frozenset({"_core"}),
    "frameworks": frozenset({"_core"}),
    "tracing": frozenset({"_core", "propagation", "scrub", "frameworks"}),
    "logs": frozenset({"_core", "scrub", "frameworks"}),
    "metrics": frozenset({"_core", "tracing", "frameworks"}),
    "errors": frozenset({"_core", "scrub", "frameworks"}),
    "mcp": frozenset({"_core", "metrics", "errors"}),
    "setup": frozenset(ROOMS) - {"cli", "dashboards", "setup", "viewer"},
    # The local viewer reads the pillars' public pieces (scrubber, Sentry event helpers,
    # metric families, route templates); nothing but cli/ and root imports it.
    "viewer": frozenset(ROOMS) - {"cli", "dashboards", "setup", "viewer"},
    "dashboards": frozenset(),
    "cli": EVERYTHING - {"cli"},
    "root": EVERYTHING - {"root"},
}
# Web frameworks are recognised by what they put in the scope or by duck typing, and
# imported (if ever) inside the function that needs them, never when a module loads.
FRAMEWORKS = frozenset({"django", "fastapi", "litestar", "quart", "starlette", "mcp", "fastmcp"})


def room_of(module: str) -> str:
    """'asgi_observe.tracing.middleware' -> 'tracing'; a root module -> 'root'."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in ROOMS else "root"


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `tree`, relative ones resolved."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append((node.lineno, base))
            # `from asgi_observe import tracing` names a room, not a function.
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, top-level package) of imports that run when the module loads."""
    found: list[tuple[int, str]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(root: Path) -> list[str]:
    """Every import edge under `root` (a package folder) that the table does not allow."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source_room = room_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = {
            (line, room_of(target))
            for line, target in imported_modules(tree, module, path.name == "__init__.py")
            if target.startswith(PACKAGE + ".")
        }
        for line, target_room in sorted(edges):
            if target_room != source_room and target_room not in ALLOWED[source_room]:
                problems.append(
                    f"{path.relative_to(root.parent)}:{line}: {source_room} may not import "
                    f"{target_room}"
                )
        for line, top in module_level_imports(tree):
            if top in FRAMEWORKS:
                problems.append(f"{path.relative_to(root.parent)}:{line}: imports {top} on load")
    return problems


def test_every_room_has_a_row_in_the_table() -> None:
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert set(ROOMS) == on_disk
    assert set(ROOMS) | {"root"} == set(ALLOWED)


def test_the_package_keeps_the_import_table() -> None:
    assert [] == violations(ROOT)


@pytest.mark.parametrize(
    ("room", "module", "line", "expected"),
    [
        ("propagation", "bad.py", "from asgi_observe.tracing import TracingMiddleware", "tracing"),
        ("scrub", "bad.py", "from asgi_observe.errors.sentry import MECHANISM", "errors"),
        ("_core", "bad.py", "import asgi_observe.metrics.families", "metrics"),
        ("metrics", "bad.py", "from asgi_observe.observe import observe", "root"),
        ("tracing", "bad.py", "from asgi_observe import cli", "cli"),
        ("errors", "bad.py", "from ..logs import correlation", "logs"),
        ("frameworks", "bad.py", "import starlette.routing", "starlette"),
    ],
    ids=[
        "propagation->tracing",
        "scrub->errors",
        "core->metrics",
        "pillar->observe",
        "pillar->cli",
        "relative",
        "framework-on-load",
    ],
)
def test_a_wrong_import_is_reported(
    tmp_path: Path, room: str, module: str, line: str, expected: str
) -> None:
    """The check can fail: a copy of the package with one wrong import breaks it."""
    copy = tmp_path / PACKAGE
    for source in ROOT.rglob("*.py"):
        target = copy / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (copy / room / module).write_text(f"{line}\n", encoding="utf-8")
    (problem,) = violations(copy)
    assert f"{PACKAGE}/{room}/{module}:1:" in problem
    assert expected in problem


HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == h or name.startswith(h + ".") for h in {hidden!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
import asgi_observe
from asgi_observe import observe
for room in {rooms!r}:
    __import__("asgi_observe." + room)
async def app(scope, receive, send):
    pass
observe(app, configure=False)
leaked = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in {hidden!r}))
assert not leaked, leaked
print("ok")
"""
EXTRAS = {
    "sentry": ("sentry_sdk",),
    "otlp": ("opentelemetry.exporter",),
    "cli": ("uvicorn",),
    "frameworks": tuple(sorted(FRAMEWORKS)),
}


@pytest.mark.parametrize(
    "hidden", [*EXTRAS.values(), sum(EXTRAS.values(), ())], ids=[*EXTRAS, "all"]
)
def test_the_package_imports_with_optional_dependencies_missing(hidden: tuple[str, ...]) -> None:
    """Importing asgi_observe, each room and observe() need no optional extra."""
    code = HIDE.format(hidden=hidden, rooms=ROOMS)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (0, "ok") == (result.returncode, result.stdout.strip()), result.stderr
