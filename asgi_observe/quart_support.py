"""The old path of `asgi_observe.frameworks.quart`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.frameworks.quart import (
    is_quart_app,
    register_quart_error_hook,
    register_quart_route_hook,
)

__all__ = [
    "is_quart_app",
    "register_quart_error_hook",
    "register_quart_route_hook",
]
