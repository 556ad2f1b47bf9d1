"""The old path of `asgi_observe.frameworks.routes`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.frameworks.routes import (
    ROUTE_KEY,
    resolve_route,
)

__all__ = [
    "ROUTE_KEY",
    "resolve_route",
]
