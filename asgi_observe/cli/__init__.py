"""The `asgi-observe` command: `run`, `demo`."""

from __future__ import annotations

from asgi_observe.cli.main import app_factory, main

__all__ = ["app_factory", "main"]
