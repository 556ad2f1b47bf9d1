"""What each framework publishes: route templates and the Quart hooks.

No framework is imported here until an app of that framework is handed in.
"""

from __future__ import annotations

from asgi_observe.frameworks.quart import (
    is_quart_app,
    register_quart_error_hook,
    register_quart_route_hook,
)
from asgi_observe.frameworks.routes import ROUTE_KEY, resolve_route

__all__ = [
    "ROUTE_KEY",
    "is_quart_app",
    "register_quart_error_hook",
    "register_quart_route_hook",
    "resolve_route",
]
