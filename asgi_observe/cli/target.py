"""MODULE:APP, checked before the server starts, and the service name it suggests."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["TargetError", "check_target", "default_service_name", "service_name_source"]

# The exit status for each failure (docs/cli.md, "Exit status"); as `python FILE` does,
# a name that cannot be found is a usage error, and a module that raises exits with 1.
EXIT_NOT_FOUND = 2
EXIT_RAISED = 1
# Module names that say "entry point", not "service": `shop.asgi:application` is "shop".
_ENTRY_MODULES = frozenset({"asgi", "main", "app", "application", "server", "wsgi"})
_MISSING = object()
# Frames of ours and of the import machinery, above the app's first frame.
_OWN_FILES = (
    str(Path(__file__).resolve().parent.parent),
    str(Path(importlib.__file__).resolve().parent),
    "<frozen importlib",
)


class TargetError(Exception):
    """MODULE:APP names nothing that can be served; the message is one line."""

    def __init__(self, message: str, exit_status: int = EXIT_NOT_FOUND) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def check_target(target: str, *, factory: bool = False) -> Any:
    """Import MODULE and find APP in it; return APP (a factory is not called).

    Raises TargetError when the module or the attribute does not exist, or when APP is
    not callable. An exception raised while the module itself runs (its own import
    errors included: that is a bug in the app) is printed with its traceback, from
    the app's first frame on, then reported as a TargetError with exit status 1.
    """
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_part_of(module_name, exc.name):
            _print_app_traceback(exc)  # the module exists and imports something missing
            raise TargetError(
                f"importing {module_name!r} failed: {_first_line(exc)}", EXIT_RAISED
            ) from None
        raise TargetError(f"cannot import {module_name!r}: {_first_line(exc)}") from None
    except Exception as exc:
        _print_app_traceback(exc)
        raise TargetError(
            f"importing {module_name!r} raised {type(exc).__name__}: {_first_line(exc)}",
            EXIT_RAISED,
        ) from None
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part, _MISSING)
        if app is _MISSING:
            raise TargetError(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(app):
        what = "a factory" if factory else "an ASGI app"
        raise TargetError(f"{target!r} is {type(app).__name__}, not {what}")
    return app


def default_service_name(target: str) -> str:
    """`myproject.main:app` -> "myproject", `shop.asgi:application` -> "shop",
    `main:app` -> "main": the module path without a final entry-point module name."""
    parts = target.partition(":")[0].split(".")
    if len(parts) > 1 and parts[-1] in _ENTRY_MODULES:
        parts = parts[:-1]
    return ".".join(parts)


def _is_part_of(module_name: str, missing: str) -> bool:
    # `nosuch.sub` is missing when `nosuch` is: the target's own path is not there.
    return module_name == missing or module_name.startswith(missing + ".")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _print_app_traceback(exc: BaseException) -> None:
    # Frames of this module and of importlib say nothing about the app's bug.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, chain=False, file=sys.stderr)


def service_name_source(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(service name, the variable naming it) when the environment names the service."""
    name = environ.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        return name, "OTEL_SERVICE_NAME"
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return unquote(value.strip()), "OTEL_RESOURCE_ATTRIBUTES"
    return None
